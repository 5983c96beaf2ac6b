"""Storing publications: a send or a topic publish becomes one stored message.

- A send is stored on its queue's subject (or, delayed, on the queue's delay subject).
- A topic publish is stored **once**, on a topic subject whose tokens name the subscriptions
  (slots) that take it; each taking queue's consumer reads that one message. The fan-out is
  atomic because there is one message: every matching queue has it, or none does.
- A FIFO publish lives in the partition of its message group, so a group keeps its order.

FIFO deduplication is fanstack's (the interval follows the fanstack clock): a record per
deduplication id, created before the store and taken back if the store fails, so a retry
stores it. The store carries a JetStream message id derived from the record. A process that
dies between the record and the store leaves the record: a retry within 5 minutes is then
taken for a duplicate (a stated deviation).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from fanstack.backends.nats.catalog import Catalog
from fanstack.backends.nats.layout import (
    PUBLICATION_TTL_MARGIN,
    Names,
    Stored,
    partition_of,
)
from fanstack.backends.nats.notes import Bucket, dedup_key, remember
from fanstack.backends.nats.queues import Messages
from fanstack.core.errors import MessageTooLarge, QueueDoesNotExist
from fanstack.core.fanout import Publication
from fanstack.core.message import encode_attributes

CONCURRENT_STORES = 64
HEADER_ROOM = 8192  # bytes kept for headers below the server's max_payload


class Publisher:
    """Turns publications into stored messages."""

    def __init__(self, messages: Messages, catalog: Catalog, dedup: Bucket, names: Names) -> None:
        self._messages = messages
        self._catalog = catalog
        self._dedup = dedup
        self._names = names
        self._limit = asyncio.Semaphore(CONCURRENT_STORES)

    async def commit(
        self, publications: Sequence[Publication], now: float, max_payload: int
    ) -> list[str]:
        for publication in publications:
            size = len(publication.message.body.encode())
            if size + HEADER_ROOM > max_payload:
                raise MessageTooLarge(
                    f"a message of {size} bytes does not fit the NATS server's max_payload of "
                    f"{max_payload} bytes (raise max_payload on the server to 8 MB)"
                )
        if any(p.message.group_id is not None for p in publications):
            # Message groups keep their order: one store after the other.
            return [await self._commit_one(p, now) for p in publications]
        return list(await asyncio.gather(*(self._commit_one(p, now) for p in publications)))

    async def _commit_one(self, publication: Publication, now: float) -> str:
        """Store one publication; a deduplication record it made is taken back if it fails."""
        made: list[str] = []
        try:
            return await self._store_publication(publication, now, made)
        except BaseException:
            # Not stored: a retry with the same deduplication id must store it.
            await asyncio.gather(*(self._dedup.delete(key) for key in made))
            raise

    async def _remember(
        self, scope: str, dedup_id: str, message_id: str, now: float, made: list[str]
    ) -> tuple[str, int]:
        first, generation = await remember(self._dedup, scope, dedup_id, message_id, now)
        if first == message_id:
            made.append(dedup_key(scope, dedup_id))
        return first, generation

    async def _store_publication(
        self, publication: Publication, now: float, made: list[str]
    ) -> str:
        message = publication.message
        generation = 0
        if publication.dedup_key is not None:
            scope, dedup_id = publication.dedup_key
            first, generation = await self._remember(scope, dedup_id, message.id, now, made)
            if first != message.id:
                return first
        deliveries = []
        for delivery in publication.deliveries:
            spec = self._catalog.view.queues.get(delivery.queue) or await self._catalog.queue(
                delivery.queue
            )
            if spec is None:
                raise QueueDoesNotExist(delivery.queue)
            if spec.name not in self._messages.local:
                # A queue's consumer must exist before its first message: a stream with
                # interest retention keeps only what some consumer will read.
                await self._messages.ensure(spec)
            if spec.fifo and delivery.deduplication_id is not None:
                first, generation = await self._remember(
                    f"queue:{spec.name}", delivery.deduplication_id, message.id, now, made
                )
                if first != message.id:
                    if publication.topic is None:
                        return first  # a send's duplicate answers with the first message's id
                    continue
            deliveries.append((delivery, spec))
        if not deliveries:
            return message.id
        key = message.group_id if message.group_id is not None else message.id
        partition = partition_of(key, self._names.partitions)
        stored = Stored(
            message_id=message.id,
            body=message.body,
            sent_at=now,
            attributes=encode_attributes(message.attributes),
            group_id=message.group_id,
        )
        ttl = max(spec.retention for _delivery, spec in deliveries) + PUBLICATION_TTL_MARGIN
        # A JetStream message id only where a retried store must not store twice (FIFO).
        msg_id = f"{message.id}:{generation}" if generation else None
        topic = publication.topic
        async with self._limit:
            if topic is None:
                # A send: one copy per queue (the bus sends one event to several at once).
                entries = []
                for delivery, spec in deliveries:
                    copy = dataclasses.replace(stored, dedup_id=delivery.deduplication_id)
                    delay = spec.delay if message.delay_seconds is None else message.delay_seconds
                    if delay > 0:
                        copy.visible_at, copy.queue = now + delay, spec.name
                        subject = self._names.delay_subject(partition, spec.name)
                    else:
                        subject = self._names.queue_subject(partition, spec.name)
                    entries.append((subject, copy))
                await self._messages.store_together(
                    entries, ttl=ttl, msg_id=msg_id, batch=message.id
                )
                return message.id
            stored.topic = topic
            stored.subject = publication.subject
            stored.deliveries = {
                spec.name: [delivery.unsubscribe_url, delivery.deduplication_id]
                for delivery, spec in deliveries
            }
            slots = self._catalog.view.slots.get(topic, {})
            taken = [False] * len(slots)
            for queue, slot in slots.items():
                taken[slot] = queue in stored.deliveries
            subject = self._names.topic_subject(partition, topic, taken)
            await self._messages.store(subject, stored, ttl=ttl, msg_id=msg_id)
        return message.id
