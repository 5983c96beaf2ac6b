"""The records a handler receives, in Lambda's shapes.

`sqs_event` turns received messages into `{"Records": [...]}` exactly as Lambda's SQS event
source mapping does, as plain dicts; a consumer sends a worker the same event packed
(`pack_sqs_event`), and the worker unpacks it. `SQSRecord` is a typed view for new code. A handler's
`batchItemFailures` response is read by `core.settlement`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fanstack.core.arns import arn_scope
from fanstack.core.message import STRING_ARRAY, ReceivedMessage
from fanstack.core.specs import QueueSpec

SENDER_ID = "fanstack"


def sqs_record(
    message: ReceivedMessage, queue: QueueSpec, region: str | None = None
) -> dict[str, Any]:
    """One SQS event record, as Lambda hands it to a handler."""
    region = arn_scope().region if region is None else region
    return _record(_packed_record(message), queue.arn, region)


def sqs_event(messages: Sequence[ReceivedMessage], queue: QueueSpec) -> dict[str, Any]:
    """The event for one batch: `{"Records": [...]}`."""
    return unpack_sqs_event(pack_sqs_event(messages, queue).payload)


@dataclass(frozen=True, slots=True)
class PackedSqsEvent:
    """An SQS event as the dispatcher sends it to a worker process: the queue's ARN and the
    region once, then each record's own fields in a list. The worker builds the records
    (`unpack_sqs_event`), so their dicts and MD5s cost the worker's CPU, not the dispatcher's,
    which every function's batches share."""

    payload: list[Any]


def pack_sqs_event(messages: Sequence[ReceivedMessage], queue: QueueSpec) -> PackedSqsEvent:
    """The event for one batch, packed for a worker."""
    return PackedSqsEvent(
        [queue.arn, arn_scope().region, [_packed_record(message) for message in messages]]
    )


def unpack_sqs_event(payload: Sequence[Any]) -> dict[str, Any]:
    """`{"Records": [...]}` of a packed event (`PackedSqsEvent.payload`, as sent)."""
    arn, region, packed = payload
    return {"Records": [_record(fields, arn, region) for fields in packed]}


def _packed_record(message: ReceivedMessage) -> list[Any]:
    attributes: list[tuple[str, str, str, str | None]] = []
    for name, attribute in message.message_attributes.items():
        base = attribute.base_type
        if base == "Binary":
            binary = base64.b64encode(attribute.binary_value or b"").decode()
            attributes.append((name, "Binary", attribute.data_type, binary))
        elif base == STRING_ARRAY:
            # SQS has no String.Array; SNS raw delivery hands it over as a String holding the JSON.
            attributes.append((name, "String", "String", attribute.string_value))
        else:
            attributes.append((name, "String", attribute.data_type, attribute.string_value))
    return [
        message.id,
        message.receipt_handle,
        message.body,
        message.receive_count,
        int(message.sent_timestamp * 1000),
        int(message.first_receive_timestamp * 1000),
        message.group_id,
        message.deduplication_id,
        message.sequence_number,
        message.dead_letter_queue_source_arn,
        attributes,
    ]


def _record(fields: Sequence[Any], arn: str, region: str) -> dict[str, Any]:
    """One record of a packed event (`_packed_record`)."""
    (message_id, handle, body, count, sent, first, group, dedup, sequence, source, attributes) = (
        fields
    )
    system = {
        "ApproximateReceiveCount": str(count),
        "SentTimestamp": str(sent),
        "SenderId": SENDER_ID,
        "ApproximateFirstReceiveTimestamp": str(first),
    }
    if group is not None:
        system["MessageGroupId"] = group
    if dedup is not None:
        system["MessageDeduplicationId"] = dedup
    if sequence is not None:
        system["SequenceNumber"] = str(sequence)
    if source is not None:
        system["DeadLetterQueueSourceArn"] = source
    return {
        "messageId": message_id,
        "receiptHandle": handle,
        "body": body,
        "attributes": system,
        "messageAttributes": {
            name: _record_attribute(kind, data_type, value)
            for name, kind, data_type, value in attributes
        },
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }


def _record_attribute(kind: str, data_type: str, value: str | None) -> dict[str, Any]:
    binary = kind == "Binary"
    return {
        "stringValue": None if binary else value,
        "binaryValue": value if binary else None,
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": data_type,
    }


@dataclass(frozen=True, slots=True)
class SQSRecord:
    """A typed view of one SQS event record, for handlers written for fanstack."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: Mapping[str, str]
    message_attributes: Mapping[str, Mapping[str, Any]]
    event_source_arn: str

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> SQSRecord:
        """Read a record dict (unknown fields ignored)."""
        return cls(
            message_id=record["messageId"],
            receipt_handle=record["receiptHandle"],
            body=record["body"],
            attributes=record.get("attributes", {}),
            message_attributes=record.get("messageAttributes", {}),
            event_source_arn=record.get("eventSourceARN", ""),
        )

    @property
    def receive_count(self) -> int:
        """How many times the message has been received, this time included."""
        return int(self.attributes.get("ApproximateReceiveCount", "1"))

    @property
    def json_body(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)

    @property
    def message(self) -> Any:
        """The published message: the body, or the `Message` inside an SNS envelope."""
        document = self.json_body
        if isinstance(document, dict) and document.get("Type") == "Notification":
            return json.loads(document["Message"])
        return document

    def attribute(self, name: str) -> str | None:
        """A message attribute's string value, or None."""
        value = self.message_attributes.get(name)
        return None if value is None else value.get("stringValue")


def records(event: Mapping[str, Any]) -> list[SQSRecord]:
    """Typed views of every record of an SQS event."""
    return [SQSRecord.from_dict(record) for record in event.get("Records", [])]
