"""Messages and message attributes, in the SNS/SQS vocabulary, with their validation.

Attributes are given either as plain Python values (str -> String, int/float -> Number,
list -> String.Array, bytes -> Binary) or in the explicit SNS form
`{"DataType": ..., "StringValue": ...}` / `{"DataType": ..., "BinaryValue": ...}`.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from fanstack.core.arns import queue_arn
from fanstack.core.errors import (
    InvalidAttributeName,
    InvalidAttributeValue,
    InvalidMessageContents,
    InvalidParameterValue,
    MessageTooLarge,
    MissingParameter,
)

MAX_ATTRIBUTES = 10
# Where a message carries its trace context (W3C traceparent) and the id of the request that
# caused it. Users cannot name an attribute "AWS.*", so it never clashes with theirs; it is not
# counted against their 10 attributes nor their size limit, and never shown among them.
TRACE_CONTEXT_ATTRIBUTE = "AWS.fanstack.TraceContext"
MAX_ATTRIBUTE_NAME_LENGTH = 256
MAX_DATA_TYPE_LENGTH = 256
MAX_NUMBER_DIGITS = 38
TOPIC_MAX_MESSAGE_BYTES = 262_144
TOPIC_BATCH_MAX_BYTES = 262_144
# SQS raised SendMessageBatch's total with its message size to 1 MiB (Aug 2025; recorded against
# AWS): SEMANTICS.md's "batches keep 256 KiB" holds for PublishBatch only.
QUEUE_BATCH_MAX_BYTES = 1_048_576
MAX_ORDERING_ID_LENGTH = 128
BASE_DATA_TYPES = ("String", "Number", "Binary")
STRING_ARRAY = "String.Array"

_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
# MessageGroupId / MessageDeduplicationId: letters, digits and ASCII punctuation, no spaces.
_ORDERING_ID_CHARACTERS = frozenset(string.ascii_letters + string.digits + string.punctuation)
# Characters SQS allows in a body: #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF.
_INVALID_CHARS = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

AttributeInput = Any
"""A plain value or the explicit `{"DataType": ..., "StringValue"/"BinaryValue": ...}` form."""


@dataclass(frozen=True, slots=True)
class MessageAttribute:
    """One typed message attribute: `data_type` plus its string or binary value."""

    data_type: str
    string_value: str | None = None
    binary_value: bytes | None = None

    @property
    def base_type(self) -> str:
        """`String`, `Number`, `Binary` or `String.Array`, dropping any custom subtype."""
        if self.data_type == STRING_ARRAY:
            return STRING_ARRAY
        return self.data_type.split(".", 1)[0]

    @property
    def value(self) -> Any:
        """The attribute as a Python value: str, int/float, bytes or list."""
        base = self.base_type
        if base == "Binary":
            return self.binary_value
        assert self.string_value is not None
        if base == "Number":
            number = Decimal(self.string_value)
            if number == number.to_integral_value() and "e" not in self.string_value.lower():
                return int(number)
            return float(number)
        if base == STRING_ARRAY:
            return json.loads(self.string_value)
        return self.string_value

    def size(self) -> int:
        """Bytes this attribute counts toward the message size (name excluded)."""
        payload = self.binary_value if self.binary_value is not None else self.string_value or ""
        raw = payload if isinstance(payload, bytes) else payload.encode()
        return len(self.data_type.encode()) + len(raw)

    def to_dict(self) -> dict[str, str]:
        """The explicit SNS form, with binary values base64-encoded."""
        if self.binary_value is not None:
            return {
                "DataType": self.data_type,
                "BinaryValue": base64.b64encode(self.binary_value).decode(),
            }
        return {"DataType": self.data_type, "StringValue": self.string_value or ""}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> MessageAttribute:
        """Read the explicit SNS form (binary values as bytes or base64 text)."""
        data_type = raw.get("DataType")
        if not isinstance(data_type, str):
            raise InvalidAttributeValue("message attribute needs a DataType string")
        if "BinaryValue" in raw:
            binary = raw["BinaryValue"]
            if isinstance(binary, str):
                try:
                    binary = base64.b64decode(binary, validate=True)
                except ValueError as exc:
                    raise InvalidAttributeValue(f"BinaryValue is not valid base64 ({exc})") from exc
            return cls(data_type, binary_value=bytes(binary))
        return cls(data_type, string_value=raw.get("StringValue"))


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message about to be stored in a queue."""

    id: str
    body: str
    attributes: Mapping[str, MessageAttribute] = field(default_factory=dict)
    delay_seconds: int | None = None
    group_id: str | None = None
    deduplication_id: str | None = None

    def with_attributes(self, attributes: Mapping[str, MessageAttribute]) -> OutgoingMessage:
        """This message with `attributes` in place of its own."""
        return OutgoingMessage(
            self.id,
            self.body,
            attributes,
            self.delay_seconds,
            self.group_id,
            self.deduplication_id,
        )


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A message handed out by a receive, with its receipt handle and system attributes."""

    id: str
    body: str
    message_attributes: Mapping[str, MessageAttribute]
    receipt_handle: str
    receive_count: int
    sent_timestamp: float
    first_receive_timestamp: float
    queue: str
    group_id: str | None = None
    deduplication_id: str | None = None
    sequence_number: int | None = None
    failure: str | None = None
    """In a dead-letter queue: the last failure recorded before the message moved there."""
    failed_receives: int = 0
    """Receives that ended in a recorded failure (a handler error)."""
    lost_receives: int | None = None
    """In a dead-letter queue: receives in the source queue that never settled (a consumer
    crashed or was killed holding the message), as opposed to `failed_receives`."""
    source_queue: str | None = None
    """In a dead-letter queue: the queue the message was dead-lettered from."""
    trace_context: str | None = None
    """The trace context it was sent with (`TRACE_CONTEXT_ATTRIBUTE`), if any."""

    @property
    def dead_letter_queue_source_arn(self) -> str | None:
        """In a dead-letter queue: the source queue's ARN (SQS's `DeadLetterQueueSourceArn`)."""
        return None if self.source_queue is None else queue_arn(self.source_queue)

    @property
    def attributes(self) -> dict[str, Any]:
        """Message attributes as plain Python values."""
        return {name: attribute.value for name, attribute in self.message_attributes.items()}


def to_attribute(name: str, raw: AttributeInput) -> MessageAttribute:
    """Turn a plain value or the explicit SNS form into a validated `MessageAttribute`."""
    attribute = _coerce(name, raw)
    validate_attribute(name, attribute)
    return attribute


def to_attributes(raw: Mapping[str, AttributeInput] | None) -> dict[str, MessageAttribute]:
    """Validate and convert a whole attribute mapping, enforcing the 10-attribute limit."""
    if not raw:
        return {}
    if not hasattr(raw, "items"):
        raise InvalidAttributeValue("message attributes must be a mapping of name to value")
    if len(raw) > MAX_ATTRIBUTES:
        raise InvalidParameterValue(
            f"{len(raw)} message attributes given; the limit is {MAX_ATTRIBUTES} per message"
        )
    return {name: to_attribute(name, value) for name, value in raw.items()}


def _coerce(name: str, raw: AttributeInput) -> MessageAttribute:
    if isinstance(raw, str):
        return MessageAttribute("String", string_value=raw)
    if isinstance(raw, MessageAttribute):
        return raw
    if isinstance(raw, Mapping) and "DataType" in raw:
        return MessageAttribute.from_dict(raw)
    if isinstance(raw, bool):
        # SNS has no Boolean type; a bool is a String the way JSON spells it.
        return MessageAttribute("String", string_value="true" if raw else "false")
    if isinstance(raw, int | float | Decimal):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise InvalidAttributeValue(f"attribute {name!r}: Number must be finite, got {raw}")
        return MessageAttribute("Number", string_value=_number_text(raw))
    if isinstance(raw, bytes | bytearray | memoryview):
        return MessageAttribute("Binary", binary_value=bytes(raw))
    if isinstance(raw, list | tuple):
        return MessageAttribute(STRING_ARRAY, string_value=json.dumps(list(raw)))
    raise InvalidAttributeValue(
        f"attribute {name!r}: cannot map {type(raw).__name__} to an SNS data type "
        "(use str, int, float, bytes, list or the explicit DataType form)"
    )


def _number_text(value: int | float | Decimal) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def validate_attribute(name: str, attribute: MessageAttribute) -> None:
    """Raise if the attribute name or value breaks an SNS/SQS rule."""
    validate_attribute_name(name)
    data_type = attribute.data_type
    if len(data_type) > MAX_DATA_TYPE_LENGTH:
        raise InvalidAttributeValue(
            f"attribute {name!r}: DataType longer than {MAX_DATA_TYPE_LENGTH} characters"
        )
    base = attribute.base_type
    if base not in (*BASE_DATA_TYPES, STRING_ARRAY):
        raise InvalidAttributeValue(
            f"attribute {name!r}: DataType {data_type!r} is not String, Number, Binary or "
            "String.Array (custom subtypes like Number.float are allowed)"
        )
    if base == "Binary":
        if not attribute.binary_value:
            raise InvalidAttributeValue(f"attribute {name!r}: Binary needs a non-empty BinaryValue")
        return
    text = attribute.string_value
    if text is None or text == "":
        raise InvalidAttributeValue(f"attribute {name!r}: {data_type} needs a non-empty value")
    check_characters(text, f"attribute {name!r}")
    if base == "Number":
        _validate_number(name, text)
    elif base == STRING_ARRAY:
        _validate_string_array(name, text)


def validate_attribute_name(name: str) -> None:
    """Raise `InvalidAttributeName` unless the name is allowed by SQS/SNS."""
    if not isinstance(name, str) or not name:
        raise InvalidAttributeName("attribute name must be a non-empty string")
    _check_attribute_name(name)


@functools.lru_cache(maxsize=4096)  # apps use a few names over and over; a refusal is not kept
def _check_attribute_name(name: str) -> None:
    if len(name) > MAX_ATTRIBUTE_NAME_LENGTH:
        raise InvalidAttributeName(
            f"attribute name {name[:40]!r}... is longer than {MAX_ATTRIBUTE_NAME_LENGTH} characters"
        )
    if not _ATTRIBUTE_NAME.match(name):
        raise InvalidAttributeName(
            f"attribute name {name!r} may only hold letters, digits, '_', '-' and '.'"
        )
    if name.startswith(".") or name.endswith(".") or ".." in name:
        raise InvalidAttributeName(
            f"attribute name {name!r} may not start or end with '.' or hold '..'"
        )
    if name.lower().startswith(("aws.", "amazon.")):
        raise InvalidAttributeName(f"attribute name {name!r} uses a reserved prefix")


def _validate_number(name: str, text: str) -> None:
    try:
        number = Decimal(text) if text == text.strip() else None  # Decimal would take " 5 "
    except InvalidOperation:
        number = None
    if number is None:
        raise InvalidAttributeValue(
            f"attribute {name!r}: {text!r} is not a Number (digits, sign, point, exponent; "
            "no surrounding spaces)"
        )
    if not number.is_finite():
        raise InvalidAttributeValue(f"attribute {name!r}: Number must be finite, got {text!r}")
    if number != 0 and not (Decimal("1e-128") <= abs(number) <= Decimal("1e126")):
        raise InvalidAttributeValue(
            f"attribute {name!r}: Number {text} is outside the range -10^126 .. 10^126"
        )
    digits = "".join(map(str, number.as_tuple().digits)).rstrip("0")  # trailing zeros don't count
    if len(digits) > MAX_NUMBER_DIGITS:
        raise InvalidAttributeValue(
            f"attribute {name!r}: Number {text} has {len(digits)} significant digits; "
            f"the limit is {MAX_NUMBER_DIGITS}"
        )


def _validate_string_array(name: str, text: str) -> None:
    try:
        values = json.loads(text)
    except ValueError:
        raise InvalidAttributeValue(
            f"attribute {name!r}: String.Array must be a JSON array, got {text[:40]!r}"
        ) from None
    if not isinstance(values, list) or any(isinstance(item, dict | list) for item in values):
        raise InvalidAttributeValue(
            f"attribute {name!r}: String.Array must be a JSON array of strings, numbers, "
            "booleans or null"
        )


def check_characters(text: str, what: str) -> None:
    """Raise `InvalidMessageContents` if the text holds characters SQS does not allow."""
    if text.isprintable():
        return  # fast path: no control, surrogate or non-character code points
    bad = _INVALID_CHARS.search(text)
    if bad:
        raise InvalidMessageContents(
            f"{what} holds the character U+{ord(bad.group()):04X}, outside what SQS allows "
            "(#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF)"
        )


def body_text(body: Any) -> str:
    """A message body as text: str as is, dict/list serialized as JSON."""
    if isinstance(body, str):
        return body
    if isinstance(body, dict | list):
        try:
            return json.dumps(body, separators=(",", ":"), allow_nan=False)
        except ValueError as exc:  # NaN or Infinity: the body would not be JSON
            raise InvalidParameterValue(f"message body is not valid JSON: {exc}") from exc
    raise InvalidParameterValue(
        f"message body must be a str (or a dict/list sent as JSON), got {type(body).__name__}"
    )


def message_size(body: str, attributes: Mapping[str, MessageAttribute]) -> int:
    """Bytes counted against size limits: body plus each attribute's name, type and value."""
    size = len(body.encode())
    for name, attribute in attributes.items():
        if name != TRACE_CONTEXT_ATTRIBUTE:
            size += len(name.encode()) + attribute.size()
    return size


