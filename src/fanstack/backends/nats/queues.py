"""Queue messages on JetStream, the shared part: each queue's consumers, storing messages,
pulling deliveries, and what a delivery looks like to the receiver.

`receiving.py` leases, `settling.py` deletes and changes visibility, `upkeep.py` purges,
redrives and counts; all run on the backend's event loop. The mapping is described in the
package docstring; the rules that are fanstack's and not JetStream's come from
`core.queue_rules`, the same functions the SQLite backend uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError

from fanstack.backends.nats.catalog import Catalog
from fanstack.backends.nats.fifo import Held, Holds
from fanstack.backends.nats.layout import (
    Names,
    Receipt,
    Stored,
    subject_matches,
    token,
)
from fanstack.backends.nats.ledger import Lease, Ledger
from fanstack.backends.nats.notes import Bucket
from fanstack.backends.nats.pull import Puller, Requests
from fanstack.core.errors import (
    BackendUnavailable,
)
from fanstack.core.fanout import delivered_body, envelope_prefix
from fanstack.core.message import (
    ReceivedMessage,
    decode_attributes,
    decode_trace_context,
    encode_attributes,
    with_trace_context,
)
from fanstack.core.queue_rules import log_expired
from fanstack.core.specs import QueueSpec

log = logging.getLogger("fanstack.nats")

MAX_ACK_PENDING = 1_000_000  # a standard queue's in-flight limit (SQS: 120,000)
FIFO_ACK_PENDING = 20_000  # a FIFO queue's messages held by its serving process
CREATE_ATTEMPTS = 3
START_CANNOT_CHANGE = 10012  # JetStream's error for a consumer update that moves its start
DELAY_ACK_WAIT = 30.0  # the delay consumer's lease while a pump moves a due message


@dataclass
class Taken:
    """A delivery the lease pass decided to hand out."""

    partition: int
    message: Msg
    stored: Stored
    receipt_count: int
    first_received_at: float
    consumer: str  # of its ack subject, read once (`layout.parse_reply`)
    delivered: int
    sequence: int
    pulled_at: float = 0.0  # real time JetStream's lease on it began


@dataclass
class QueueLocal:
    """What this process knows of one queue's consumers (their config as last applied)."""

    filters: tuple[str, ...] = ()
    ack_wait: float = 0.0
    version: int = -1  # the catalog version they were checked against
    # Pulled ahead (a receive's prefetch, a long poll): (partition, delivery, real time pulled).
    stash: list[tuple[int, Msg, float]] = field(default_factory=list)
    held: dict[tuple[int, int], Held] = field(default_factory=dict)  # FIFO: waiting for a group
    next_partition: int = 0
    pumped_at: float = 0.0  # real time this process last looked at the queue's delays
    pumped_now: float = 0.0  # the fanstack clock then
    # One FIFO receive at a time in this process: eligibility depends on what the others took.
    fifo_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Recent:
    """This process's latest stores, so that a count read right after them includes them.

    JetStream acknowledges a store a moment before a consumer counts the new message (its
    pending count follows the stream asynchronously). A reader of counts asks `uncounted` and
    reads again while a store of its own, not yet delivered, is missing from them.
    """

    KEEP = 256  # stores remembered per partition
    FOR = 2.0  # seconds a store is remembered (a consumer counts it long before)

    def __init__(self) -> None:
        self._stores: dict[int, deque[tuple[int, str, float]]] = {}

    def stored(self, subject: str, sequence: int) -> None:
        partition = int(subject.split(".", 3)[2])
        kept = self._stores.get(partition)
        if kept is None:
            kept = self._stores[partition] = deque(maxlen=self.KEEP)
        kept.append((sequence, subject, time.monotonic()))

    def forget(self, partition: int, *, sequence: int = 0, under: str = "") -> None:
        """Forget a store removed without a delivery (one sequence, or all under a filter)."""
        kept = self._stores.get(partition)
        if kept:
            self._stores[partition] = deque(
                (
                    entry
                    for entry in kept
                    if entry[0] != sequence and not (under and subject_matches(entry[1], under))
                ),
                maxlen=self.KEEP,
            )

    def uncounted(
        self, partition: int, filters: Sequence[str], delivered: int, pending: int
    ) -> bool:
        """Whether more of this process's recent stores await delivery to a consumer reading
        `filters` (delivered up to stream sequence `delivered`) than it counts pending."""
        kept = self._stores.get(partition)
        if not kept:
            return False
        since = time.monotonic() - self.FOR
        waiting = sum(
            1
            for sequence, subject, at in kept
            if sequence > delivered
            and at >= since
            and any(subject_matches(subject, pattern) for pattern in filters)
        )
        return waiting > pending


