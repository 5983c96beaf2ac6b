"""A backend that hands every primitive to another: the base of wrappers that observe it.

A subclass overrides the primitives (or policy) it observes; the rest goes straight through,
and what a backend offers beyond the interface is reached through the wrapper as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.fanout import Publication, Route
from fanstack.core.message import ReceivedMessage
from fanstack.core.records import Clock, EntryResult, QueueStats
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec
from fanstack.core.tables import TableItem


class DelegatingBackend(Backend):
    """`inner`, unchanged."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        super().__init__(clock=inner.clock)

    @property
    def clock(self) -> Clock:
        """The wrapped backend's clock (tests move it)."""
        return self.inner.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.inner.clock = clock

    def __getattr__(self, name: str) -> Any:
        # What a backend offers beyond the interface (capabilities, its own parts).
        return getattr(self.inner, name)

    @property
    def url(self) -> str:
        return self.inner.url

    def calls_are_local(self) -> bool:
        return self.inner.calls_are_local()

    def writes_at_once(self) -> bool:
        return self.inner.writes_at_once()

    def commit(self, publications: Sequence[Publication]) -> list[str]:
        return self.inner.commit(publications)

    async def commit_async(self, publications: Sequence[Publication]) -> list[str]:
        return await self.inner.commit_async(publications)

    def lease(
        self, queue: QueueSpec, max_messages: int, visibility_timeout: int
    ) -> list[ReceivedMessage]:
        return self.inner.lease(queue, max_messages, visibility_timeout)

    def delete_messages(self, queue: str, receipt_handles: Sequence[str]) -> list[EntryResult]:
        return self.inner.delete_messages(queue, receipt_handles)

    def move_dead_letters(self, source: QueueSpec, limit: int) -> int:
        return self.inner.move_dead_letters(source, limit)

    def create_queue(self, spec: QueueSpec) -> None:
        self.inner.create_queue(spec)

    def set_queue_attributes(self, spec: QueueSpec) -> None:
        self.inner.set_queue_attributes(spec)

    def get_queue(self, name: str) -> QueueSpec:
        return self.inner.get_queue(name)

    def list_queues(self) -> list[QueueSpec]:
        return self.inner.list_queues()

    def delete_queue(self, name: str) -> None:
        self.inner.delete_queue(name)

    def create_topic(self, spec: TopicSpec) -> None:
        self.inner.create_topic(spec)

    def get_topic(self, name: str) -> TopicSpec:
        return self.inner.get_topic(name)

    def list_topics(self) -> list[TopicSpec]:
        return self.inner.list_topics()

    def delete_topic(self, name: str) -> None:
        self.inner.delete_topic(name)

    def put_subscription(self, spec: SubscriptionSpec) -> None:
        self.inner.put_subscription(spec)

    def delete_subscription(self, topic: str, queue: str) -> None:
        self.inner.delete_subscription(topic, queue)

    def list_subscriptions(self, topic: str | None = None) -> list[SubscriptionSpec]:
        return self.inner.list_subscriptions(topic)

    def routes(self, topic: str) -> list[Route]:
        return self.inner.routes(topic)

    def wait(self, queue: str, timeout: float) -> None:
        self.inner.wait(queue, timeout)

    def set_visibility(
        self,
        queue: str,
        changes: Sequence[tuple[str, int]],
        failure: str | None = None,
        *,
        uncount: bool = False,
    ) -> list[EntryResult]:
        return self.inner.set_visibility(queue, changes, failure, uncount=uncount)

    def purge(self, queue: str) -> None:
        self.inner.purge(queue)

    def peek(self, queue: str, limit: int) -> list[ReceivedMessage]:
        return self.inner.peek(queue, limit)

    def stats(self, queue: str) -> QueueStats:
        return self.inner.stats(queue)

    def close(self) -> None:
        self.inner.close()

    def get_item(self, table: str, key: str) -> TableItem | None:
        return self.inner.get_item(table, key)

    def put_item(
        self,
        table: str,
        key: str,
        value: str,
        expires_at: float | None,
        *,
        if_absent: bool,
        if_version: int | None,
    ) -> TableItem:
        return self.inner.put_item(
            table, key, value, expires_at, if_absent=if_absent, if_version=if_version
        )

    def delete_item(self, table: str, key: str, *, if_version: int | None) -> bool:
        return self.inner.delete_item(table, key, if_version=if_version)

    def scan_items(
        self, table: str, prefix: str, limit: int, start_after: str = ""
    ) -> list[TableItem]:
        return self.inner.scan_items(table, prefix, limit, start_after)
