"""JSON documents read into, and written from, values of a botocore shape.

Shared by the `json` and `rest-json` protocols: members by their JSON name (`locationName`),
timestamps as epoch seconds unless a `timestampFormat` says otherwise, blobs in base64, special
floats as strings. Reading raises `SerializationException` naming the member and what was found,
as AWS's JSON services do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

from fanstack.aws.protocols.errors import AwsError, serialization_error
from fanstack.aws.protocols.values import (
    FLOAT_TYPES,
    INTEGER_TYPES,
    SPECIAL_FLOATS,
    UNIX_TIMESTAMP,
    read_blob,
    read_timestamp,
    timestamp_format,
    write_blob,
    write_float,
    write_timestamp,
)

_JSON_KIND = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def _mismatch(shape: Shape, value: Any, path: str) -> AwsError:
    found = _JSON_KIND.get(type(value), type(value).__name__)
    return serialization_error(
        f"Expected a {shape.type_name} for '{path or shape.name}', found {found}."
    )


def json_name(name: str, shape: Shape) -> str:
    """The key a member has in a JSON document."""
    return str(shape.serialization.get("name", name))


def read_json(shape: Shape, value: Any, path: str = "") -> Any:
    """A decoded JSON value as the value of `shape` (datetimes, bytes, floats, nested dicts)."""
    if value is None:
        return None
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        return _read_structure(shape, value, path)
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            raise _mismatch(shape, value, path)
        return [read_json(shape.member, item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            raise _mismatch(shape, value, path)
        return {key: read_json(shape.value, item, f"{path}.{key}") for key, item in value.items()}
    try:
        return _read_scalar(shape, kind, value)
    except ValueError as exc:
        raise serialization_error(f"Invalid value for '{path or shape.name}': {exc}") from exc
    except TypeError:
        raise _mismatch(shape, value, path) from None


def _read_structure(shape: StructureShape, value: Any, path: str) -> Any:
    if shape.is_document_type:
        return value
    if not isinstance(value, dict):
        raise _mismatch(shape, value, path)
    result: dict[str, Any] = {}
    for name, member in shape.members.items():
        raw = value.get(json_name(name, member))
        if raw is not None:
            result[name] = read_json(member, raw, f"{path}.{name}" if path else name)
    return result


def _read_scalar(shape: Shape, kind: str, value: Any) -> Any:
    if kind in INTEGER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
        return value
    if kind in FLOAT_TYPES:
        if isinstance(value, str) and value in SPECIAL_FLOATS:
            return SPECIAL_FLOATS[value]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise TypeError
        return value
    if kind == "blob":
        if not isinstance(value, str):
            raise TypeError
        return read_blob(value)
    if kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError
        return read_timestamp(value)
    if not isinstance(value, str):
        raise TypeError
    return value


def write_json(shape: Shape, value: Any) -> Any:
    """A value of `shape` as a JSON-ready value (what `json.dumps` takes)."""
    if value is None:
        return None
    if isinstance(shape, StructureShape):
        if shape.is_document_type:
            return value
        return write_json_members(shape, value)
    if isinstance(shape, ListShape):
        return [write_json(shape.member, item) for item in value]
    if isinstance(shape, MapShape):
        return {str(key): write_json(shape.value, item) for key, item in value.items()}
    kind = shape.type_name
    if kind == "timestamp":
        return write_timestamp(value, timestamp_format(shape, UNIX_TIMESTAMP))
    if kind == "blob":
        return write_blob(value)
    if kind in FLOAT_TYPES:
        return write_float(value)
    if kind in INTEGER_TYPES and isinstance(value, float) and not math.isnan(value):
        return int(value)
    return value


def write_json_members(
    shape: StructureShape, value: Mapping[str, Any], *, skip_located: bool = False
) -> dict[str, Any]:
    """A structure's members (those in the body, with `skip_located`) as a JSON object."""
    document: dict[str, Any] = {}
    for name, member in shape.members.items():
        if name not in value or value[name] is None:
            continue
        if skip_located and "location" in member.serialization:
            continue
        document[json_name(name, member)] = write_json(member, value[name])
    return document
