"""Amazon SQS's API on fanstack's queues: every operation of the current API, by name.

Queues, their attributes, tags and permissions are here; messages in `sqs_messaging`, message
move tasks in `sqs_moves`. A queue made here is the queue an app declares with `app.queue(...)`:
the same spec in the same store, listed by `fanstack queues`, consumed by the app's functions.
Operations take and return the parameters of botocore's SQS model (the codec turns them into
either wire protocol).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from fanstack.aws.context import CallContext, name_from_arn
from fanstack.aws.services import sqs_messaging as messaging
from fanstack.aws.services.sqs_attributes import (
    QueueExtras,
    attributes_of,
    check_tags,
    extras_of,
    forget_extras,
    kept_attributes,
    queue_named,
    save_extras,
    spec_from_attributes,
)
from fanstack.aws.services.sqs_moves import MessageMoves
from fanstack.core.errors import (
    FanstackError,
    InvalidParameterValue,
    MissingParameter,
    QueueNameExists,
)
from fanstack.core.specs import check_range
from fanstack.resources import delete_queue

Handler = Callable[[CallContext, Mapping[str, Any]], dict[str, Any]]
INTERNAL_PREFIX = "fanstack-"
MAX_LIST_RESULTS = 1000


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
    queue = queue_named(call, params)
    # As SQS does: whatever pointed at the queue stops pointing at it.
    delete_queue(call.backend, queue.name, force=True)
    forget_extras(call.backend, queue.name)
    return {}


def get_queue_attributes(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = queue_named(call, params)
    extras = extras_of(call.backend, queue.name)
    names = list(params.get("AttributeNames") or [])
    values = attributes_of(call, queue.spec, extras, names)
    return {"Attributes": values} if values else {}


def set_queue_attributes(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = queue_named(call, params)
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
    queue_named(call, params).purge()
    return {}


def list_dead_letter_source_queues(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    target = queue_named(call, params).name
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
    queue = queue_named(call, params)
    extras = extras_of(call.backend, queue.name)
    tags = {**extras.tags, **dict(params.get("Tags") or {})}
    check_tags(tags)
    save_extras(call.backend, queue.name, replace(extras, tags=tags))
    return {}


def untag_queue(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    queue = queue_named(call, params)
    extras = extras_of(call.backend, queue.name)
    removed = set(params.get("TagKeys") or [])
    tags = {k: v for k, v in extras.tags.items() if k not in removed}
    save_extras(call.backend, queue.name, replace(extras, tags=tags))
    return {}


def list_queue_tags(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    tags = extras_of(call.backend, queue_named(call, params).name).tags
    return {"Tags": tags} if tags else {}


def add_permission(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Kept in the queue's Policy (fanstack does not enforce IAM)."""
    queue = queue_named(call, params)
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
    queue = queue_named(call, params)
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
    "SendMessage": messaging.send_message,
    "SendMessageBatch": messaging.send_message_batch,
    "ReceiveMessage": messaging.receive_message,
    "DeleteMessage": messaging.delete_message,
    "DeleteMessageBatch": messaging.delete_message_batch,
    "ChangeMessageVisibility": messaging.change_message_visibility,
    "ChangeMessageVisibilityBatch": messaging.change_message_visibility_batch,
    "StartMessageMoveTask": start_message_move_task,
    "CancelMessageMoveTask": cancel_message_move_task,
    "ListMessageMoveTasks": list_message_move_tasks,
}
