"""Amazon SQS's API on fanstack's queues: every operation of the current API.

A queue made here is the queue an app declares with `app.queue(...)`: the same spec in the same
store, listed by `fanstack queues`, consumed by the app's functions. Operations take and return
the parameters of botocore's SQS model (the codec turns them into either wire protocol).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from fanstack.aws.context import CallContext, name_from_arn, name_from_queue_url
from fanstack.aws.services.sqs_attributes import (
    QueueExtras,
    attributes_of,
    check_tags,
    extras_of,
    forget_extras,
    kept_attributes,
    save_extras,
    spec_from_attributes,
)
from fanstack.aws.services.sqs_messages import (
    md5_of_attributes,
    md5_of_body,
    received_message,
)
from fanstack.aws.services.sqs_moves import MessageMoves
from fanstack.core.batch import BatchResult, check_batch_size, entry_ids
from fanstack.core.errors import (
    FanstackError,
    InvalidParameterValue,
    MissingParameter,
    QueueNameExists,
)
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
from fanstack.resources import Queue, delete_queue

Handler = Callable[[CallContext, Mapping[str, Any]], dict[str, Any]]
INTERNAL_PREFIX = "fanstack-"
MAX_LIST_RESULTS = 1000


def _queue(call: CallContext, params: Mapping[str, Any]) -> Queue:
    """The queue a call names by its `QueueUrl` (QueueDoesNotExist if absent)."""
    url = params.get("QueueUrl")
    if not url:
        raise MissingParameter("The request must contain the parameter QueueUrl.")
    spec = call.backend.get_queue(name_from_queue_url(str(url)))
    return Queue(spec, lambda: call.backend)


# -- queues ----------------------------------------------------------------------------------


def create_queue(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = str(params.get("QueueName") or "")
    if not name:
        raise MissingParameter("The request must contain the parameter QueueName.")
    attributes = dict(params.get("Attributes") or {})
    tags = dict(params.get("tags") or {})
    check_tags(tags)
    spec = spec_from_attributes(name, attributes)
    backend = call.backend
    try:
        existing = backend.get_queue(name)
    except FanstackError:
        existing = None
    if existing is not None:
        extras = extras_of(backend, name)
        given = kept_attributes(attributes)
        if existing != spec or any(extras.attributes.get(k) != v for k, v in given.items()):
            raise QueueNameExists(
                f"A queue already exists with the same name ({name}) and a different value "
                "for an attribute"
            )
        return {"QueueUrl": call.queue_url(name)}
    if spec.dead_letter is not None:
        backend.declare_queue(spec)  # checks the dead-letter queue exists and matches
    else:
        backend.create_queue(spec)
    now = time.time()
    save_extras(backend, name, QueueExtras(now, now, kept_attributes(attributes), tags))
    return {"QueueUrl": call.queue_url(name)}


def get_queue_url(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = str(params.get("QueueName") or "")
    call.backend.get_queue(name)
    return {"QueueUrl": call.queue_url(name)}


def list_queues(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    prefix = str(params.get("QueueNamePrefix") or "")
    limit = params.get("MaxResults")
    if limit is not None:
        check_range("MaxResults", int(limit), 1, MAX_LIST_RESULTS)
    names = sorted(
        spec.name
        for spec in call.backend.list_queues()
        if spec.name.startswith(prefix) and not spec.name.startswith(INTERNAL_PREFIX)
    )
    after = str(params.get("NextToken") or "")
    names = [name for name in names if name > after]
    page = names if limit is None else names[: int(limit)]
    answer: dict[str, Any] = {}
    if page:
        answer["QueueUrls"] = [call.queue_url(name) for name in page]
    if limit is not None and len(names) > len(page):
        answer["NextToken"] = page[-1]
    return answer


def delete_queue_operation(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = _queue(call, params)
    # As SQS does: whatever pointed at the queue stops pointing at it.
    delete_queue(call.backend, queue.name, force=True)
    forget_extras(call.backend, queue.name)
    return {}


def get_queue_attributes(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = _queue(call, params)
    extras = extras_of(call.backend, queue.name)
    names = list(params.get("AttributeNames") or [])
    values = attributes_of(call, queue.spec, extras, names)
    return {"Attributes": values} if values else {}


def set_queue_attributes(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = _queue(call, params)
    attributes = dict(params.get("Attributes") or {})
    spec = spec_from_attributes(queue.name, attributes, base=queue.spec)
    backend = call.backend
    if spec != queue.spec:
        backend.declare_queue(spec)
    extras = extras_of(backend, queue.name)
    kept = {**extras.attributes, **kept_attributes(attributes)}
    save_extras(backend, queue.name, replace(extras, attributes=kept, modified=time.time()))
    return {}


def purge_queue(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    _queue(call, params).purge()
    return {}


def list_dead_letter_source_queues(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    target = _queue(call, params).name
    sources = sorted(s.name for s in call.backend.list_queues() if s.dead_letter == target)
    after = str(params.get("NextToken") or "")
    sources = [name for name in sources if name > after]
    limit = params.get("MaxResults")
    page = sources if limit is None else sources[: int(limit)]
    answer: dict[str, Any] = {"queueUrls": [call.queue_url(name) for name in page]}
    if limit is not None and len(sources) > len(page):
        answer["NextToken"] = page[-1]
    return answer


# -- tags and permissions -------------------------------------------------------------------


def tag_queue(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = _queue(call, params)
    extras = extras_of(call.backend, queue.name)
    tags = {**extras.tags, **dict(params.get("Tags") or {})}
    check_tags(tags)
    save_extras(call.backend, queue.name, replace(extras, tags=tags))
    return {}


def untag_queue(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = _queue(call, params)
    extras = extras_of(call.backend, queue.name)
    removed = set(params.get("TagKeys") or [])
    tags = {k: v for k, v in extras.tags.items() if k not in removed}
    save_extras(call.backend, queue.name, replace(extras, tags=tags))
    return {}


def list_queue_tags(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    tags = extras_of(call.backend, _queue(call, params).name).tags
    return {"Tags": tags} if tags else {}


def add_permission(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Kept in the queue's Policy (fanstack does not enforce IAM)."""
    queue = _queue(call, params)
    label = str(params.get("Label") or "")
    if not label:
        raise MissingParameter("The request must contain the parameter Label.")
    extras = extras_of(call.backend, queue.name)
    policy = json.loads(extras.attributes.get("Policy") or '{"Version":"2012-10-17"}')
    statements = [s for s in policy.get("Statement", []) if s.get("Sid") != label]
    statements.append(
        {
            "Sid": label,
            "Effect": "Allow",
            "Principal": {
                "AWS": [f"arn:aws:iam::{a}:root" for a in params.get("AWSAccountIds", [])]
            },
            "Action": [f"SQS:{action}" for action in params.get("Actions", [])],
            "Resource": call.arn("sqs", queue.name),
        }
    )
    policy["Statement"] = statements
    attributes = {**extras.attributes, "Policy": json.dumps(policy)}
    save_extras(call.backend, queue.name, replace(extras, attributes=attributes))
    return {}