def check_message(
    body: str, attributes: Mapping[str, MessageAttribute], *, max_bytes: int, where: str
) -> int:
    """Validate body characters and total size against `max_bytes`; return the size."""
    if body == "":
        raise MissingParameter(f"message body for {where} must not be empty")
    check_characters(body, f"message body for {where}")
    size = message_size(body, attributes)
    if size > max_bytes:
        raise MessageTooLarge(
            f"message for {where} is {size} bytes (body + attributes); the limit is {max_bytes}"
        )
    return size


def check_ordering_id(
    parameter: str, value: object, *, error: type[InvalidParameterValue] = InvalidParameterValue
) -> None:
    """Raise `error` unless `value` is a valid group or deduplication id (SQS and SNS alike).

    Both are 1-128 characters of letters, digits and ASCII punctuation
    (``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~``); a space is not allowed.
    """
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ORDERING_ID_LENGTH:
        shown = f"{len(value)} characters" if isinstance(value, str) else repr(value)
        raise error(
            f"{parameter} must be a string of 1-{MAX_ORDERING_ID_LENGTH} characters, got {shown}"
        )
    bad = next((c for c in value if c not in _ORDERING_ID_CHARACTERS), None)
    if bad is not None:
        raise error(
            f"{parameter} {value!r} holds {bad!r}; it may hold only letters, digits and ASCII "
            f"punctuation (1-{MAX_ORDERING_ID_LENGTH} characters)"
        )


