"""The SQS event a worker builds from what the dispatcher packs is Lambda's, field for field."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import Any

from fanstack.core.arns import queue_arn
from fanstack.core.message import MessageAttribute, ReceivedMessage
from fanstack.core.specs import QueueSpec
from fanstack.runtime.protocol import FrameReader, encode
from fanstack.runtime.records import pack_sqs_event, sqs_event, unpack_sqs_event


def crossed(value: Any) -> Any:
    """`value` as a worker reads it: through a real pipe, in the protocol's frames."""
    read, write = os.pipe()
    try:
        os.write(write, encode(value))
        return FrameReader(read).read(time.monotonic() + 5)
    finally:
        os.close(read)
        os.close(write)


def test_a_packed_event_unpacks_to_lambdas_records() -> None:
    queue = QueueSpec(name="orders.fifo", fifo=True)
    attributes = {
        "market": MessageAttribute("String", "ru"),
        "total": MessageAttribute("Number.float", "12.5"),
        "blob": MessageAttribute("Binary", binary_value=b"\x00\xffbytes"),
        "tags": MessageAttribute("String.Array", '["a","b"]'),
    }
    fifo = ReceivedMessage(
        id="m-1",
        body='{"order_id": "o-1", "note": "ünïcode"}',
        message_attributes=attributes,
        receipt_handle="7:abc",
        receive_count=3,
        sent_timestamp=1_700_000_000.1234,
        first_receive_timestamp=1_700_000_001.9876,
        queue=queue.name,
        group_id="g-1",
        deduplication_id="d-1",
        sequence_number=7,
        source_queue="orders-src.fifo",
    )
    plain = ReceivedMessage(
        id="m-2",
        body="plain",
        message_attributes={},
        receipt_handle="8:def",
        receive_count=1,
        sent_timestamp=1_700_000_002.0,
        first_receive_timestamp=1_700_000_002.5,
        queue=queue.name,
    )
    event = unpack_sqs_event(crossed(pack_sqs_event([fifo, plain], queue).payload))
    first, second = event["Records"]
    assert first == {
        "messageId": "m-1",
        "receiptHandle": "7:abc",
        "body": fifo.body,
        "attributes": {
            "ApproximateReceiveCount": "3",
            "SentTimestamp": "1700000000123",
            "SenderId": "fanstack",
            "ApproximateFirstReceiveTimestamp": "1700000001987",
            "MessageGroupId": "g-1",
            "MessageDeduplicationId": "d-1",
            "SequenceNumber": "7",
            "DeadLetterQueueSourceArn": queue_arn("orders-src.fifo"),
        },
        "messageAttributes": {
            "market": string_attribute("ru", "String"),
            "total": string_attribute("12.5", "Number.float"),
            "blob": {
                "stringValue": None,
                "binaryValue": base64.b64encode(b"\x00\xffbytes").decode(),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
            # SQS has no String.Array: raw delivery hands it over as a String of the JSON
            "tags": string_attribute('["a","b"]', "String"),
        },
        "md5OfBody": hashlib.md5(fifo.body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": queue.arn.split(":")[3],
    }
    assert second["attributes"] == {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1700000002000",
        "SenderId": "fanstack",
        "ApproximateFirstReceiveTimestamp": "1700000002500",
    }
    assert second["messageAttributes"] == {}
    # what the dispatcher would have built itself is the same event
    assert sqs_event([fifo, plain], queue) == event


def string_attribute(value: str, data_type: str) -> dict[str, Any]:
    return {
        "stringValue": value,
        "binaryValue": None,
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": data_type,
    }
