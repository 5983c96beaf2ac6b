"""SQS queue attributes on the wire <-> fanstack's `QueueSpec`, and the attributes AWS has and
fanstack only keeps.

What fanstack acts on (visibility timeout, delay, retention, size, wait, redrive policy, FIFO,
content-based deduplication) lives in the queue's spec, shared with `app.queue(...)`. What it
keeps without acting on (Policy, RedriveAllowPolicy, encryption settings, FIFO throughput
settings) and tags live in one table row per queue, beside its created and modified times.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fanstack.aws.context import CallContext, name_from_arn, name_from_queue_url
from fanstack.backends.base import Backend
from fanstack.core.errors import (
    FanstackError,
    InvalidAttributeName,
    InvalidAttributeValue,
    MissingParameter,
)
from fanstack.core.specs import QueueSpec
from fanstack.resources import Queue

QUEUE_EXTRAS_TABLE = "fanstack-aws-queues"
MAX_TAGS = 50

# Attribute name -> QueueSpec field, for the integer attributes.
_INTEGERS = {
    "VisibilityTimeout": "visibility_timeout",
    "DelaySeconds": "delay",
    "MessageRetentionPeriod": "retention",
    "MaximumMessageSize": "max_message_size",
    "ReceiveMessageWaitTimeSeconds": "receive_wait",
}
# Kept as given (with AWS's defaults when never set).
KEPT = {
    "Policy": None,
    "RedriveAllowPolicy": None,
    "KmsMasterKeyId": None,
    "KmsDataKeyReusePeriodSeconds": "300",
    "SqsManagedSseEnabled": "true",
}
FIFO_KEPT = {"DeduplicationScope": "queue", "FifoThroughputLimit": "perQueue"}
READ_ONLY = {
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
}
SETTABLE = {*_INTEGERS, "RedrivePolicy", "ContentBasedDeduplication", *KEPT, *FIFO_KEPT}
CREATE_ONLY = {"FifoQueue"}


@dataclass(frozen=True, slots=True)
class QueueExtras:
    """What a queue has on AWS beyond its spec: kept attributes, tags, timestamps."""

    created: float
    modified: float
    attributes: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "created": self.created,
            "modified": self.modified,
            "attributes": self.attributes,
            "tags": self.tags,
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> QueueExtras:
        """From the stored form."""
        return cls(
            created=float(value.get("created", 0.0)),
            modified=float(value.get("modified", 0.0)),
            attributes=dict(value.get("attributes") or {}),
            tags=dict(value.get("tags") or {}),
        )


def extras_of(backend: Backend, name: str) -> QueueExtras:
    """A queue's extras (for a queue an app declared, created now with its defaults)."""
    item = backend.table_get(QUEUE_EXTRAS_TABLE, name)
    if item is None:
        now = time.time()
        return QueueExtras(created=now, modified=now)
    return QueueExtras.from_dict(item.value)


def save_extras(backend: Backend, name: str, extras: QueueExtras) -> None:
    """Store a queue's extras."""
    backend.table_put(QUEUE_EXTRAS_TABLE, name, extras.to_dict())


def forget_extras(backend: Backend, name: str) -> None:
    """Drop a deleted queue's extras."""
    backend.table_delete(QUEUE_EXTRAS_TABLE, name)


def spec_from_attributes(
    name: str, attributes: Mapping[str, str], *, base: QueueSpec | None = None
) -> QueueSpec:
    """The spec a CreateQueue or SetQueueAttributes asks for (InvalidAttributeName/Value)."""
    allowed = SETTABLE if base is not None else SETTABLE | CREATE_ONLY
    for key in attributes:
        if key not in allowed:
            hint = " (it can only be set when the queue is created)" if key in CREATE_ONLY else ""
            raise InvalidAttributeName(f"Unknown Attribute {key}.{hint}")
    fifo = (
        base.fifo
        if base is not None
        else _boolean("FifoQueue", attributes.get("FifoQueue", "false"))
    )
    changes: dict[str, Any] = {}
    for key, field_name in _INTEGERS.items():
        if key in attributes:
            changes[field_name] = _integer(key, attributes[key])
    if "ContentBasedDeduplication" in attributes:
        changes["content_based_deduplication"] = _boolean(
            "ContentBasedDeduplication", attributes["ContentBasedDeduplication"]
        )
    if "RedrivePolicy" in attributes:
        changes.update(_redrive_policy(attributes["RedrivePolicy"]))
    for key in FIFO_KEPT:
        if key in attributes and not fifo:
            raise InvalidAttributeName(f"Unknown Attribute {key}. It is for FIFO queues only.")
    try:
        if base is None:
            return QueueSpec(name=name, fifo=fifo, **changes)
        return replace(base, **changes)
    except FanstackError as error:
        raise InvalidAttributeValue(f"Invalid value for a queue attribute: {error}") from error