def encode_attributes(attributes: Mapping[str, MessageAttribute]) -> str | None:
    """Serialize attributes for storage (None when there are none); the trace context, if
    carried, is the last entry."""
    if not attributes:
        return None
    carried = attributes.get(TRACE_CONTEXT_ATTRIBUTE)
    if carried is None:
        return _encode(tuple(attributes.items()))
    # The user's attributes repeat from message to message, the trace context (a request id,
    # a span) does not: the first are serialized once per set, the second is joined to them.
    if carried.data_type == "String" and carried.binary_value is None:
        entry = f'{_CARRIED_HEAD}{json.dumps(carried.string_value or "")}}}}}'
    else:
        entry = json.dumps({TRACE_CONTEXT_ATTRIBUTE: carried.to_dict()})
    user = tuple((name, a) for name, a in attributes.items() if name != TRACE_CONTEXT_ATTRIBUTE)
    if not user:
        return entry
    return f"{_encode(user)[:-1]}, {entry[1:]}"


@functools.lru_cache(maxsize=4096)
def _encode(items: tuple[tuple[str, MessageAttribute], ...]) -> str:
    # Attribute sets repeat (market=eu, ...): equal sets are serialized once.
    return json.dumps({name: a.to_dict() for name, a in items})


_NO_ATTRIBUTES: Mapping[str, MessageAttribute] = MappingProxyType({})
_CARRIED_ENTRY = f", {json.dumps(TRACE_CONTEXT_ATTRIBUTE)}: "
# The trace context's entry as `json.dumps` writes it, up to its value.
_CARRIED_HEAD = json.dumps({TRACE_CONTEXT_ATTRIBUTE: {"DataType": "String", "StringValue": ""}})[
    : -len('""}}')
]


