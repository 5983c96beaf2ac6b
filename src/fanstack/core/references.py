"""What points at a queue: topic subscriptions, other queues' redrive policies, consumers.

Deleting a queue something points at would break it silently (a topic delivering nowhere, a
redrive policy naming a missing dead-letter queue, a function polling nothing), so a delete is
refused with the list of references unless it is forced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fanstack.core.errors import QueueInUse
from fanstack.core.functions import ConsumerSpec
from fanstack.core.specs import QueueSpec, SubscriptionSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueReferences:
    """Everything that names one queue."""

    queue: str
    topics: tuple[str, ...] = ()
    """Topics subscribed to deliver to the queue."""
    redrive_sources: tuple[str, ...] = ()
    """Queues whose dead-letter queue it is."""
    functions: tuple[str, ...] = ()
    """Functions the queue feeds (event source mappings)."""

    def __bool__(self) -> bool:
        return bool(self.topics or self.redrive_sources or self.functions)

    def describe(self) -> str:
        """The references as one clause: `dead-letter queue of 'a'; subscribed to 'b'`."""
        parts = []
        if self.redrive_sources:
            parts.append("dead-letter queue of " + _names(self.redrive_sources))
        if self.topics:
            parts.append("subscribed to topic " + _names(self.topics))
        if self.functions:
            parts.append("feeds function " + _names(self.functions))
        return "; ".join(parts)


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


def queue_references(
    name: str,
    *,
    queues: Iterable[QueueSpec],
    subscriptions: Iterable[SubscriptionSpec],
    consumers: Iterable[ConsumerSpec] = (),
) -> QueueReferences:
    """What among `queues`, `subscriptions` and `consumers` points at queue `name`."""
    return QueueReferences(
        queue=name,
        topics=tuple(sorted({s.topic for s in subscriptions if s.queue == name})),
        redrive_sources=tuple(
            sorted(q.name for q in queues if q.dead_letter == name and q.name != name)
        ),
        functions=tuple(sorted({c.function for c in consumers if c.queue == name})),
    )


def check_queue_deletable(references: QueueReferences, *, force: bool) -> None:
    """Refuse (`QueueInUse`, naming each reference) to delete a referenced queue unless forced."""
    if references and not force:
        raise QueueInUse(
            f"queue {references.queue!r} is in use ({references.describe()}); delete those "
            "first, or force the delete (--force) to remove it with its subscriptions and "
            "the redrive policies naming it"
        )