def kept_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """The attributes fanstack keeps without acting on them."""
    return {k: v for k, v in attributes.items() if k in KEPT or k in FIFO_KEPT}


def attributes_of(
    call: CallContext, spec: QueueSpec, extras: QueueExtras, names: list[str] | None
) -> dict[str, str]:
    """GetQueueAttributes: the named attributes (`All` for every one), as strings."""
    wanted = set(names or [])
    every = "All" in wanted
    known = SETTABLE | CREATE_ONLY | READ_ONLY
    unknown = sorted(wanted - known - {"All"})
    if unknown:
        raise InvalidAttributeName(f"Unknown Attribute {unknown[0]}.")
    values: dict[str, str] = {
        "QueueArn": call.arn("sqs", spec.name),
        "VisibilityTimeout": str(spec.visibility_timeout),
        "DelaySeconds": str(spec.delay),
        "MessageRetentionPeriod": str(spec.retention),
        "MaximumMessageSize": str(spec.max_message_size),
        "ReceiveMessageWaitTimeSeconds": str(spec.receive_wait),
        "CreatedTimestamp": str(int(extras.created)),
        "LastModifiedTimestamp": str(int(extras.modified)),
    }
    if wanted & {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"} or every:  # fmt: skip
        stats = call.backend.stats(spec.name)
        values["ApproximateNumberOfMessages"] = str(stats.visible)
        values["ApproximateNumberOfMessagesNotVisible"] = str(stats.in_flight)
        values["ApproximateNumberOfMessagesDelayed"] = str(stats.delayed)
    if spec.dead_letter is not None and spec.max_receive_count is not None:
        values["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": call.arn("sqs", spec.dead_letter),
                "maxReceiveCount": spec.max_receive_count,
            },
            separators=(",", ":"),
        )
    for key, default in KEPT.items():
        value = extras.attributes.get(key, default)
        if value is not None:
            values[key] = value
    if spec.fifo:
        values["FifoQueue"] = "true"
        values["ContentBasedDeduplication"] = str(spec.content_based_deduplication).lower()
        for key, default in FIFO_KEPT.items():
            values[key] = extras.attributes.get(key, default)
    if every:
        return values
    return {k: v for k, v in values.items() if k in wanted}


def check_tags(tags: Mapping[str, str]) -> None:
    """AWS's tag limits: 50 per queue, keys 1-128 and values 0-256 characters."""
    if len(tags) > MAX_TAGS:
        raise InvalidAttributeValue(f"{len(tags)} tags; a queue holds at most {MAX_TAGS}")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise InvalidAttributeValue(
                f"tag {key[:40]!r}: keys are 1-128 characters and values at most 256"
            )


def _integer(key: str, text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise InvalidAttributeValue(
            f"Invalid value for the parameter {key}: {text!r} is not an integer"
        ) from None


def _boolean(key: str, text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered not in {"true", "false"}:
        raise InvalidAttributeValue(f"Invalid value for the parameter {key}: {text!r}")
    return lowered == "true"


def _redrive_policy(text: str) -> dict[str, Any]:
    if text == "":
        return {"dead_letter": None, "max_receive_count": None}
    try:
        policy = json.loads(text)
        target = str(policy["deadLetterTargetArn"])
        count = int(policy["maxReceiveCount"])
    except (ValueError, KeyError, TypeError):
        raise InvalidAttributeValue(
            "Value for parameter RedrivePolicy is invalid. Reason: it must be JSON with "
            "deadLetterTargetArn and maxReceiveCount."
        ) from None
    return {"dead_letter": name_from_arn(target), "max_receive_count": count}


def queue_named(call: CallContext, params: Mapping[str, Any]) -> Queue:
    """The queue a call names by its `QueueUrl` (QueueDoesNotExist if absent)."""
    url = params.get("QueueUrl")
    if not url:
        raise MissingParameter("The request must contain the parameter QueueUrl.")
    spec = call.backend.get_queue(name_from_queue_url(str(url)))
    return Queue(spec, lambda: call.backend)