class Messages:
    """The queues' consumers, stores and pulls: what every queue operation builds on."""

    def __init__(
        self,
        nc: Any,
        js: Any,
        names: Names,
        catalog: Catalog,
        notes: Bucket,
        counts: Bucket,
        holder: str,
    ) -> None:
        self.nc = nc
        self.js = js
        self.names = names
        self.catalog = catalog
        self.notes = notes
        self.counts = counts
        self.puller = Puller(nc)
        self.requests = Requests(nc)
        self.ledger = Ledger()
        self.holds = Holds(notes, holder)
        self.local: dict[str, QueueLocal] = {}
        self.recent = Recent()

    async def open(self) -> None:
        await self.puller.open()
        await self.requests.open()

    def filters(self, queue: str, partition: int) -> tuple[str, ...]:
        """The subjects the queue's consumer reads on a partition: its own, and its topics'."""
        topics = self.catalog.view.queue_filters(queue)
        own = f"{self.names.queue_prefix(partition, queue)}.>"
        return (own, *(self.names.slot_filter(partition, t, slot) for t, slot in topics))

    async def ensure(self, spec: QueueSpec, *, force: bool = False) -> QueueLocal:
        """The queue's consumers, created or brought to the current catalog (once per change)."""
        local = self.local.get(spec.name)
        ack_wait = float(max(spec.visibility_timeout, 1))
        version = self.catalog.view.version
        if local is not None and not force and (local.version, local.ack_wait) == (
            version,
            ack_wait,
        ):
            return local  # nothing changed since the consumers were last brought up to date
        filters = self.filters(spec.name, 0)
        current = local is not None and (local.filters, local.ack_wait) == (filters, ack_wait)
        if local is not None and current and not force:
            local.version = version
            return local
        for partition in range(self.names.partitions):
            stream = self.names.stream(partition)
            await self.main_consumer(spec, partition)
            await self.js.add_consumer(
                stream,
                ConsumerConfig(
                    durable_name=self.names.delay_consumer(spec.name),
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=DELAY_ACK_WAIT,
                    max_deliver=-1,
                    max_ack_pending=MAX_ACK_PENDING,
                    filter_subject=self.names.delay_subject(partition, spec.name),
                    deliver_policy=DeliverPolicy.ALL,
                ),
            )
        if local is None:
            local = self.local[spec.name] = QueueLocal()
        local.filters, local.ack_wait, local.version = filters, ack_wait, version
        return local

    async def main_consumer(
        self, spec: QueueSpec, partition: int, start: int | None = None
    ) -> None:
        """Create the queue's consumer on a partition, or bring its settings up to date.

        A new consumer starts after everything stored so far (or at `start`, for a purge): a
        queue made again under an old name gets none of the old queue's topic messages. An
        existing one keeps where it began (JetStream cannot change that).
        """
        stream = self.names.stream(partition)
        name = self.names.consumer(spec.name)
        for _attempt in range(CREATE_ATTEMPTS):
            try:
                await self._add_main_consumer(spec, partition, stream, name, start)
                return
            except APIError as exc:
                if exc.err_code != START_CANNOT_CHANGE or start is not None:
                    raise
                # Another process made it at the same moment from its own view of the stream:
                # take the consumer as it is.
        raise BackendUnavailable(f"NATS: could not create the consumer {name} on {stream}")

    async def _add_main_consumer(
        self, spec: QueueSpec, partition: int, stream: str, name: str, start: int | None
    ) -> None:
        if start is None:
            try:
                info = await self.js.consumer_info(stream, name)
                policy, sequence = info.config.deliver_policy, info.config.opt_start_seq
            except NotFoundError:
                start = (await self.js.stream_info(stream)).state.last_seq + 1
        if start is not None:
            policy, sequence = DeliverPolicy.BY_START_SEQUENCE, start
        await self.js.add_consumer(
            stream,
            ConsumerConfig(
                durable_name=name,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=float(max(spec.visibility_timeout, 1)),
                max_deliver=-1,
                max_ack_pending=FIFO_ACK_PENDING if spec.fifo else MAX_ACK_PENDING,
                filter_subjects=list(self.filters(spec.name, partition)),
                deliver_policy=policy,
                opt_start_seq=sequence,
            ),
        )

    async def drop_consumers(self, queue: str) -> None:
        """Delete the queue's consumers (their pending deliveries go with them)."""
        for partition in range(self.names.partitions):
            stream = self.names.stream(partition)
            for consumer in (self.names.consumer(queue), self.names.delay_consumer(queue)):
                with contextlib.suppress(NotFoundError):
                    await self.js.delete_consumer(stream, consumer)
        for consumer in (self.names.consumer(queue), self.names.delay_consumer(queue)):
            await self.puller.forget(consumer)
        self.local.pop(queue, None)

    async def store(self, subject: str, stored: Stored, *, ttl: int, msg_id: str | None) -> None:
        """Publish one stored message and wait for JetStream's acknowledgement."""
        headers = stored.headers()
        headers["Nats-TTL"] = f"{ttl}s"
        if msg_id is not None:
            headers["Nats-Msg-Id"] = msg_id
        reply = await self.requests.request(
            subject, stored.body.encode(), headers=headers, timeout=10
        )
        answer = json.loads(reply.data or b"{}")
        if "error" in answer:
            raise BackendUnavailable(f"NATS: storing on {subject}: {answer['error']}")
        self.recent.stored(subject, answer.get("seq", 0))

    async def move(
        self, subject: str, stored: Stored, reply: str, *, ttl: int, msg_id: str
    ) -> None:
        """Store a delivery's message anew on `subject`, then acknowledge the delivery. A
        process dying in between leaves both; `msg_id` makes the store's retry a no-op."""
        await self.store(subject, stored, ttl=ttl, msg_id=msg_id)
        await self.nc.request(reply, b"+ACK", timeout=10)

    async def store_together(
        self, entries: Sequence[tuple[str, Stored]], *, ttl: int, msg_id: str | None, batch: str
    ) -> None:
        """Store several messages in one partition atomically (JetStream's atomic batch)."""
        if len(entries) == 1:
            subject, stored = entries[0]
            await self.store(subject, stored, ttl=ttl, msg_id=msg_id)
            return
        batch_id = f"{batch}:{time.monotonic_ns()}"[-64:]
        for index, (subject, stored) in enumerate(entries, start=1):
            headers = stored.headers()
            headers["Nats-TTL"] = f"{ttl}s"
            headers["Nats-Batch-Id"] = batch_id
            headers["Nats-Batch-Sequence"] = str(index)
            if msg_id is not None:
                headers["Nats-Msg-Id"] = f"{msg_id}:{index}"
            if index < len(entries):
                await self.nc.publish(subject, stored.body.encode(), headers=headers)
                continue
            headers["Nats-Batch-Commit"] = "1"
            reply = await self.requests.request(
                subject, stored.body.encode(), headers=headers, timeout=10
            )
            answer = json.loads(reply.data or b"{}")
            if "error" in answer:
                raise BackendUnavailable(f"NATS: storing a batch of {len(entries)}: {answer}")
        last = answer.get("seq", 0)  # a batch takes consecutive sequences, ending here
        for index, (subject, _stored) in enumerate(entries, start=1):
            self.recent.stored(subject, last - len(entries) + index)

    async def pull(
        self, spec: QueueSpec, local: QueueLocal, wanted: int
    ) -> list[tuple[int, Msg]]:
        """What the queue's consumers have now, up to `wanted`, partitions taken in turn."""
        partitions = self.names.partitions
        start = local.next_partition
        local.next_partition = (start + 1) % partitions
        found: list[tuple[int, Msg]] = []
        for step in range(partitions):
            partition = (start + step) % partitions
            pulled = await self.puller.pull(
                self.names.stream(partition), self.names.consumer(spec.name), wanted - len(found)
            )
            found.extend((partition, message) for message in pulled)
            if len(found) >= wanted:
                break
        return found

    def leases_of(self, partition: int, sequence: int) -> list[Lease]:
        """This process's leases (not deferrals) of one stored message."""
        return self.ledger.of_message(partition, sequence)

    def received(
        self, queue: str, stored: Stored, receipt: Receipt, count: int, first: float
    ) -> ReceivedMessage:
        """The message a receive hands out for this delivery."""
        own = self.resolved(queue, stored) if stored.topic is not None else stored
        return ReceivedMessage(
            id=stored.message_id,
            body=own.body,
            message_attributes=decode_attributes(own.attributes),
            trace_context=decode_trace_context(stored.attributes),
            receipt_handle=receipt.handle(),
            receive_count=count,
            sent_timestamp=stored.sent_at,
            first_receive_timestamp=first,
            queue=queue,
            group_id=stored.group_id,
            deduplication_id=own.dedup_id,
            sequence_number=receipt.sequence if stored.group_id is not None else None,
            failure=stored.failure,
            source_queue=stored.source,
            failed_receives=stored.failed_receives,
            lost_receives=stored.lost_receives,
        )

    def resolved(self, queue: str, stored: Stored) -> Stored:
        """A topic message as `queue` holds it: its SNS envelope built, or the raw message."""
        url, dedup_id = stored.deliveries[queue]
        body, attributes = stored.body, stored.attributes
        topic = self.catalog.view.topics.get(stored.topic or "")
        if url is not None and topic is not None:
            prefix = envelope_prefix(
                topic,
                stored.message_id,
                body,
                decode_attributes(attributes),
                stored.subject,
                stored.sent_at,
            )
            # The user's attributes are in the envelope; the trace context stays beside it, for
            # the receives after a hand-back, a delay or a move to the DLQ.
            body, attributes = delivered_body(body, prefix, url), _trace_context_only(attributes)
        return Stored(
            message_id=stored.message_id,
            body=body,
            sent_at=stored.sent_at,
            attributes=attributes,
            group_id=stored.group_id,
            dedup_id=dedup_id,
        )

    async def count(self, queue: str, *, expired: int = 0, dead_lettered: int = 0) -> None:
        """Add to the queue's counters of expired and dead-lettered messages (and log expiry)."""
        if not (expired or dead_lettered):
            return
        if expired:
            log_expired(log, queue, expired)

        def change(current: dict[str, Any] | None) -> dict[str, Any]:
            counts = dict(current or {})
            counts["expired"] = counts.get("expired", 0) + expired
            counts["dead_lettered"] = counts.get("dead_lettered", 0) + dead_lettered
            return counts

        await self.counts.update(token(queue), change)

    async def purge_subjects(self, partition: int, queue: str) -> None:
        """Remove the queue's own messages (sent, dead-lettered into it, delayed)."""
        stream = self.names.stream(partition)
        own = f"{self.names.queue_prefix(partition, queue)}.>"
        delayed = self.names.delay_subject(partition, queue)
        await self.js.purge_stream(stream, subject=own)
        await self.js.purge_stream(stream, subject=delayed)
        self.recent.forget(partition, under=own)
        self.recent.forget(partition, under=delayed)


def _trace_context_only(attributes: str | None) -> str | None:
    """Stored attributes holding only the trace context of `attributes`, if it has one."""
    carried = decode_trace_context(attributes)
    if carried is None:
        return None
    return encode_attributes(with_trace_context({}, carried))
