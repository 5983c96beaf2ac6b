"""Peek: read what a queue holds straight from its streams, without a consumer delivering it.

A peek reads stored messages by subject (`STREAM.MSG.GET` with `next_by_subj`), so it changes
no consumer state: no delivery count, no ack wait, no lease. Per partition it reads the queue's
own subjects (sent, redriven, dead-lettered into it) and its topics' slot subjects from just
after the queue's acknowledged floor, and its delay subject from the start.

Approximation (as `__init__.py` lists them): a topic message this queue deleted out of order
while another subscriber still holds it shows until the queue's acknowledged floor passes it;
the receive count shown is the one stored with the message (a dead letter's), not JetStream's
live delivery count of a message in flight.
"""

from __future__ import annotations

from typing import Any

from nats.js.errors import NotFoundError

from fanstack.backends.nats.layout import Stored
from fanstack.backends.nats.queues import Messages
from fanstack.core.message import ReceivedMessage, decode_attributes
from fanstack.core.queue_rules import is_expired
from fanstack.core.specs import QueueSpec


class Peeking:
    """Read-only looks at a queue's stored messages."""

    def __init__(self, messages: Messages) -> None:
        self.m = messages

    async def peek(self, spec: QueueSpec, limit: int, now: float) -> list[ReceivedMessage]:
        """Up to `limit` live messages of the queue, in the order they were stored."""
        found: list[tuple[float, int, int, Stored]] = []
        for partition in range(self.m.names.partitions):
            found.extend(await self._partition(spec, partition, limit, now))
        found.sort(key=lambda entry: (entry[0], entry[1], entry[2]))
        return [_peeked(spec.name, stored, sequence) for _, _, sequence, stored in found[:limit]]

    async def _partition(
        self, spec: QueueSpec, partition: int, limit: int, now: float
    ) -> list[tuple[float, int, int, Stored]]:
        stream = self.m.names.stream(partition)
        try:
            consumer = await self.m.js.consumer_info(stream, self.m.names.consumer(spec.name))
        except NotFoundError:
            return []  # no consumer yet: nothing was ever stored for the queue here
        floor = consumer.ack_floor.stream_seq + 1
        subjects = [(subject, floor) for subject in self.m.filters(spec.name, partition)]
        subjects.append((self.m.names.delay_subject(partition, spec.name), 1))
        found: list[tuple[float, int, int, Stored]] = []
        for subject, start in subjects:
            for raw in await self._read(stream, subject, start, limit):
                stored = Stored.parse(raw.headers, raw.data or b"")
                if is_expired(stored.since or stored.sent_at, spec.retention, now):
                    continue
                if stored.topic is not None:
                    if spec.name not in stored.deliveries:
                        continue
                    stored = _with_history(self.m.resolved(spec.name, stored), stored)
                arrived = raw.time.timestamp() if raw.time else stored.sent_at
                found.append((arrived, partition, raw.seq, stored))
        return found

    async def _read(self, stream: str, subject: str, start: int, limit: int) -> list[Any]:
        """Up to `limit` stored messages on `subject` from sequence `start`, in stream order."""
        found: list[Any] = []
        sequence = start
        while len(found) < limit:
            try:
                raw = await self.m.js.get_msg(stream, seq=sequence, subject=subject, next=True)
            except NotFoundError:
                break
            found.append(raw)
            sequence = raw.seq + 1
        return found


def _with_history(resolved: Stored, stored: Stored) -> Stored:
    """A topic message as the queue holds it, keeping the stored message's counts."""
    resolved.receive_count = stored.receive_count
    resolved.first_received_at = stored.first_received_at
    return resolved


def _peeked(queue: str, stored: Stored, sequence: int) -> ReceivedMessage:
    """The message a peek shows: as a receive would, with no receipt handle."""
    return ReceivedMessage(
        id=stored.message_id,
        body=stored.body,
        message_attributes=decode_attributes(stored.attributes),
        receipt_handle="",
        receive_count=stored.receive_count,
        sent_timestamp=stored.sent_at,
        first_receive_timestamp=stored.first_received_at or 0.0,
        queue=queue,
        group_id=stored.group_id,
        deduplication_id=stored.dedup_id,
        sequence_number=sequence if stored.group_id is not None else None,
        failure=stored.failure,
        source_queue=stored.source,
        failed_receives=stored.failed_receives,
        lost_receives=stored.lost_receives,
    )
