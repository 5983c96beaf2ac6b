"""The records a handler receives, in Lambda's shapes.

`sqs_event` turns received messages into `{"Records": [...]}` exactly as Lambda's SQS event
source mapping does, as plain dicts; `SQSRecord` is a typed view for new code. A handler's
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
from fanstack.core.message import STRING_ARRAY, MessageAttribute, ReceivedMessage
from fanstack.core.specs import QueueSpec

SENDER_ID = "fanstack"


def sqs_record(
    message: ReceivedMessage, queue: QueueSpec, region: str | None = None
) -> dict[str, Any]:
    """One SQS event record, as Lambda hands it to a handler."""
    attributes = {
        "ApproximateReceiveCount": str(message.receive_count),
        "SentTimestamp": str(int(message.sent_timestamp * 1000)),
        "SenderId": SENDER_ID,
        "ApproximateFirstReceiveTimestamp": str(int(message.first_receive_timestamp * 1000)),
    }
    if message.group_id is not None:
        attributes["MessageGroupId"] = message.group_id
    if message.deduplication_id is not None:
        attributes["MessageDeduplicationId"] = message.deduplication_id
    if message.sequence_number is not None:
        attributes["SequenceNumber"] = str(message.sequence_number)
    if message.dead_letter_queue_source_arn is not None:
        attributes["DeadLetterQueueSourceArn"] = message.dead_letter_queue_source_arn
    return {
        "messageId": message.id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": {
            name: _record_attribute(attribute)
            for name, attribute in message.message_attributes.items()
        },
        "md5OfBody": hashlib.md5(message.body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": arn_scope().region if region is None else region,
    }


def _record_attribute(attribute: MessageAttribute) -> dict[str, Any]:
    base = attribute.base_type
    if base == "Binary":
        binary = base64.b64encode(attribute.binary_value or b"").decode()
        return {
            "stringValue": None,
            "binaryValue": binary,
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": attribute.data_type,
        }
    if base == STRING_ARRAY:
        # SQS has no String.Array; SNS raw delivery hands it over as a String holding the JSON.
        return _string_attribute(attribute.string_value, "String")
    return _string_attribute(attribute.string_value, attribute.data_type)


def _string_attribute(value: str | None, data_type: str) -> dict[str, Any]:
    return {
        "stringValue": value,
        "binaryValue": None,
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": data_type,
    }


def sqs_event(messages: Sequence[ReceivedMessage], queue: QueueSpec) -> dict[str, Any]:
    """The event for one batch: `{"Records": [...]}`."""
    region = arn_scope().region
    return {"Records": [sqs_record(message, queue, region) for message in messages]}


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