def remove_permission(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = _queue(call, params)
    label = str(params.get("Label") or "")
    extras = extras_of(call.backend, queue.name)
    policy = json.loads(extras.attributes.get("Policy") or "{}")
    statements = [s for s in policy.get("Statement", []) if s.get("Sid") != label]
    if len(statements) == len(policy.get("Statement", [])):
        raise InvalidParameterValue(f"Value {label} for parameter Label is invalid: no such label")
    policy["Statement"] = statements
    attributes = {**extras.attributes, "Policy": json.dumps(policy)}
    save_extras(call.backend, queue.name, replace(extras, attributes=attributes))
    return {}


# -- messages -------------------------------------------------------------------------------


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
    queue = _queue(call, params)
    message = _outgoing(params)
    (outcome,) = call.backend.send(queue.name, [message])
    if isinstance(outcome, FanstackError):
        raise outcome
    return _sent(message, str(outcome))


def send_message_batch(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = _queue(call, params)
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


def receive_message(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = _queue(call, params)
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
    queue = _queue(call, params)
    handle = params.get("ReceiptHandle")
    if not handle:
        raise MissingParameter("The request must contain the parameter ReceiptHandle.")
    queue.delete(str(handle))
    return {}


def delete_message_batch(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = _queue(call, params)
    entries = [
        {"id": e.get("Id"), "receipt_handle": e.get("ReceiptHandle") or ""}
        for e in params.get("Entries") or []
    ]
    return _batch_answer(queue.delete_batch(entries))


def change_message_visibility(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = _queue(call, params)
    handle = str(params.get("ReceiptHandle") or "")
    queue.change_visibility(handle, int(params["VisibilityTimeout"]))
    return {}


def change_message_visibility_batch(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = _queue(call, params)
    entries = [
        {
            "id": e.get("Id"),
            "receipt_handle": e.get("ReceiptHandle") or "",
            "visibility_timeout": e.get("VisibilityTimeout", 0),
        }
        for e in params.get("Entries") or []
    ]
    return _batch_answer(queue.change_visibility_batch(entries))


# -- message move tasks (DLQ redrive) -------------------------------------------------------


def start_message_move_task(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    source = name_from_arn(str(params.get("SourceArn") or ""))
    destination = params.get("DestinationArn")
    rate = params.get("MaxNumberOfMessagesPerSecond")
    handle = MessageMoves(call.backend).start(
        call,
        source,
        None if destination is None else name_from_arn(str(destination)),
        None if rate is None else int(rate),
    )
    return {"TaskHandle": handle}


def cancel_message_move_task(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    moved = MessageMoves(call.backend).cancel(str(params.get("TaskHandle") or ""))
    return {"ApproximateNumberOfMessagesMoved": moved}


def list_message_move_tasks(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    source = name_from_arn(str(params.get("SourceArn") or ""))
    limit = int(params.get("MaxResults") or 1)
    check_range("MaxResults", limit, 1, 10)
    return {"Results": MessageMoves(call.backend).recent(source, limit)}


OPERATIONS: dict[str, Handler] = {
    "CreateQueue": create_queue,
    "GetQueueUrl": get_queue_url,
    "ListQueues": list_queues,
    "DeleteQueue": delete_queue_operation,
    "GetQueueAttributes": get_queue_attributes,
    "SetQueueAttributes": set_queue_attributes,
    "PurgeQueue": purge_queue,
    "ListDeadLetterSourceQueues": list_dead_letter_source_queues,
    "TagQueue": tag_queue,
    "UntagQueue": untag_queue,
    "ListQueueTags": list_queue_tags,
    "AddPermission": add_permission,
    "RemovePermission": remove_permission,
    "SendMessage": send_message,
    "SendMessageBatch": send_message_batch,
    "ReceiveMessage": receive_message,
    "DeleteMessage": delete_message,
    "DeleteMessageBatch": delete_message_batch,
    "ChangeMessageVisibility": change_message_visibility,
    "ChangeMessageVisibilityBatch": change_message_visibility_batch,
    "StartMessageMoveTask": start_message_move_task,
    "CancelMessageMoveTask": cancel_message_move_task,
    "ListMessageMoveTasks": list_message_move_tasks,
}
