"""The values the backends exchange with their callers: publish requests, queue figures, results.

Pure data, no I/O: the runtime, the CLI and the backends all speak in these.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fanstack.core.errors import FanstackError
from fanstack.core.message import MessageAttribute

Clock = Callable[[], float]
EntryResult = str | FanstackError | None  # a batch entry: message id, error, or nothing to report


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """One message to publish to a topic (attributes already validated, see `to_attributes`)."""

    body: str
    attributes: Mapping[str, MessageAttribute] = field(default_factory=dict)
    subject: str | None = None
    group_id: str | None = None
    deduplication_id: str | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Depths and ages of one queue, as `fanstack queues` shows them."""

    name: str
    visible: int
    in_flight: int
    delayed: int
    oldest_age: float | None
    dead_letter_depth: int | None
    expired: int
    dead_lettered: int

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON output."""
        return {
            "name": self.name,
            "visible": self.visible,
            "in_flight": self.in_flight,
            "delayed": self.delayed,
            "oldest_age": self.oldest_age,
            "dead_letter_depth": self.dead_letter_depth,
            "expired": self.expired,
            "dead_lettered": self.dead_lettered,
        }


def new_message_id() -> str:
    """A fresh message id (a UUID, as SNS and SQS issue)."""
    return str(uuid.uuid4())
