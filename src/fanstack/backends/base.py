"""The `Backend` interface: every durable effect of fanstack goes through it.

Policy lives here, once: validating sends against a queue's rules, planning topic fan-out through
filter policies, long polling. A concrete backend implements a short list of storage primitives
(the abstract methods), each documented with its atomicity.

Resource changes (queues, topics, subscriptions) are one transaction each on SQLite. On NATS
each is a short series of idempotent steps, the catalog's key-value entry first: every
process brings a queue's consumers up to the catalog the first time it publishes to or
receives from the queue and after every catalog change, and deletions remove the catalog
entry last, so a process that dies between the steps leaves a state that the next use of the
queue, or the same call made again, completes.

Batch-shaped calls return one result per entry, index-aligned: the message id (or None) on
success, the `FanstackError` instance on failure, so one bad entry never sinks the others.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fanstack.core.errors import (
    FanstackError,
    InvalidParameterValue,
    QueueNameExists,
)
from fanstack.core.fanout import Delivery, Publication, Route, index_routes, plan_publication
from fanstack.core.filter_index import FilterIndex
from fanstack.core.message import (
    OutgoingMessage,
    ReceivedMessage,
)
from fanstack.core.queue_rules import MAX_RECEIVE_BATCH, check_send, visibility_timeout_error
from fanstack.core.records import Clock, EntryResult, PublishRequest, QueueStats, new_message_id
from fanstack.core.specs import (
    FILTER_POLICIES_PER_TOPIC,
    MAX_WAIT_SECONDS,
    QueueSpec,
    SubscriptionSpec,
    TopicSpec,
    check_dead_letter,
)
from fanstack.core.tables import TableItem, check_table_key, encode_item

SCAN_PAGE = 1000  # items a paged table read asks for at once


class Backend(ABC):
    """Durable storage of queues, topics and subscriptions, with SNS/SQS semantics."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock
        self._filter_indexes: dict[str, tuple[list[Route], FilterIndex[Route]]] = {}

    @property
    @abstractmethod
    def url(self) -> str:
        """A URL that opens this same store from another process (`open_backend`)."""

    # -- resources (primitives) -------------------------------------------------------------

    @abstractmethod
    def create_queue(self, spec: QueueSpec) -> None:
        """Create a queue; no-op if it exists with the same spec, `QueueNameExists` otherwise.

        Atomic: of two processes creating one name with different specs, one gets
        `QueueNameExists` (SQLite: one transaction; NATS: the catalog key is created only if
        absent, the queue's consumers after it).
        """

    @abstractmethod
    def set_queue_attributes(self, spec: QueueSpec) -> None:
        """Replace the attributes of an existing queue (its FIFO-ness cannot change).

        SQLite: one transaction, the stored messages' expiry moved with a new retention period.
        NATS: one catalog key; each process's consumers follow (a new visibility timeout is
        their ack wait) at its next use of the queue.
        """

    @abstractmethod
    def get_queue(self, name: str) -> QueueSpec:
        """The queue's spec, or `QueueDoesNotExist`."""

    @abstractmethod
    def list_queues(self) -> list[QueueSpec]:
        """Every queue, by name."""

    @abstractmethod
    def delete_queue(self, name: str) -> None:
        """Delete a queue, its messages and its subscriptions.

        SQLite: one transaction. NATS: its subscriptions, its consumers and stored messages,
        then its catalog key: until the key goes the queue is there, so calling it again
        finishes what a process that died midway left. A queue made again under the name
        gets none of the old messages.
        """

    @abstractmethod
    def create_topic(self, spec: TopicSpec) -> None:
        """Create a topic (idempotent; a changed spec replaces the old one): one write."""

    @abstractmethod
    def get_topic(self, name: str) -> TopicSpec:
        """The topic's spec, or `TopicDoesNotExist`."""

    @abstractmethod
    def list_topics(self) -> list[TopicSpec]:
        """Every topic, by name."""

    @abstractmethod
    def delete_topic(self, name: str) -> None:
        """Delete a topic and its subscriptions (queued messages stay).

        SQLite: one transaction. NATS: the subscriptions one by one, then the topic's catalog
        key; calling it again finishes what a process that died midway left.
        """

    @abstractmethod
    def put_subscription(self, spec: SubscriptionSpec) -> None:
        """Create or replace the subscription of `spec.queue` to `spec.topic`.

        SQLite: one transaction. NATS: the catalog key, then the queue's consumers read the
        subscription's slot, before this returns. A publish this process starts afterwards
        delivers to the queue; other processes' publishes do once their catalog shows it
        (SQLite: within 0.1 s; NATS: as the catalog's watch brings it), as SNS documents
        subscription changes as eventually consistent.
        """

    @abstractmethod
    def delete_subscription(self, topic: str, queue: str) -> None:
        """Remove a subscription (no-op if absent): one write. What the queue already holds
        from the topic stays."""

    @abstractmethod
    def list_subscriptions(self, topic: str | None = None) -> list[SubscriptionSpec]:
        """Subscriptions of one topic, or of all topics."""

    @abstractmethod
    def routes(self, topic: str) -> list[Route]:
        """The topic's subscriptions compiled for fan-out, the same list until they change."""

    # -- messages (primitives) --------------------------------------------------------------

    @abstractmethod
    def commit(self, publications: Sequence[Publication]) -> list[str]:
        """Store publications durably; each one's deliveries all or none, before returning.

        A publication whose `dedup_key` was seen within the deduplication interval stores
        nothing and yields the first message's id; a FIFO queue skips a delivery whose
        `deduplication_id` it saw within the interval. Returns one message id per publication.
        """

    @abstractmethod
    async def commit_async(self, publications: Sequence[Publication]) -> list[str]:
        """`commit` on an event loop, which goes on serving while the publications are stored
        (SQLite: in the next transaction the process's writers share; NATS: on the
        connection's own loop); returns or raises as `commit` once they are."""

    @abstractmethod
    def lease(
        self, queue: QueueSpec, max_messages: int, visibility_timeout: int
    ) -> list[ReceivedMessage]:
        """Receive without waiting: hide up to `max_messages` visible messages for the timeout.

        Atomic: no two callers lease the same message. A message already received
        `max_receive_count` times moves to the dead-letter queue instead, keeping its last failure,
        its receive count and first receive time, and naming its source queue.
        FIFO queues hand out messages in group order and skip groups with a message in flight.
        """

    @abstractmethod
    def wait(self, queue: str, timeout: float) -> None:
        """Block up to `timeout` seconds, returning early when a message may have become visible.

        A hint only, changing nothing: the lease that follows decides what is received.
        """

    @abstractmethod
    def delete_messages(self, queue: str, receipt_handles: Sequence[str]) -> list[EntryResult]:
        """Delete by receipt handle; stale or foreign handles fail with `ReceiptHandleIsInvalid`.

        Each entry on its own: a failed one deletes nothing and stops no other. An entry
        reported deleted is gone for good before this returns (SQLite: one statement for the
        batch; NATS: acknowledgements the server confirms), so no receive gets it again.

        On a FIFO queue a handle whose visibility timeout ran out fails (`receipt_handle_expired`);
        on a standard queue it deletes until the message is received again.
        """

    @abstractmethod
    def set_visibility(
        self,
        queue: str,
        changes: Sequence[tuple[str, int]],
        failure: str | None = None,
        *,
        uncount: bool = False,
    ) -> list[EntryResult]:
        """Change visibility timeouts by the latest receipt handles, atomically per message.

        On a standard queue the handle works until the message is received again, even after its
        visibility timeout ran out (as in SQS); on a FIFO queue only while the message is in
        flight (`MessageNotInflight` after). `failure` is kept for a later dead-letter; `uncount`
        takes back the receive that leased the message (it was returned unprocessed: shutdown,
        an open circuit breaker).
        """

    @abstractmethod
    def purge(self, queue: str) -> None:
        """Delete every message of the queue; `PurgeQueueInProgress` within 60 s of the last.

        Once it returns, no receiver gets a message stored before the purge began.
        """

    @abstractmethod
    def peek(self, queue: str, limit: int) -> list[ReceivedMessage]:
        """Up to `limit` messages the queue holds, oldest first, without receiving them.

        Read-only: no receive count, visibility or receipt changes, so a peeked message stays
        exactly as it was (the receipt handles are empty: a peek cannot delete). Messages in
        flight and delayed are included; expired ones are not. `QueueDoesNotExist` if absent.
        """

    @abstractmethod
    def move_dead_letters(self, source: QueueSpec, limit: int) -> int:
        """Move up to `limit` visible messages from the source's DLQ back to it, oldest first.

        At least once per message: a message is in the source before it leaves the DLQ (one
        transaction per call on SQLite; on NATS a process dying between the two steps leaves
        it in both; a move repeated within 5 minutes stores nothing twice).
        """

    @abstractmethod
    def stats(self, queue: str) -> QueueStats:
        """Current depths of the queue, read without a write and without a scan of the backlog.

        Messages past their retention period that are not deleted yet count as expired where
        the backend knows of them (SQLite: always; NATS: once a receive has met them).
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections (the data stays)."""

    def calls_are_local(self) -> bool:
        """Whether a call is work done on this machine (microseconds, no network round trip),
        so one thread can drive every consumer's leases and deletes. False unless a backend
        knows."""
        return False

    def writes_at_once(self) -> bool:
        """Whether a short write made now waits on nothing: no other writer of this process at
        work, no network round trip, no flush to disk per commit. A server answers such calls
        where they arrive instead of handing them to a thread. False unless a backend knows."""
        return False

    # -- tables (primitives) ------------------------------------------------------------

    @abstractmethod
    def get_item(self, table: str, key: str) -> TableItem | None:
        """The live item at `key`, or None (an expired item is absent)."""

    @abstractmethod
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
        """Atomically check the condition and store the JSON `value` with version + 1.

        `if_absent` needs no live item; `if_version` needs the live item at that version.
        A failed condition raises ConditionalCheckFailed and changes nothing.
        """

    @abstractmethod
    def delete_item(self, table: str, key: str, *, if_version: int | None) -> bool:
        """Atomically delete the live item (if at `if_version`); True if one was deleted."""

    @abstractmethod
    def scan_items(
        self, table: str, prefix: str, limit: int, start_after: str = ""
    ) -> list[TableItem]:
        """Live items whose key starts with `prefix`, in key order, at most `limit`.

        Only keys greater than `start_after` are returned, so a caller pages through a large
        table (an archive replayed in order) as with DynamoDB's ExclusiveStartKey.
        """

    # -- policy (shared by every backend) -------------------------------------------------

    def table_get(self, table: str, key: str) -> TableItem | None:
        """The live item at `key`, or None (an expired item is absent); one consistent read."""
        check_table_key(table, key)
        return self.get_item(table, key)

    def table_put(
        self,
        table: str,
        key: str,
        value: Mapping[str, Any],
        *,
        ttl: float | None = None,
        if_absent: bool = False,
        if_version: int | None = None,
    ) -> TableItem:
        """Store a JSON object at `key`, condition check and write atomic; version + 1.

        `if_absent` needs no live item, `if_version` the live item at that version; a failed
        condition raises ConditionalCheckFailed and changes nothing. `ttl` counts from `clock()`.
        """
        text = encode_item(table, key, value)
        if ttl is not None and ttl <= 0:
            raise InvalidParameterValue(f"table {table!r} key {key!r}: ttl is {ttl}; need > 0")
        if if_absent and if_version is not None:
            raise InvalidParameterValue(
                f"table {table!r} key {key!r}: if_absent and if_version cannot both hold"
            )
        expires_at = None if ttl is None else self.clock() + ttl
        return self.put_item(
            table, key, text, expires_at, if_absent=if_absent, if_version=if_version
        )

    def table_delete(self, table: str, key: str, *, if_version: int | None = None) -> bool:
        """Delete the item at `key` (atomically checking `if_version`); True if a live one was."""
        check_table_key(table, key)
        return self.delete_item(table, key, if_version=if_version)

    def table_scan(
        self, table: str, *, prefix: str = "", limit: int = 1000, start_after: str = ""
    ) -> list[TableItem]:
        """Live items in key order, optionally under a key prefix and after a key."""
        check_table_key(table, prefix or "-")
        if not 1 <= limit <= 10_000:
            raise InvalidParameterValue(f"scan limit is {limit}; it must be between 1 and 10000")
        return self.scan_items(table, prefix, limit, start_after)

    def table_items(
        self, table: str, *, prefix: str = "", start_after: str = ""
    ) -> Iterator[TableItem]:
        """Every live item under `prefix` after `start_after`, in key order, a page at a time."""
        while True:
            page = self.table_scan(
                table, prefix=prefix, limit=SCAN_PAGE, start_after=start_after
            )
            yield from page
            if len(page) < SCAN_PAGE:
                return
            start_after = page[-1].key

    def declare_queue(self, spec: QueueSpec) -> None:
        """Create the queue, or bring an existing one to this spec (the app code is the stack)."""
        if spec.dead_letter is not None:
            check_dead_letter(spec, self.get_queue(spec.dead_letter))
        try:
            self.create_queue(spec)
        except QueueNameExists:
            self.set_queue_attributes(spec)

    def subscribe(self, spec: SubscriptionSpec) -> None:
        """Validate and store a subscription: queue type, filter policy, per-topic policy limit."""
        topic = self.get_topic(spec.topic)
        queue = self.get_queue(spec.queue)
        if queue.fifo and not topic.fifo:
            raise InvalidParameterValue(
                f"FIFO queue {queue.name!r} can only subscribe to a FIFO topic, not {topic.name!r}"
            )
        from fanstack.core.fanout import make_route

        make_route(spec, queue)  # raises InvalidFilterPolicy before anything is stored
        if spec.filter_policy:
            others = [
                s
                for s in self.list_subscriptions(spec.topic)
                if s.filter_policy and s.queue != spec.queue
            ]
            if len(others) >= FILTER_POLICIES_PER_TOPIC:
                raise InvalidParameterValue(
                    f"topic {topic.name!r} already has {len(others)} filter policies; "
                    f"the limit is {FILTER_POLICIES_PER_TOPIC} per topic"
                )
        self.put_subscription(spec)

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[EntryResult]:
        """Store messages in a queue; per-message results, valid ones stored in one step."""
        results, publications = self._plan_send(queue, messages)
        if publications:
            self.commit(publications)
        return results

    async def send_async(
        self, queue: str, messages: Sequence[OutgoingMessage]
    ) -> list[EntryResult]:
        """`send` on an event loop, which goes on serving while the messages are stored."""
        results, publications = self._plan_send(queue, messages)
        if publications:
            await self.commit_async(publications)
        return results

    def _plan_send(
        self, queue: str, messages: Sequence[OutgoingMessage]
    ) -> tuple[list[EntryResult], list[Publication]]:
        """Each message's result if it is stored, and what to store: the valid ones."""
        spec = self.get_queue(queue)
        results: list[EntryResult] = []
        publications: list[Publication] = []
        for message in messages:
            try:
                checked = check_send(spec, message)
                delivery = Delivery(queue, deduplication_id=checked.deduplication_id)
                publications.append(Publication(checked, [delivery]))
                results.append(message.id)
            except FanstackError as error:
                results.append(error)
        return results, publications

    def publish(self, topic: str, requests: Sequence[PublishRequest]) -> list[EntryResult]:
        """Fan messages out to every matching subscription; each all-or-none, in one step."""
        planned = self._plan_publish(topic, requests)
        if planned.publications:
            planned.stored(self.commit(planned.publications))
        return planned.results

    async def publish_async(
        self, topic: str, requests: Sequence[PublishRequest]
    ) -> list[EntryResult]:
        """`publish` on an event loop, which goes on serving while the messages are stored."""
        planned = self._plan_publish(topic, requests)
        if planned.publications:
            planned.stored(await self.commit_async(planned.publications))
        return planned.results

    def _plan_publish(self, topic: str, requests: Sequence[PublishRequest]) -> _Planned:
        """What each request stores (its fan-out through the topic's filter policies)."""
        spec = self.get_topic(topic)
        routes = self._filter_index(topic)
        now = self.clock()
        results: list[EntryResult] = []
        publications: list[Publication] = []
        positions: list[int] = []
        for request in requests:
            try:
                publication = plan_publication(
                    spec,
                    routes,
                    message_id=new_message_id(),
                    body=request.body,
                    attributes=request.attributes,
                    subject=request.subject,
                    group_id=request.group_id,
                    deduplication_id=request.deduplication_id,
                    now=now,
                )
            except FanstackError as error:
                results.append(error)
                continue
            positions.append(len(results))
            results.append(None)
            publications.append(publication)
        return _Planned(results, publications, positions)

    def _filter_index(self, topic: str) -> FilterIndex[Route]:
        """The topic's routes indexed by filter policy, rebuilt whenever `routes` gives new ones.

        Backends compile routes anew (a new list) when subscriptions or queues change and hand
        back the same list until then, so the index changes exactly when the routes do.
        """
        routes = self.routes(topic)
        cached = self._filter_indexes.get(topic)
        if cached is not None and cached[0] is routes:
            return cached[1]
        index = index_routes(routes)
        self._filter_indexes[topic] = (routes, index)
        return index

    def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        wait_seconds: float | None = None,
        visibility_timeout: int | None = None,
    ) -> list[ReceivedMessage]:
        """Receive up to `max_messages`, long polling `wait_seconds` (default: the queue's).

        `wait_seconds` may be fractional here, for the runtime's own polls; `Queue.receive`, the
        ReceiveMessage of users, takes whole seconds as SQS does.
        """
        spec = self.get_queue(queue)
        if not 1 <= max_messages <= MAX_RECEIVE_BATCH:
            raise InvalidParameterValue(
                f"max_messages is {max_messages}; it must be between 1 and {MAX_RECEIVE_BATCH}"
            )
        wait = spec.receive_wait if wait_seconds is None else wait_seconds
        if not 0 <= wait <= MAX_WAIT_SECONDS:
            raise InvalidParameterValue(
                f"wait_seconds is {wait}; it must be between 0 and {MAX_WAIT_SECONDS}"
            )
        timeout = spec.visibility_timeout if visibility_timeout is None else visibility_timeout
        error = visibility_timeout_error(timeout)
        if error is not None:
            raise error
        deadline = time.monotonic() + wait
        while True:
            messages = self.lease(spec, max_messages, timeout)
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0:
                return messages
            self.wait(queue, remaining)

    def redrive_dead_letters(
        self, queue: str, *, batch: int = 100, on_moved: Callable[[int], None] | None = None
    ) -> int:
        """Move every message the queue dead-lettered back to it, each as a new message (a new
        id, sent now); returns how many moved.

        `on_moved` is called with the count of each batch moved (for a progress bar).
        """
        spec = self.get_queue(queue)
        if spec.dead_letter is None:
            raise InvalidParameterValue(f"queue {queue!r} has no dead-letter queue to redrive from")
        moved = 0
        while True:
            count = self.move_dead_letters(spec, batch)
            moved += count
            if on_moved is not None and count:
                on_moved(count)
            if count < batch:
                return moved


@dataclass(slots=True)
class _Planned:
    """A publish call's results so far (errors in place) and the publications to store."""

    results: list[EntryResult]
    publications: list[Publication]
    positions: list[int]  # of each publication's entry in `results`

    def stored(self, message_ids: list[str]) -> None:
        """Fill in the stored publications' message ids."""
        for position, message_id in zip(self.positions, message_ids, strict=True):
            self.results[position] = message_id
