"""A backend that counts what passes through it: published, sent, delivered, deleted, redriven.

It wraps another backend's primitives and keeps the policy of `Backend` (sends, fan-out,
long polls) on top of them, so every path that stores or hands out a message is counted once,
at the primitive that does it, whatever backend is underneath.
"""

from __future__ import annotations

from collections.abc import Sequence

from fanstack.backends.base import Backend
from fanstack.core.fanout import Publication
from fanstack.core.message import ReceivedMessage
from fanstack.core.records import EntryResult
from fanstack.core.specs import QueueSpec
from fanstack.observability.delegating_backend import DelegatingBackend
from fanstack.observability.metrics import Metrics, label_cache


class MeteredBackend(DelegatingBackend):
    """`inner`, with its messages counted in `metrics`."""

    def __init__(self, inner: Backend, metrics: Metrics) -> None:
        super().__init__(inner)
        self._published = label_cache(metrics.published)
        self._sent = label_cache(metrics.sent)
        self._delivered = label_cache(metrics.delivered)
        self._deleted = label_cache(metrics.deleted)
        self._redriven = label_cache(metrics.redriven)

    def commit(self, publications: Sequence[Publication]) -> list[str]:
        ids = self.inner.commit(publications)
        self._count_stored(publications)
        return ids

    async def commit_async(self, publications: Sequence[Publication]) -> list[str]:
        ids = await self.inner.commit_async(publications)
        self._count_stored(publications)
        return ids

    def _count_stored(self, publications: Sequence[Publication]) -> None:
        """Count stored publications: published per topic, sent per queue (an increment
        costs an append in memory: `batched_values`), one increment per topic and per queue."""
        published: dict[str, int] = {}
        sent: dict[str, int] = {}
        for publication in publications:
            if publication.topic is not None:
                published[publication.topic] = published.get(publication.topic, 0) + 1
            for delivery in publication.deliveries:
                sent[delivery.queue] = sent.get(delivery.queue, 0) + 1
        for topic, count in published.items():
            self._published(topic)(count)
        for queue, count in sent.items():
            self._sent(queue)(count)

    def lease(
        self, queue: QueueSpec, max_messages: int, visibility_timeout: int
    ) -> list[ReceivedMessage]:
        messages = self.inner.lease(queue, max_messages, visibility_timeout)
        if messages:
            self._delivered(queue.name)(len(messages))
        return messages

    def delete_messages(self, queue: str, receipt_handles: Sequence[str]) -> list[EntryResult]:
        results = self.inner.delete_messages(queue, receipt_handles)
        deleted = sum(1 for result in results if not isinstance(result, Exception))
        if deleted:
            self._deleted(queue)(deleted)
        return results

    def move_dead_letters(self, source: QueueSpec, limit: int) -> int:
        moved = self.inner.move_dead_letters(source, limit)
        if moved:
            self._redriven(source.name)(moved)
        return moved
