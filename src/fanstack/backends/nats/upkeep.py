"""Purge, redrive and stats: the operations on a whole queue."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from nats.js.errors import NotFoundError

from fanstack.backends.nats.layout import (
    PUBLICATION_TTL_MARGIN,
    Stored,
    token,
)
from fanstack.backends.nats.queues import Messages
from fanstack.core.errors import (
    PurgeQueueInProgress,
)
from fanstack.core.queue_rules import check_purge_interval
from fanstack.core.records import QueueStats, new_message_id
from fanstack.core.specs import QueueSpec

COUNT_ATTEMPTS = 20  # reads of a consumer's counts while a store of ours is not in them


class Upkeep:
    """Purges, redrives and depths of the queues."""

    def __init__(self, messages: Messages) -> None:
        self.m = messages

    async def purge(self, spec: QueueSpec, now: float) -> None:
        """Delete every message of the queue (at most once per 60 s) and start it afresh."""
        last, revision = await self.m.catalog.last_purge(spec.name)
        check_purge_interval(spec.name, last, now)
        if not await self.m.catalog.record_purge(spec.name, now, revision):
            raise PurgeQueueInProgress(f"queue {spec.name!r} is being purged by another caller")
        await self.m.drop_consumers(spec.name)
        for partition in range(self.m.names.partitions):
            await self.m.purge_subjects(partition, spec.name)
        await self._restart_after(spec)

    async def _restart_after(self, spec: QueueSpec) -> None:
        """Consumers that start after everything stored so far (topic messages included)."""
        starts = {}
        for partition in range(self.m.names.partitions):
            info = await self.m.js.stream_info(self.m.names.stream(partition))
            starts[partition] = info.state.last_seq + 1
        for partition, start in starts.items():
            await self.m.main_consumer(spec, partition, start)
        self.m.local.pop(spec.name, None)
        await self.m.ensure(spec)

    async def move_dead_letters(self, source: QueueSpec, limit: int, now: float) -> int:
        """Move up to `limit` of `source`'s dead letters back to it, oldest first."""
        assert source.dead_letter is not None
        found: list[tuple[float, int, int, Any]] = []
        for partition in range(self.m.names.partitions):
            stream = self.m.names.stream(partition)
            subject = self.m.names.dead_letter_subject(partition, source.dead_letter, source.name)
            sequence = 1
            while len([f for f in found if f[1] == partition]) < limit:
                try:
                    raw = await self.m.js.get_msg(stream, seq=sequence, subject=subject, next=True)
                except NotFoundError:
                    break
                sequence = raw.seq + 1
                if any(lease.visible_at > now for lease in self.m.leases_of(partition, raw.seq)):
                    continue  # received from the DLQ right now
                found.append((raw.time.timestamp() if raw.time else 0.0, partition, raw.seq, raw))
        found.sort(key=lambda entry: (entry[0], entry[1], entry[2]))
        moved = 0
        for _arrived, partition, sequence, raw in found[:limit]:
            stored = Stored.parse(raw.headers, raw.data or b"")
            back = _redriven(stored, now)
            await self.m.store(
                self.m.names.queue_subject(partition, source.name),
                back,
                ttl=source.retention + PUBLICATION_TTL_MARGIN,
                msg_id=f"redrive:{partition}:{sequence}",
            )
            with contextlib.suppress(NotFoundError):  # a concurrent redrive moved it first
                await self.m.js.delete_msg(self.m.names.stream(partition), sequence)
            self.m.recent.forget(partition, sequence=sequence)
            moved += 1
        return moved

    async def depths(
        self, spec: QueueSpec, now: float, *, oldest: bool = True
    ) -> tuple[int, int, int, float | None]:
        """(visible, in flight, delayed, oldest sent time): a read of each consumer's state and,
        for the oldest, of the first message after its acknowledged floor. No scan, no write."""

        async def partition_depths(partition: int) -> tuple[int, int, int, float | None]:
            stream = self.m.names.stream(partition)
            filters = self.m.filters(spec.name, partition)
            delays = (self.m.names.delay_subject(partition, spec.name),)
            for _attempt in range(COUNT_ATTEMPTS):
                try:
                    main, delay = await asyncio.gather(
                        self.m.js.consumer_info(stream, self.m.names.consumer(spec.name)),
                        self.m.js.consumer_info(stream, self.m.names.delay_consumer(spec.name)),
                    )
                except NotFoundError:
                    return 0, 0, 0, None  # no consumer yet: nothing was ever stored for it
                recent = self.m.recent
                if not (
                    recent.uncounted(
                        partition, filters, main.delivered.stream_seq, main.num_pending or 0
                    )
                    or recent.uncounted(
                        partition, delays, delay.delivered.stream_seq, delay.num_pending or 0
                    )
                ):
                    break
                await asyncio.sleep(0.001)  # a store of ours not counted yet: read again
            first = (
                await self._oldest(spec, partition, main.ack_floor.stream_seq + 1)
                if oldest
                else None
            )
            delayed = delay.num_pending + delay.num_ack_pending
            return main.num_pending, main.num_ack_pending, delayed, first

        parts = await asyncio.gather(
            *(partition_depths(p) for p in range(self.m.names.partitions))
        )
        # Leases this process ended early by its clock are visible, though JetStream still
        # counts them pending until it delivers them again.
        ended = self.m.ledger.ended_early(spec.name, now)
        visible = sum(p[0] for p in parts) + ended
        in_flight = max(sum(p[1] for p in parts) - ended, 0)
        delayed = sum(p[2] for p in parts)
        if spec.fifo:  # messages this process holds for their group are visible, not leased
            held = len(self.m.local[spec.name].held) if spec.name in self.m.local else 0
            visible, in_flight = visible + held, max(in_flight - held, 0)
        times = [p[3] for p in parts if p[3] is not None]
        return visible, in_flight, delayed, min(times) if times else None

    async def _oldest(self, spec: QueueSpec, partition: int, start: int) -> float | None:
        """The sent time of the queue's first unacknowledged message on a partition."""
        stream = self.m.names.stream(partition)

        async def first(subject: str) -> float | None:
            try:
                raw = await self.m.js.get_msg(stream, seq=start, subject=subject, next=True)
            except NotFoundError:
                return None
            return Stored.parse(raw.headers, b"").sent_at

        found = await asyncio.gather(*(first(s) for s in self.m.filters(spec.name, partition)))
        times = [sent for sent in found if sent is not None]
        return min(times) if times else None

    async def stats(self, spec: QueueSpec, now: float) -> QueueStats:
        """The queue's depths and counters, read without a write (the reads go together)."""
        target = None
        if spec.dead_letter is not None:
            target = self.m.catalog.view.queues.get(spec.dead_letter)
        depths, (counts, _), dead = await asyncio.gather(
            self.depths(spec, now),
            self.m.counts.get(token(spec.name)),
            self.depths(target, now, oldest=False) if target is not None else _nothing(),
        )
        visible, in_flight, delayed, oldest = depths
        counts = counts or {}
        return QueueStats(
            name=spec.name,
            visible=visible,
            in_flight=in_flight,
            delayed=delayed,
            oldest_age=None if oldest is None else max(0.0, now - oldest),
            dead_letter_depth=None if dead is None else sum(dead[:3]),
            expired=counts.get("expired", 0),
            dead_lettered=counts.get("dead_lettered", 0),
        )


async def _nothing() -> None:
    return None


def _redriven(stored: Stored, now: float) -> Stored:
    """A dead letter on its way back to its source: a new message there, as SQS's redrive
    makes it (a new id, sent now and kept for the source's retention from now, never
    received)."""
    return Stored(
        message_id=new_message_id(),
        body=stored.body,
        sent_at=now,
        attributes=stored.attributes,
        group_id=stored.group_id,
        dedup_id=stored.dedup_id,
    )
