"""The NATS JetStream backend: queue state lives in JetStream, a process holds none of it.

A fanstack process on NATS keeps no copy of the queues. Messages, leases, receive counts and
delays live in JetStream; a process holds the catalog (specs: small) and the leases it handed
out itself. So its memory and start-up do not grow with the backlog, and its CPU does not grow
with other processes' traffic. The layout (version 2), for namespace `NS` (`?stream=NS`):

**Streams.** `NS_P0 .. NS_P<k-1>`: `k` partition streams (`?partitions=k`, by default one per
server in the URL), file storage, R3 when the URL names three or more servers (`?replicas=`),
*interest* retention: a message is removed once every consumer that reads it acknowledged it.
Their Raft groups are spread over the servers, so throughput grows with servers. Subjects of
partition `p`:

- `fs.NS.p.q.<queue>.m`: messages sent to a queue (and redriven into it);
- `fs.NS.p.q.<dlq>.s.<source>`: messages `source` dead-lettered into `dlq`;
- `fs.NS.p.d.<queue>`: a queue's messages that are not visible yet (delays);
- `fs.NS.p.t.<topic>.<b0>.<b1>...e`: topic messages; token `bi` is 1 if the subscription in
  slot `i` takes the message.

**Consumers.** Per queue and partition, a durable pull consumer `q-<queue>` reading the queue's
own subjects and, for every topic it ever subscribed to, the topic subjects with its slot's token
set; and `d-<queue>` reading its delay subject. A message is stored once whatever the number of
queues that take it.

**Publishing.** Filter policies are evaluated by the publisher (`Backend.publish`, the same
code as SQLite's); the publish stores **one message** whose subject's slot tokens name the
subscriptions that matched, so the server gives it to exactly those queues' consumers. Fan-out is
atomic because there is one stored message. A send stores one message on the queue's subject; a
send to several queues at once (the event bus) is one JetStream atomic batch. A message of a
standard queue goes to the partition of its id; a FIFO message to the partition of its group,
so a group keeps its order. The publish returns once JetStream acknowledged the store (a quorum
of replicas). The body is stored once; an SNS envelope is built when a queue receives it.

**Receiving.** A receive pulls from the queue's consumer (partitions in turn, no wait; a long
poll waits on one pull for one message). Per delivery fanstack decides (`core.queue_rules`,
shared with SQLite): past retention, it is acknowledged and counted as expired; not visible yet
(a delay), it moves to the delay subject; received `max_receive_count` times, it is stored on
the DLQ's subject with its failure, counts and times, then acknowledged; otherwise it is handed
out. The consumer's ack wait is the queue's visibility timeout, so the lease is JetStream's: a
process that dies holding messages loses nothing, they are delivered again when it runs out.

- Visibility per receive: a timeout other than the queue's is set with a nak delay on the
  delivery (the message stays pending; a nak delay is a visibility timeout).
- `change_visibility(t)`: a nak with delay `t`; `0` makes it visible now.
- Receipt handle: the delivery's ack subject (stream, consumer, delivery count, stream
  sequence) and the lease's end. Delete is an acknowledgement the server confirms.
- Receive count: JetStream's delivery count, minus hand-backs that do not count.
- Delays: a delayed message waits on the delay subject; a receive moves those that are due to
  the queue's subject (a JetStream message id makes a repeated move a no-op), and puts the
  others back with a nak delay until they are due.
- Redrive: the DLQ's messages from one source, read in stream order (oldest first, the same
  order in every process), stored back on the source's subject as new messages (a new id,
  sent now: SQS's redrive), then removed from the DLQ.
- Purge: the queue's own subjects are purged and its consumers start again after the
  partitions' last message (topic messages it had not received are skipped).
- Peek: the queue's subjects read message by message (`peeking.py`), no consumer involved.
- Stats: the consumers' pending and ack-pending counts, one read per consumer: no scan, no
  write. Counters of expired and dead-lettered messages live in a key-value bucket.

**What JetStream does not keep** lives in key-value buckets, written only on rare paths
(`notes.py`): a redelivered message's latest delivery count and first receive time, the
failure reported for it, uncounted hand-backs (one note per stored message per queue: a topic
message's queues each receive it on their own); FIFO deduplication records (the 5-minute interval
on the fanstack clock); expired and dead-lettered counts. Tables are `NS_TABLES`, one key per
item (`tables.py`); the catalog is `NS_CATALOG` (`catalog.py`).

**FIFO queues.** A group lives in one partition, so its messages reach the consumer in order.
The process that receives from a FIFO queue keeps the queue's in-flight groups while it serves
it; messages of a group with one in flight wait pending in JetStream (a FIFO consumer holds at
most 20,000 messages pending), so a group's next message is never handed out while an earlier
one is in flight, and several of one group can go in one receive.

**Where SQS semantics are approximated** (SEMANTICS.md terms):

- A stale receipt handle (one from before the message was received again) is refused when the
  process deleting with it, or the note written at the redelivery, knows of the newer receive;
  the note is written before the redelivered message is handed out, so the refusal is exact
  unless the redelivering process died between the delivery and the note.
- `ApproximateFirstReceiveTimestamp` of a message whose first lease ran out unreported in a
  process that died is the time of its next receive (the first receive time was never stored).
- `ApproximateReceiveCount` counts a delivery pulled by a long poll in a process that died
  before handing it out.
- A redrive moves a dead letter that another process is receiving from the DLQ at that moment;
  one run again more than 5 minutes after it was cut short between storing a message back and
  removing it from the DLQ stores that message twice (each with a new id).
- After `change_visibility(0)` on a standard queue the message is a fresh copy: a delete with
  the same handle finds nothing (the next receive's handle deletes it).
- Stats count expired messages when a receive meets them (no sweep), and a lease that ran out
  as in flight until JetStream delivers it again.
- A FIFO queue is served by one process at a time, holding it 10 s past its last receive and
  until its last lease ends; a message it held back for its group and stopped keeping alive
  comes back to the next holder counted as received.
- Time: leases and delays end on the NATS server's clock. fanstack's clock (the one given to
  the backend) decides in the process holding a lease; if that clock runs ahead of real time,
  that process ends its leases and delays early itself. Other processes see them end on the
  server's clock.

**Migration.** A namespace written by the previous layout (one journal stream `NS` with a
snapshot object store) is refused at open with the steps to take (`migration.py`); nothing is
read from it or deleted.

URL options (`options.py`): `stream`, `replicas`, `partitions`, `connect_timeout`, e.g.
`nats://n1:4222,n2:4222,n3:4222?stream=SHOP&connect_timeout=60`. Messages must fit the
server's `max_payload` (set it to 8 MB for 1 MiB queue messages).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.errors import (
    BackendNotInstalled,
    QueueDoesNotExist,
    TopicDoesNotExist,
)
from fanstack.core.fanout import Publication, Route, make_route
from fanstack.core.message import ReceivedMessage
from fanstack.core.records import Clock, EntryResult, QueueStats
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec
from fanstack.core.tables import TableItem

try:
    import nats
    from nats.js.api import RetentionPolicy, StorageType, StreamConfig
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise BackendNotInstalled(
        "the NATS backend needs nats-py: pip install 'fanstack[nats]'"
    ) from exc

from fanstack.backends.nats.catalog import Catalog
from fanstack.backends.nats.connection import Connection
from fanstack.backends.nats.layout import Names
from fanstack.backends.nats.migration import refuse_previous_layout
from fanstack.backends.nats.notes import DEDUP_AGE, NOTES_AGE, Bucket
from fanstack.backends.nats.options import NatsOptions
from fanstack.backends.nats.peeking import Peeking
from fanstack.backends.nats.publish import Publisher
from fanstack.backends.nats.queues import Messages
from fanstack.backends.nats.receiving import Receiving
from fanstack.backends.nats.settling import Settling
from fanstack.backends.nats.startup import refuse_old_server
from fanstack.backends.nats.tables import KeyValueTables
from fanstack.backends.nats.upkeep import Upkeep
from fanstack.core.specs import DEDUPLICATION_INTERVAL, MAX_RETENTION

STREAM_MAX_AGE = MAX_RETENTION + 2 * 86_400  # a backstop: each message has its own TTL


class NatsBackend(Backend):
    """SNS/SQS semantics on JetStream streams, consumers and key-value buckets."""

    def __init__(self, url: str, *, clock: Clock = time.time) -> None:
        super().__init__(clock=clock)
        self._url = url  # as given, options included: worker processes reopen it alike
        options = NatsOptions.from_url(url)
        self.stream = options.stream
        self.replicas = options.replicas
        self.connect_timeout = options.connect_timeout
        self._requested_partitions = options.partitions or len(options.servers)
        self._routes: dict[str, tuple[int, list[Route]]] = {}
        self._connection_id = uuid.uuid4().hex
        self._connection = Connection(options, self._prepare)
        self._connection.on_reconnect.append(self.catalog.rewatch)
        self._run = self._connection.run

    @property
    def url(self) -> str:
        """The URL this backend was opened with."""
        return self._url

    async def _prepare(self, nc: Any) -> None:
        """Make the namespace ready: refuse an old layout, then the buckets and streams."""
        refuse_old_server(nc)
        js = nc.jetstream(timeout=10.0)
        await refuse_previous_layout(js, self.stream)
        self.catalog = Catalog(js, f"{self.stream}_CATALOG", self.replicas)
        await self.catalog.open()
        partitions = await self.catalog.layout(self._requested_partitions)
        self.names = Names(self.stream, partitions)
        for partition in range(partitions):
            config = StreamConfig(
                name=self.names.stream(partition),
                subjects=[self.names.stream_subjects(partition)],
                storage=StorageType.FILE,
                num_replicas=self.replicas,
                retention=RetentionPolicy.INTEREST,
                max_age=STREAM_MAX_AGE,
                duplicate_window=DEDUPLICATION_INTERVAL,
                allow_msg_ttl=True,
                allow_atomic=True,
            )
            try:
                await js.stream_info(config.name)
            except nats.js.errors.NotFoundError:
                await js.add_stream(config)
        self._notes = Bucket(js, self.names.notes_bucket, self.replicas, NOTES_AGE)
        self._counts = Bucket(js, f"{self.stream}_COUNTS", self.replicas)
        self._dedup = Bucket(js, self.names.dedup_bucket, self.replicas, DEDUP_AGE)
        for bucket in (self._notes, self._counts, self._dedup):
            await bucket.open()
        self._tables = KeyValueTables(js, f"{self.stream}_TABLES", self.replicas)
        await self._tables.open()
        self._messages = Messages(
            nc, js, self.names, self.catalog, self._notes, self._counts, self._connection_id
        )
        await self._messages.open()
        self._receiving = Receiving(self._messages)
        self._settling = Settling(self._messages)
        self._upkeep = Upkeep(self._messages)
        self._peeking = Peeking(self._messages)
        self._publisher = Publisher(self._messages, self.catalog, self._dedup, self.names)
        self._nc = nc

    def close(self) -> None:
        """Close the connection (the state stays in JetStream)."""

        async def before_closing() -> None:
            await self._receiving.release()
            await self.catalog.close()

        self._connection.close(before_closing)

    # -- catalog ------------------------------------------------------------------------

    def create_queue(self, spec: QueueSpec) -> None:
        """Create a queue and its consumers; no-op if identical, `QueueNameExists` if not."""

        async def create() -> None:
            await self.catalog.create_queue(spec)
            await self._messages.ensure(spec, force=True)

        self._run(create())

    def set_queue_attributes(self, spec: QueueSpec) -> None:
        """Replace an existing queue's attributes (its consumers follow)."""

        async def update() -> None:
            await self.catalog.set_queue(spec)
            await self._messages.ensure(spec, force=True)

        self._run(update())

    def get_queue(self, name: str) -> QueueSpec:
        """The queue's spec, or `QueueDoesNotExist`."""
        spec = self.catalog.view.queues.get(name)
        if spec is None:
            spec = self._run(self.catalog.queue(name))
            if spec is None:
                raise QueueDoesNotExist(name)
        return spec

    def list_queues(self) -> list[QueueSpec]:
        """Every queue, sorted by name."""
        self._run(self.catalog.sync())
        return sorted(self.catalog.view.queues.values(), key=lambda s: s.name)

    def delete_queue(self, name: str) -> None:
        """Delete the queue, its subscriptions, consumers and messages.

        In that order, its catalog key last: until the key goes the queue is there, so the
        same call made again finishes what a process that died midway left, and a queue made
        again under the name starts with new consumers and none of the old messages.
        """

        async def delete() -> None:
            await self.catalog.unsubscribe_queue(name)
            await self._messages.drop_consumers(name)
            for partition in range(self.names.partitions):
                await self._messages.purge_subjects(partition, name)
            await self.catalog.delete_queue(name)

        self._run(delete())

    def create_topic(self, spec: TopicSpec) -> None:
        """Create or replace a topic."""
        self._run(self.catalog.put_topic(spec))

    def get_topic(self, name: str) -> TopicSpec:
        """The topic's spec, or `TopicDoesNotExist`."""
        spec = self.catalog.view.topics.get(name)
        if spec is None:
            spec = self._run(self.catalog.topic(name))
            if spec is None:
                raise TopicDoesNotExist(name)
        return spec

    def list_topics(self) -> list[TopicSpec]:
        """Every topic, sorted by name."""
        self._run(self.catalog.sync())
        return sorted(self.catalog.view.topics.values(), key=lambda s: s.name)

    def delete_topic(self, name: str) -> None:
        """Delete the topic and its subscriptions."""
        self.get_topic(name)
        self._run(self.catalog.delete_topic(name))

    def put_subscription(self, spec: SubscriptionSpec) -> None:
        """Create or replace a subscription; the queue's consumers read its slot."""

        async def put() -> None:
            await self.catalog.put_subscription(spec)
            queue = await self.catalog.queue(spec.queue)
            if queue is None:
                raise QueueDoesNotExist(spec.queue)
            await self._messages.ensure(queue, force=True)

        self._run(put())

    def delete_subscription(self, topic: str, queue: str) -> None:
        """Remove a subscription if present (what the queue holds from it stays)."""
        self._run(self.catalog.delete_subscription(topic, queue))

    def list_subscriptions(self, topic: str | None = None) -> list[SubscriptionSpec]:
        """Subscriptions of one topic, or all, in (topic, queue) order."""
        self._run(self.catalog.sync())
        return [
            spec
            for (t, _q), spec in sorted(self.catalog.view.subscriptions.items())
            if topic is None or t == topic
        ]

    def routes(self, topic: str) -> list[Route]:
        """Compiled subscriptions of the topic, cached per catalog version."""
        view = self.catalog.view
        cached = self._routes.get(topic)
        if cached is not None and cached[0] == view.version:
            return cached[1]
        version = view.version
        routes = [
            make_route(spec, view.queues[queue])
            for (t, queue), spec in sorted(view.subscriptions.items())
            if t == topic and queue in view.queues
        ]
        self._routes[topic] = (version, routes)
        return routes

    # -- messages -----------------------------------------------------------------------

    def commit(self, publications: Sequence[Publication]) -> list[str]:
        """Store each publication as one message (a multi-queue send: one atomic batch)."""
        now = self.clock()
        limit = self._nc.max_payload
        return self._run(self._publisher.commit(publications, now, limit), timeout=60)

    async def commit_async(self, publications: Sequence[Publication]) -> list[str]:
        """`commit` from an event loop: the publishes go out on the connection's loop."""
        now = self.clock()
        limit = self._nc.max_payload
        submitted = self._connection.submit(
            self._publisher.commit(publications, now, limit), timeout=60
        )
        return await asyncio.wrap_future(submitted)

    def lease(
        self, queue: QueueSpec, max_messages: int, visibility_timeout: int
    ) -> list[ReceivedMessage]:
        """Pull, decide and hand out up to `max_messages` deliveries."""
        return self._run(
            self._receiving.lease(queue, max_messages, visibility_timeout, self.clock()),
            timeout=60,
        )

    def wait(self, queue: str, timeout: float) -> None:
        """Long poll: until a delivery arrives (kept for the next lease) or `timeout` passes."""
        spec = self.get_queue(queue)
        self._run(self._receiving.wait(spec, timeout, self.clock()), timeout=timeout + 15)

    def delete_messages(self, queue: str, receipt_handles: Sequence[str]) -> list[EntryResult]:
        """Acknowledge by receipt handle; stale handles fail, and on a FIFO queue expired ones."""
        spec = self.get_queue(queue)
        return self._run(self._settling.delete(spec, receipt_handles, self.clock()), timeout=60)

    def set_visibility(
        self,
        queue: str,
        changes: Sequence[tuple[str, int]],
        failure: str | None = None,
        *,
        uncount: bool = False,
    ) -> list[EntryResult]:
        """Change visibility (a nak with a delay), keeping `failure` for a dead-letter."""
        spec = self.get_queue(queue)
        return self._run(
            self._settling.set_visibility(spec, changes, failure, self.clock(), uncount=uncount),
            timeout=60,
        )

    def purge(self, queue: str) -> None:
        """Delete every message of the queue, at most once per 60 seconds."""
        spec = self.get_queue(queue)
        self._run(self._upkeep.purge(spec, self.clock()), timeout=60)

    def peek(self, queue: str, limit: int) -> list[ReceivedMessage]:
        """The queue's stored messages read by subject: no consumer state changes."""
        spec = self.get_queue(queue)
        return self._run(self._peeking.peek(spec, limit, self.clock()), timeout=60)

    def move_dead_letters(self, source: QueueSpec, limit: int) -> int:
        """Move up to `limit` of `source`'s dead letters back to it, oldest first."""
        return self._run(
            self._upkeep.move_dead_letters(source, limit, self.clock()), timeout=120
        )

    def stats(self, queue: str) -> QueueStats:
        """Depths from the consumers' state: no scan, no write."""
        spec = self.get_queue(queue)
        return self._run(self._upkeep.stats(spec, self.clock()))

    # -- tables (JetStream key-value) -------------------------------------------------------

    def get_item(self, table: str, key: str) -> TableItem | None:
        """The live item, read from the key-value bucket."""
        return self._run(self._tables.get(table, key, self.clock()))

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
        """A conditional write: compare-and-set on the entry's key-value revision."""
        import json

        return self._run(
            self._tables.put(
                table,
                key,
                json.loads(value),
                expires_at,
                self.clock(),
                if_absent=if_absent,
                if_version=if_version,
            )
        )

    def delete_item(self, table: str, key: str, *, if_version: int | None) -> bool:
        """Delete the live item, conditionally."""
        return self._run(self._tables.delete(table, key, self.clock(), if_version=if_version))

    def scan_items(
        self, table: str, prefix: str, limit: int, start_after: str = ""
    ) -> list[TableItem]:
        """Live items in key order under `prefix`, after `start_after`."""
        return self._run(self._tables.scan(table, prefix, limit, self.clock(), start_after))
