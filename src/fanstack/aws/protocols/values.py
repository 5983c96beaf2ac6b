"""Scalar values on the wire: timestamps, blobs, numbers and booleans, both ways.

Every protocol writes the same few scalar forms (ISO 8601, epoch seconds or HTTP dates for
timestamps; base64 for blobs; `NaN`/`Infinity` for special floats), so they are read and written
here once. Readers raise `ValueError` on a malformed value; each protocol turns that into its own
error code.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from botocore.model import Shape

ISO8601 = "iso8601"
UNIX_TIMESTAMP = "unixtimestamp"
RFC822 = "rfc822"
SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
INTEGER_TYPES = ("integer", "long", "short", "byte")
FLOAT_TYPES = ("float", "double")


def timestamp_format(shape: Shape, default: str) -> str:
    """A member's timestamp format: its `timestampFormat` trait, else the location's default."""
    return str(shape.serialization.get("timestampFormat", default)).lower()


def read_timestamp(value: Any) -> datetime:
    """A timestamp in any AWS form (epoch seconds, ISO 8601, HTTP date) as an aware UTC datetime."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a timestamp")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    text = str(value).strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"{text!r} is not a timestamp") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def as_datetime(value: Any) -> datetime:
    """A timestamp from a service (datetime, epoch number or string) as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return read_timestamp(value)


def write_timestamp(value: Any, fmt: str) -> str | int | float:
    """A timestamp in format `fmt`; epoch seconds stay a number (an int when whole)."""
    moment = as_datetime(value)
    if fmt == UNIX_TIMESTAMP:
        seconds = round(moment.timestamp(), 6)
        return int(seconds) if seconds.is_integer() else seconds
    if fmt == RFC822:
        return format_datetime(moment.replace(microsecond=0), usegmt=True)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_blob(text: str) -> bytes:
    """A base64 blob as bytes."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{text[:40]!r} is not valid base64") from exc


def write_blob(value: bytes | bytearray | str) -> str:
    """Bytes (or text, as UTF-8) in base64."""
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return base64.b64encode(data).decode("ascii")


def read_float(text: str) -> float:
    """A float written as text, including `NaN`, `Infinity` and `-Infinity`."""
    if text in SPECIAL_FLOATS:
        return SPECIAL_FLOATS[text]
    number = float(text)
    if math.isnan(number) or math.isinf(number):
        raise ValueError(f"{text!r} is not a number")
    return number


def write_float(value: float) -> str | float:
    """A float for the wire: special values as AWS spells them, others unchanged."""
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return value


def float_text(value: float) -> str:
    """A float as text (query string, header, XML), whole numbers without a trailing `.0`."""
    special = write_float(value)
    if isinstance(special, str):
        return special
    return str(value)


def read_boolean(text: str) -> bool:
    """`true` or `false` (any case) as a bool."""
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"{text!r} is not a boolean")
    return lowered == "true"


def read_scalar_text(shape: Shape, text: str, timestamp_default: str) -> Any:
    """A scalar member written as text (query parameter, header, URI label, XML) as its value."""
    kind = shape.type_name
    if kind in INTEGER_TYPES:
        return int(text.strip())
    if kind in FLOAT_TYPES:
        return read_float(text.strip())
    if kind == "boolean":
        return read_boolean(text)
    if kind == "blob":
        return read_blob(text)
    if kind == "timestamp":
        del timestamp_default  # every AWS form is accepted on input, whatever the trait says
        return read_timestamp(text)
    return text


def write_scalar_text(shape: Shape, value: Any, timestamp_default: str) -> str:
    """A scalar member's value as text (query parameter, header, URI label, XML)."""
    kind = shape.type_name
    if kind == "boolean":
        return "true" if value else "false"
    if kind in FLOAT_TYPES:
        return float_text(value)
    if kind == "blob":
        return write_blob(value)
    if kind == "timestamp":
        return str(write_timestamp(value, timestamp_format(shape, timestamp_default)))
    return str(value)
