"""Request validation against an operation's OpenAPI parameters and JSON body schema.

Every failure is collected, not just the first, so a 400 lists every invalid field. Parameters
arrive as strings and are coerced to their schema's type before validation, numbers by JSON's
own grammar. Bodies are read by their media type and charset (`media`), JSON strictly
(`strict_json`), and schema patterns are ECMA-262 (`patterns`). A body in a media type the
route does not take raises UnsupportedMediaType (a 415) instead of adding a field error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import SchemaError

from fanstack.core.errors import InvalidParameterValue
from fanstack.gateway import strict_json
from fanstack.gateway.fast_schema import CheckedValidator, compile_check
from fanstack.gateway.media import MediaType, UnsupportedMediaType, decode, request_media_type
from fanstack.gateway.patterns import SchemaValidator, check_schema

LOCATIONS = ("path", "query", "header")
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")

__all__ = ["FieldError", "RequestValidator", "UnsupportedMediaType", "coerce", "upgrade_schema"]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: where it is, its name (or JSON pointer in the body), and why."""

    location: str
    name: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """The shape the 400 response lists."""
        return {"in": self.location, "name": self.name, "message": self.message}


def upgrade_schema(schema: Any) -> Any:
    """OpenAPI 3.0 schema quirks to JSON Schema 2020-12 (`nullable`, boolean exclusive bounds)."""
    if isinstance(schema, list):
        return [upgrade_schema(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    upgraded = {key: upgrade_schema(value) for key, value in schema.items() if key != "example"}
    if upgraded.pop("nullable", False) and "type" in upgraded:
        kind = upgraded["type"]
        upgraded["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if upgraded.get(exclusive) is True:
            upgraded[exclusive] = upgraded.pop(bound)
        elif upgraded.get(exclusive) is False:
            upgraded.pop(exclusive)
    return upgraded


class RequestValidator:
    """Validates one operation's requests; built once when the route is declared."""

    def __init__(
        self,
        parameters: Sequence[Mapping[str, Any]],
        body_schema: Mapping[str, Any] | None,
        *,
        body_required: bool,
        components: Mapping[str, Any] | None = None,
    ) -> None:
        self.body_required = body_required
        self._components = upgrade_schema(dict(components or {}))
        self.parameters: list[tuple[str, str, bool, CheckedValidator, Mapping[str, Any]]] = []
        for parameter in parameters:
            location = parameter.get("in")
            if location not in LOCATIONS:
                raise InvalidParameterValue(
                    f"parameter {parameter.get('name')!r}: 'in' must be path, query or header"
                )
            schema = self._resolve(parameter.get("schema", {}))
            self.parameters.append(
                (
                    location,
                    str(parameter["name"]),
                    bool(parameter.get("required", location == "path")),
                    self._validator(schema, f"{location} parameter {parameter['name']!r}"),
                    schema,
                )
            )
        self.body = None if body_schema is None else self._validator(body_schema, "request body")

    def _validator(self, schema: Mapping[str, Any], where: str) -> CheckedValidator:
        root = {**upgrade_schema(dict(schema)), "components": self._components}
        try:
            check_schema(root)
        except SchemaError as exc:
            at = "/".join(str(part) for part in exc.absolute_path)
            raise InvalidParameterValue(
                f"{where}: invalid schema{f' at {at}' if at else ''}: {exc.message}"
            ) from exc
        return CheckedValidator(SchemaValidator(root), compile_check(root))

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            node: Any = {"components": self._components}
            for token in ref[2:].split("/"):
                node = node[token]
            return dict(node)
        return schema

    def validate(
        self,
        path: Mapping[str, str],
        query: Mapping[str, Sequence[str]],
        headers: Mapping[str, str],
        raw_body: bytes,
        content_type: str | None,
    ) -> tuple[dict[str, dict[str, Any]], Any, list[FieldError]]:
        """Coerced parameters by location, the decoded body, and every error found.

        Raises UnsupportedMediaType when there is a body the route cannot read.
        """
        errors: list[FieldError] = []
        values: dict[str, dict[str, Any]] = {"path": {}, "query": {}, "header": {}}
        for location, name, required, validator, schema in self.parameters:
            raw = _raw_parameter(location, name, path, query, headers, schema)
            if raw is None:
                if required:
                    errors.append(FieldError(location, name, "is required"))
                continue
            value = coerce(raw, schema)
            for error in validator.iter_errors(value):
                errors.append(FieldError(location, name, error.message))
            values[location][name] = value
        body = self._body(raw_body, content_type, errors)
        return values, body, errors

    def _body(self, raw_body: bytes, content_type: str | None, errors: list[FieldError]) -> Any:
        if self.body is None:
            return _unchecked_body(raw_body, content_type, errors)
        if not raw_body.strip():
            if self.body_required:
                errors.append(FieldError("body", "", "a JSON request body is required"))
            return None
        media_type = request_media_type(content_type)
        if not media_type.is_json:
            raise UnsupportedMediaType(
                f"content-type {media_type} is not accepted; send application/json "
                "(or an application/*+json type)"
            )
        body = _json_body(raw_body, media_type, errors)
        if body is _INVALID:
            return None
        for error in sorted(self.body.iter_errors(body), key=lambda e: list(e.absolute_path)):
            pointer = "/" + "/".join(str(part) for part in error.absolute_path)
            errors.append(FieldError("body", pointer if error.absolute_path else "", error.message))
        return body


_INVALID = object()


def _json_body(raw_body: bytes, media_type: MediaType, errors: list[FieldError]) -> Any:
    """The body as strict JSON in its charset, or _INVALID with the reason in `errors`."""
    try:
        return strict_json.loads(decode(raw_body, media_type))
    except strict_json.InvalidJson as exc:
        errors.append(FieldError("body", exc.pointer, exc.reason))
    except UnicodeDecodeError as exc:
        errors.append(FieldError("body", "", f"not valid {exc.encoding}: {exc.reason}"))
    return _INVALID


def _unchecked_body(raw_body: bytes, content_type: str | None, errors: list[FieldError]) -> Any:
    """A body the operation declares no schema for: JSON if it says so, else text."""
    if not raw_body:
        return None
    media_type = request_media_type(content_type or "text/plain")
    if media_type.is_json:
        body = _json_body(raw_body, media_type, errors)
        return None if body is _INVALID else body
    try:
        return decode(raw_body, media_type)
    except UnicodeDecodeError as exc:
        errors.append(FieldError("body", "", f"not valid {exc.encoding} text: {exc.reason}"))
        return None


def _raw_parameter(
    location: str,
    name: str,
    path: Mapping[str, str],
    query: Mapping[str, Sequence[str]],
    headers: Mapping[str, str],
    schema: Mapping[str, Any],
) -> Any:
    if location == "path":
        return path.get(name)
    if location == "header":
        return headers.get(name.lower())
    found = query.get(name)
    if not found:
        return None
    return list(found) if schema.get("type") == "array" else found[-1]


def coerce(raw: Any, schema: Mapping[str, Any]) -> Any:
    """A parameter's string form as its schema's type; left as is if it does not convert.

    Numbers follow JSON's grammar (ASCII digits, no NaN, Infinity, `_` or spaces, finite), so
    a parameter never becomes a value that JSON cannot carry.
    """
    kind = schema.get("type")
    if isinstance(raw, list):
        items = schema.get("items", {})
        return [coerce(item, items if isinstance(items, Mapping) else {}) for item in raw]
    if not isinstance(raw, str):
        return raw
    if kind == "integer" and _INTEGER.fullmatch(raw):
        try:
            return int(raw)
        except ValueError:  # beyond Python's digit limit for int()
            return raw
    if kind == "number" and _NUMBER.fullmatch(raw):
        number = float(raw)
        return number if math.isfinite(number) else raw
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    return raw
