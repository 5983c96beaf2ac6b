"""Resource specs (queues, topics, subscriptions) with AWS defaults and validated ranges."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from fanstack.core.arns import queue_arn, topic_arn
from fanstack.core.errors import InvalidParameter, InvalidParameterValue

DEFAULT_VISIBILITY_TIMEOUT = 30
MAX_VISIBILITY_TIMEOUT = 43_200
DEFAULT_RETENTION = 345_600
MIN_RETENTION = 60
MAX_RETENTION = 1_209_600
MAX_DELAY = 900
DEFAULT_MAX_MESSAGE_SIZE = 1_048_576
MIN_MAX_MESSAGE_SIZE = 1_024
MAX_WAIT_SECONDS = 20
MAX_RECEIVE_COUNT_RANGE = (1, 1000)
DEDUPLICATION_INTERVAL = 300
MAX_NAME_LENGTH = 80
MAX_TOPIC_NAME_LENGTH = 256
FILTER_POLICIES_PER_TOPIC = 200

ATTRIBUTES_SCOPE = "MessageAttributes"
BODY_SCOPE = "MessageBody"

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def check_range(field: str, value: Any, low: int, high: int) -> None:
    """Raise unless `value` is an integer (seconds, bytes or a count) from `low` to `high`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterValue(
            f"{field} must be an integer from {low} to {high}, got {value!r}"
        )
    if not low <= value <= high:
        raise InvalidParameterValue(f"{field} is {value}; it must be between {low} and {high}")


def check_name(kind: str, name: str, *, fifo: bool, max_length: int = MAX_NAME_LENGTH) -> None:
    """Raise unless `name` is a valid SQS queue / SNS topic name for the given FIFO-ness.

    Queue names are 1-80 characters, topic names 1-256 (`max_length`), `.fifo` included.
    """
    if not isinstance(name, str) or not name:
        raise InvalidParameterValue(f"{kind} name must be a non-empty string")
    stem = name[: -len(".fifo")] if name.endswith(".fifo") else name
    if len(name) > max_length or not _NAME.match(stem):
        raise InvalidParameterValue(
            f"{kind} name {name!r} must be 1-{max_length} letters, digits, '-' or '_'"
            + (" followed by '.fifo'" if fifo else "")
        )
    if fifo != name.endswith(".fifo"):
        raise InvalidParameterValue(
            f"{kind} name {name!r}: a FIFO {kind} name must end in '.fifo', and only a FIFO one"
        )


class _Spec:
    """Shared JSON round-trip for the spec dataclasses."""

    def to_json(self) -> str:
        """Canonical JSON of the spec, as stored by backends."""
        return json.dumps(asdict(self), sort_keys=True)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, text: str) -> Any:
        """Read a spec written by `to_json`; unknown fields are ignored."""
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


@dataclass(frozen=True, kw_only=True)
class QueueSpec(_Spec):
    """An SQS-like queue and its attributes, with AWS defaults."""

    name: str
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    delay: int = 0
    retention: int = DEFAULT_RETENTION
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    receive_wait: int = 0
    max_receive_count: int | None = None
    dead_letter: str | None = None
    fifo: bool = False
    content_based_deduplication: bool = False

    def __post_init__(self) -> None:
        check_name("queue", self.name, fifo=self.fifo)
        check_range("visibility_timeout", self.visibility_timeout, 0, MAX_VISIBILITY_TIMEOUT)
        check_range("delay", self.delay, 0, MAX_DELAY)
        check_range("retention", self.retention, MIN_RETENTION, MAX_RETENTION)
        check_range(
            "max_message_size",
            self.max_message_size,
            MIN_MAX_MESSAGE_SIZE,
            DEFAULT_MAX_MESSAGE_SIZE,
        )
        check_range("receive_wait", self.receive_wait, 0, MAX_WAIT_SECONDS)
        if self.content_based_deduplication and not self.fifo:
            raise InvalidParameterValue(
                f"queue {self.name!r}: content_based_deduplication needs a FIFO queue"
            )
        if (self.max_receive_count is None) != (self.dead_letter is None):
            raise InvalidParameterValue(
                f"queue {self.name!r}: a redrive policy needs both dead_letter and "
                "max_receive_count"
            )
        if self.max_receive_count is not None:
            check_range("max_receive_count", self.max_receive_count, *MAX_RECEIVE_COUNT_RANGE)
        if self.dead_letter == self.name:
            raise InvalidParameterValue(f"queue {self.name!r} cannot be its own dead-letter queue")

    @property
    def arn(self) -> str:
        """The queue's ARN, as records and envelopes carry it."""
        return queue_arn(self.name)


@dataclass(frozen=True, kw_only=True)
class TopicSpec(_Spec):
    """An SNS-like topic."""

    name: str
    fifo: bool = False
    content_based_deduplication: bool = False

    def __post_init__(self) -> None:
        try:
            check_name("topic", self.name, fifo=self.fifo, max_length=MAX_TOPIC_NAME_LENGTH)
        except InvalidParameterValue as exc:
            raise InvalidParameter(str(exc)) from None
        if self.content_based_deduplication and not self.fifo:
            raise InvalidParameter(
                f"topic {self.name!r}: content_based_deduplication needs a FIFO topic"
            )

    @property
    def arn(self) -> str:
        """The topic's ARN, as envelopes carry it (`TopicArn`)."""
        return topic_arn(self.name)


@dataclass(frozen=True, kw_only=True)
class SubscriptionSpec(_Spec):
    """A topic -> queue subscription with its filter policy, scope and delivery mode."""

    topic: str
    queue: str
    filter_policy: str | None = None
    filter_scope: str = ATTRIBUTES_SCOPE
    raw: bool = False

    def __post_init__(self) -> None:
        if self.filter_scope not in (ATTRIBUTES_SCOPE, BODY_SCOPE):
            raise InvalidParameter(
                f"filter_scope must be {ATTRIBUTES_SCOPE!r} or {BODY_SCOPE!r}, "
                f"got {self.filter_scope!r}"
            )

    @property
    def arn(self) -> str:
        """The subscription's ARN: the topic's and the queue's name, as the AWS API's."""
        return f"{topic_arn(self.topic)}:{self.queue}"


def check_dead_letter(queue: QueueSpec, dead_letter: QueueSpec) -> None:
    """Raise unless `dead_letter` may serve as the DLQ of `queue` (same FIFO-ness, as in SQS)."""
    if queue.fifo != dead_letter.fifo:
        raise InvalidParameterValue(
            f"queue {queue.name!r} and its dead-letter queue {dead_letter.name!r} must both be "
            "FIFO or both be standard"
        )


SCOPE_ALIASES = {
    "attributes": ATTRIBUTES_SCOPE,
    "body": BODY_SCOPE,
    ATTRIBUTES_SCOPE: ATTRIBUTES_SCOPE,
    BODY_SCOPE: BODY_SCOPE,
}
