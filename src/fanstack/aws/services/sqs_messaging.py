"""SQS's message operations on the wire: send (and batch), receive, delete (and batch),
change visibility (and batch), with SQS's MD5 digests and per-entry batch answers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.services.sqs_attributes import queue_named
from fanstack.aws.services.sqs_messages import md5_of_attributes, md5_of_body, received_message
from fanstack.core.batch import BatchResult, check_batch_size, entry_ids
from fanstack.core.errors import FanstackError, InvalidParameterValue, MissingParameter
from fanstack.core.message import (
    QUEUE_BATCH_MAX_BYTES,
    OutgoingMessage,
    ReceivedMessage,
    body_text,
    message_size,
    to_attributes,
    with_trace_context,
)
from fanstack.core.records import new_message_id
from fanstack.core.specs import MAX_WAIT_SECONDS, check_range


def _outgoing(params: Mapping[str, Any]) -> OutgoingMessage:
    """A message to store, from SendMessage's (or one batch entry's) parameters."""
    if "MessageBody" not in params or params["MessageBody"] is None:
        raise MissingParameter("The request must contain the parameter MessageBody.")
    attributes = to_attributes(dict(params.get("MessageAttributes") or {}))
    system = dict(params.get("MessageSystemAttributes") or {})
    trace = system.pop("AWSTraceHeader", None)
    if system:
        raise InvalidParameterValue(
            f"Message system attribute {sorted(system)[0]} is not supported; only AWSTraceHeader"
        )
    if trace is not None:
        header = trace.get("StringValue") if isinstance(trace, Mapping) else None
        if not header:
            raise InvalidParameterValue("AWSTraceHeader must be a String with a value")
        attributes = with_trace_context(attributes, json.dumps({"AWSTraceHeader": header}))
    delay = params.get("DelaySeconds")
    return OutgoingMessage(
        id=new_message_id(),
        body=body_text(params["MessageBody"]),
        attributes=attributes,
        delay_seconds=None if delay is None else int(delay),
        group_id=params.get("MessageGroupId"),
        deduplication_id=params.get("MessageDeduplicationId"),
    )


def _sent(message: OutgoingMessage, message_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "MessageId": message_id,
        "MD5OfMessageBody": md5_of_body(message.body),
    }
    user = {k: v for k, v in message.attributes.items() if not k.startswith("AWS.")}
    digest = md5_of_attributes(user)
    if digest is not None:
        answer["MD5OfMessageAttributes"] = digest
    return answer


def send_message(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = queue_named(call, params)
    message = _outgoing(params)
    (outcome,) = call.backend.send(queue.name, [message])
    if isinstance(outcome, FanstackError):
        raise outcome
    return _sent(message, str(outcome))


def send_message_batch(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = queue_named(call, params)
    entries = list(params.get("Entries") or [])
    ids = entry_ids([{"id": e.get("Id")} for e in entries])
    built: list[OutgoingMessage | FanstackError] = []
    for entry in entries:
        try:
            built.append(_outgoing(entry))
        except FanstackError as error:
            built.append(error)
    valid = [m for m in built if isinstance(m, OutgoingMessage)]
    sizes = (message_size(m.body, m.attributes) for m in valid)
    check_batch_size(sizes, max_bytes=QUEUE_BATCH_MAX_BYTES)
    stored = iter(call.backend.send(queue.name, valid) if valid else [])
    successful: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for entry_id, item in zip(ids, built, strict=True):
        outcome = item if isinstance(item, FanstackError) else next(stored)
        if isinstance(outcome, FanstackError):
            failed.append(_failure(entry_id, outcome))
        else:
            assert isinstance(item, OutgoingMessage)
            successful.append({"Id": entry_id, **_sent(item, str(outcome))})
    return {"Successful": successful, "Failed": failed}


def _failure(entry_id: str, error: FanstackError) -> dict[str, Any]:
    return {
        "Id": entry_id,
        "SenderFault": error.sender_fault,
        "Code": error.code,
        "Message": str(error),
    }


def _batch_answer(result: BatchResult) -> dict[str, Any]:
    return {
        "Successful": [{"Id": s.id} for s in result.successful],
        "Failed": [
            {"Id": f.id, "SenderFault": f.sender_fault, "Code": f.code, "Message": f.message}
            for f in result.failed
        ],
    }


def receive_waits(call: CallContext, params: Mapping[str, Any]) -> bool:
    """Whether a ReceiveMessage long polls: its WaitTimeSeconds, else the queue's default (a
    call that names no queue, or one that does not exist, fails at once)."""
    wait = params.get("WaitTimeSeconds")
    if wait is not None:
        return int(wait) > 0
    try:
        return queue_named(call, params).spec.receive_wait > 0
    except FanstackError:
        return False


def receive_message(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = queue_named(call, params)
    wait = params.get("WaitTimeSeconds")
    if wait is not None:
        check_range("WaitTimeSeconds", int(wait), 0, MAX_WAIT_SECONDS)
    visibility = params.get("VisibilityTimeout")
    messages = queue.receive(
        max_messages=int(params.get("MaxNumberOfMessages") or 1),
        wait_seconds=None if wait is None else int(wait),
        visibility_timeout=None if visibility is None else int(visibility),
    )
    system_names = [
        *(params.get("AttributeNames") or []),
        *(params.get("MessageSystemAttributeNames") or []),
    ]
    attribute_names = list(params.get("MessageAttributeNames") or [])
    shaped = [
        received_message(
            call,
            message,
            system_names=system_names,
            attribute_names=attribute_names,
            trace_header=_trace_header(message),
        )
        for message in messages
    ]
    return {"Messages": shaped} if shaped else {}


def _trace_header(message: ReceivedMessage) -> str | None:
    if message.trace_context is None:
        return None
    try:
        carried = json.loads(message.trace_context)
    except ValueError:
        return None
    header = carried.get("AWSTraceHeader") if isinstance(carried, dict) else None
    return str(header) if header else None


def delete_message(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = queue_named(call, params)
    handle = params.get("ReceiptHandle")
    if not handle:
        raise MissingParameter("The request must contain the parameter ReceiptHandle.")
    queue.delete(str(handle))
    return {}


def delete_message_batch(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = queue_named(call, params)
    entries = [
        {"id": e.get("Id"), "receipt_handle": e.get("ReceiptHandle") or ""}
        for e in params.get("Entries") or []
    ]
    return _batch_answer(queue.delete_batch(entries))


def change_message_visibility(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = queue_named(call, params)
    handle = str(params.get("ReceiptHandle") or "")
    queue.change_visibility(handle, int(params["VisibilityTimeout"]))
    return {}


def change_message_visibility_batch(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = queue_named(call, params)
    entries = [
        {
            "id": e.get("Id"),
            "receipt_handle": e.get("ReceiptHandle") or "",
            "visibility_timeout": e.get("VisibilityTimeout", 0),
        }
        for e in params.get("Entries") or []
    ]
    return _batch_answer(queue.change_visibility_batch(entries))
