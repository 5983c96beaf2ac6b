"""SQS messages on the wire: MD5 digests as SQS computes them, and received messages' shape."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.core.message import MessageAttribute, ReceivedMessage

SENDER_ID = "AIDAFANSTACK000000000"
SYSTEM_ATTRIBUTES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageDeduplicationId",
    "MessageGroupId",
    "DeadLetterQueueSourceArn",
    "AWSTraceHeader",
)


def md5_of_body(body: str) -> str:
    """`MD5OfMessageBody`: the hex MD5 of the body's UTF-8 bytes."""
    return hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()


def md5_of_attributes(attributes: Mapping[str, MessageAttribute]) -> str | None:
    """`MD5OfMessageAttributes`, as SQS computes it (None without attributes): per attribute,
    sorted by name, the length-prefixed name, data type, a transport byte (1 for strings and
    numbers, 2 for binary) and the length-prefixed value."""
    if not attributes:
        return None
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        attribute = attributes[name]
        digest.update(_prefixed(name.encode()))
        digest.update(_prefixed(attribute.data_type.encode()))
        if attribute.binary_value is not None:
            digest.update(b"\x02")
            digest.update(_prefixed(attribute.binary_value))
        else:
            digest.update(b"\x01")
            digest.update(_prefixed((attribute.string_value or "").encode()))
    return digest.hexdigest()


def _prefixed(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def wire_attributes(attributes: Mapping[str, MessageAttribute]) -> dict[str, dict[str, Any]]:
    """Message attributes in SQS's shape (binary values as bytes)."""
    shaped: dict[str, dict[str, Any]] = {}
    for name, attribute in attributes.items():
        if attribute.binary_value is not None:
            shaped[name] = {"DataType": attribute.data_type, "BinaryValue": attribute.binary_value}
        else:
            shaped[name] = {"DataType": attribute.data_type, "StringValue": attribute.string_value}
    return shaped


def selected(names: Iterable[str], all_names: Iterable[str]) -> set[str]:
    """Which names a receive asked for: `All` or `.*` for every one, `prefix.*` for a family."""
    wanted = list(names)
    chosen: set[str] = set()
    for name in all_names:
        for pattern in wanted:
            family = pattern.endswith(".*") and name.startswith(pattern[:-2])
            if pattern in ("All", ".*") or pattern == name or family:
                chosen.add(name)
    return chosen


def received_message(
    call: CallContext,
    message: ReceivedMessage,
    *,
    system_names: Iterable[str],
    attribute_names: Iterable[str],
    trace_header: str | None,
) -> dict[str, Any]:
    """One message of a ReceiveMessage answer, with the attributes the caller asked for."""
    system = {
        "SenderId": SENDER_ID,
        "SentTimestamp": str(int(message.sent_timestamp * 1000)),
        "ApproximateReceiveCount": str(message.receive_count),
        "ApproximateFirstReceiveTimestamp": str(int(message.first_receive_timestamp * 1000)),
    }
    if message.sequence_number is not None:
        system["SequenceNumber"] = str(message.sequence_number).zfill(20)
    if message.deduplication_id is not None:
        system["MessageDeduplicationId"] = message.deduplication_id
    if message.group_id is not None:
        system["MessageGroupId"] = message.group_id
    if message.source_queue is not None:
        system["DeadLetterQueueSourceArn"] = call.arn("sqs", message.source_queue)
    if trace_header is not None:
        system["AWSTraceHeader"] = trace_header
    shaped: dict[str, Any] = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": md5_of_body(message.body),
        "Body": message.body,
    }
    chosen = selected(system_names, system)
    if chosen:
        shaped["Attributes"] = {k: v for k, v in system.items() if k in chosen}
    user = message.message_attributes
    picked = {k: user[k] for k in selected(attribute_names, user)}
    if picked:
        shaped["MessageAttributes"] = wire_attributes(picked)
        shaped["MD5OfMessageAttributes"] = md5_of_attributes(picked)
    return shaped