def decode_attributes(text: str | None) -> Mapping[str, MessageAttribute]:
    """The user's attributes written by `encode_attributes` (read-only; equal texts share one
    result), without the trace context."""
    if not text:
        return _NO_ATTRIBUTES
    return _decoded(text)[0]


def decode_trace_context(text: str | None) -> str | None:
    """The trace context stored with attributes by `encode_attributes`, if any."""
    if not text or TRACE_CONTEXT_ATTRIBUTE not in text:
        return None
    return _decoded(text)[1]


def _decoded(text: str) -> tuple[Mapping[str, MessageAttribute], str | None]:
    """The user's attributes and the trace context in `text`. The user's part is read once
    per distinct text (`_decode`): a trace context that ends the text, as `encode_attributes`
    writes it, is read apart, so texts that differ only there share the user's part."""
    at = text.rfind(_CARRIED_ENTRY)
    if at < 0:
        return _decode(text)
    try:
        entry = json.loads("{" + text[at + 2 :])
    except ValueError:
        entry = None
    if not isinstance(entry, dict) or len(entry) != 1:  # not the last entry: read it whole
        return _decode(text)
    user = _decode(text[:at] + "}")[0]
    carried = MessageAttribute.from_dict(entry[TRACE_CONTEXT_ATTRIBUTE]).string_value
    return user, carried


@functools.lru_cache(maxsize=4096)
def _decode(text: str) -> tuple[Mapping[str, MessageAttribute], str | None]:
    decoded = {name: MessageAttribute.from_dict(raw) for name, raw in json.loads(text).items()}
    carried = decoded.pop(TRACE_CONTEXT_ATTRIBUTE, None)
    user = MappingProxyType(decoded) if decoded else _NO_ATTRIBUTES
    return user, None if carried is None else carried.string_value


def user_attributes(attributes: Mapping[str, MessageAttribute]) -> Mapping[str, MessageAttribute]:
    """`attributes` without the trace context (what the user gave)."""
    if TRACE_CONTEXT_ATTRIBUTE not in attributes:
        return attributes
    return {k: v for k, v in attributes.items() if k != TRACE_CONTEXT_ATTRIBUTE}


def with_trace_context(
    attributes: Mapping[str, MessageAttribute], context: str
) -> dict[str, MessageAttribute]:
    """`attributes` carrying `context` as well."""
    return {**attributes, TRACE_CONTEXT_ATTRIBUTE: MessageAttribute("String", string_value=context)}
