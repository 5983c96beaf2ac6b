"""The replicated state machine behind the NATS backend: SNS/SQS semantics over journal entries.

Queues, topics, subscriptions and deduplication records live here; tables live in a key-value
bucket (`tables.py`).

Every process applies the same journal entries in the same order, so every process holds the
same state. `apply` is deterministic: time comes from the entry (`now`, the writer's clock),
receipt tokens from the entry, sequence numbers from a counter in the state. An entry that fails
(an unknown queue, a broken condition) raises before changing anything, on every replica alike.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fanstack.core.errors import (
    FanstackError,
    InvalidParameterValue,
    MessageNotInflight,
    QueueDoesNotExist,
    QueueNameExists,
    ReceiptHandleIsInvalid,
    TopicDoesNotExist,
)
from fanstack.core.fanout import delivered_body
from fanstack.core.message import ReceivedMessage, decode_attributes
from fanstack.core.queue_rules import (
    MAX_EXCEEDED_REASON,
    check_purge_interval,
    parse_receipt_handle,
    receipt_handle_expired,
    visibility_timeout_error,
)
from fanstack.core.records import EntryResult, QueueStats
from fanstack.core.specs import (
    DEDUPLICATION_INTERVAL,
    QueueSpec,
    SubscriptionSpec,
    TopicSpec,
)


@dataclass(slots=True)
class Payload:
    """A published message, stored once for all its deliveries."""

    message_id: str
    body: str
    attributes: str | None
    envelope: str | None


@dataclass(slots=True)
class Stored:
    """One message in one queue, with its SQS state."""

    seq: int
    payload: Payload
    unsubscribe_url: str | None
    sent_at: float
    visible_at: float
    expires_at: float
    group_id: str | None = None
    dedup_id: str | None = None
    receive_count: int = 0
    first_received_at: float | None = None
    receipt: str | None = None
    failure: str | None = None
    source_queue: str | None = None
    failed_receives: int = 0
    lost_receives: int | None = None


@dataclass
class QueueState:
    """A queue's spec, messages in sequence order, and an index by visibility."""

    spec: QueueSpec
    messages: dict[int, Stored] = field(default_factory=dict)
    by_visibility: list[tuple[float, int]] = field(default_factory=list)
    by_expiry: list[tuple[float, int]] = field(default_factory=list)
    last_purge: float | None = None
    expired: int = 0
    dead_lettered: int = 0

    def add(self, message: Stored) -> None:
        self.messages[message.seq] = message
        heapq.heappush(self.by_visibility, (message.visible_at, message.seq))
        heapq.heappush(self.by_expiry, (message.expires_at, message.seq))

    def hide(self, message: Stored, visible_at: float) -> None:
        message.visible_at = visible_at
        heapq.heappush(self.by_visibility, (visible_at, message.seq))

    def visible(self, now: float) -> Iterator[Stored]:
        """Visible messages, earliest visibility first (stale index entries are skipped)."""
        while self.by_visibility and self.by_visibility[0][0] <= now:
            visible_at, seq = heapq.heappop(self.by_visibility)
            message = self.messages.get(seq)
            if message is not None and message.visible_at == visible_at:
                yield message

    def restore(self, messages: list[Stored]) -> None:
        for message in messages:
            heapq.heappush(self.by_visibility, (message.visible_at, message.seq))


class State:
    """Queues, topics, subscriptions and deduplication records."""

    def __init__(self) -> None:
        self.queues: dict[str, QueueState] = {}
        self.topics: dict[str, TopicSpec] = {}
        self.subscriptions: dict[tuple[str, str], SubscriptionSpec] = {}
        self.dedup: dict[tuple[str, str], tuple[str, float]] = {}
        self.next_seq = 1
        self.catalog_version = 0
        self._ops: dict[str, Callable[[dict[str, Any]], Any]] = {
            name[len("op_") :]: getattr(self, name) for name in dir(self) if name.startswith("op_")
        }

    def apply(self, entry: dict[str, Any]) -> tuple[Any, set[str]]:
        """Apply one entry; (its result or the FanstackError it raised, queues it touched)."""
        handler = self._ops.get(entry["op"])
        if handler is None:
            return InvalidParameterValue(f"unknown journal operation {entry['op']!r}"), set()
        self.touched: set[str] = set()
        try:
            result = handler(entry)
        except FanstackError as error:
            result = error
        return result, self.touched

    def queue(self, name: str) -> QueueState:
        state = self.queues.get(name)
        if state is None:
            raise QueueDoesNotExist(name)
        return state

    # -- catalog ------------------------------------------------------------------------

    def op_create_queue(self, entry: dict[str, Any]) -> None:
        spec = QueueSpec.from_json(entry["spec"])
        existing = self.queues.get(spec.name)
        if existing is not None:
            if existing.spec != spec:
                raise QueueNameExists(f"queue {spec.name!r} exists with different attributes")
            return
        self.queues[spec.name] = QueueState(spec)
        self.catalog_version += 1

    def op_set_queue_attributes(self, entry: dict[str, Any]) -> None:
        spec = QueueSpec.from_json(entry["spec"])
        self.queue(spec.name).spec = spec
        self.catalog_version += 1

    def op_delete_queue(self, entry: dict[str, Any]) -> None:
        name = entry["name"]
        self.queue(name)
        del self.queues[name]
        self.subscriptions = {k: v for k, v in self.subscriptions.items() if k[1] != name}
        self.dedup = {k: v for k, v in self.dedup.items() if k[0] != f"queue:{name}"}
        self.catalog_version += 1

    def op_create_topic(self, entry: dict[str, Any]) -> None:
        spec = TopicSpec.from_json(entry["spec"])
        self.topics[spec.name] = spec
        self.catalog_version += 1

    def op_delete_topic(self, entry: dict[str, Any]) -> None:
        name = entry["name"]
        if name not in self.topics:
            raise TopicDoesNotExist(name)
        del self.topics[name]
        self.subscriptions = {k: v for k, v in self.subscriptions.items() if k[0] != name}
        self.catalog_version += 1

    def op_put_subscription(self, entry: dict[str, Any]) -> None:
        spec = SubscriptionSpec.from_json(entry["spec"])
        self.subscriptions[(spec.topic, spec.queue)] = spec
        self.catalog_version += 1

    def op_delete_subscription(self, entry: dict[str, Any]) -> None:
        self.subscriptions.pop((entry["topic"], entry["queue"]), None)
        self.catalog_version += 1

    # -- messages -----------------------------------------------------------------------

    def op_commit(self, entry: dict[str, Any]) -> list[str]:
        now: float = entry["now"]
        for publication in entry["publications"]:
            for delivery in publication["deliveries"]:
                self.queue(delivery[0])  # every target exists, or nothing is stored
        self._sweep_dedup(now)
        message_ids: list[str] = []
        for publication in entry["publications"]:
            message = publication["message"]
            dedup_key = publication.get("dedup_key")
            if dedup_key is not None:
                first = self._remember(tuple(dedup_key), message["id"], now)
                if first is not None:
                    message_ids.append(first)
                    continue
            message_ids.append(message["id"])
            payload = Payload(
                message["id"],
                message["body"],
                message.get("attributes"),
                publication.get("envelope"),
            )
            for queue_name, url, dedup_id in publication["deliveries"]:
                queue = self.queues[queue_name]
                spec = queue.spec
                scope = (f"queue:{spec.name}", dedup_id)
                if dedup_id is not None and spec.fifo and self._remember(scope, message["id"], now):
                    continue
                delay = message.get("delay")
                delay = spec.delay if delay is None else delay
                queue.add(
                    Stored(
                        seq=self._next_seq(),
                        payload=payload,
                        unsubscribe_url=url,
                        sent_at=now,
                        visible_at=now + delay,
                        expires_at=now + spec.retention,
                        group_id=message.get("group_id"),
                        dedup_id=dedup_id,
                    )
                )
                self.touched.add(queue_name)
        return message_ids

    def _next_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def _remember(self, key: tuple[str, ...], message_id: str, now: float) -> str | None:
        scope, dedup_id = key
        seen = self.dedup.get((scope, dedup_id))
        if seen is not None and seen[1] > now:
            return seen[0]
        self.dedup[(scope, dedup_id)] = (message_id, now + DEDUPLICATION_INTERVAL)
        return None

    def _sweep_dedup(self, now: float) -> None:
        if len(self.dedup) > 10_000:
            self.dedup = {k: v for k, v in self.dedup.items() if v[1] > now}

    def _sweep_expired(self, queue: QueueState, now: float) -> None:
        expired = 0
        while queue.by_expiry and queue.by_expiry[0][0] <= now:
            expires_at, seq = heapq.heappop(queue.by_expiry)
            message = queue.messages.get(seq)
            if message is not None and message.expires_at == expires_at:
                del queue.messages[seq]
                expired += 1
        queue.expired += expired

    def op_lease(self, entry: dict[str, Any]) -> list[ReceivedMessage]:
        now: float = entry["now"]
        queue = self.queue(entry["queue"])
        spec = queue.spec
        self._sweep_expired(queue, now)
        limit: int = entry["max"]
        timeout: int = entry["visibility_timeout"]
        token: str = entry["token"]
        picked = self._fifo_candidates(queue, now) if spec.fifo else queue.visible(now)
        leased: list[Stored] = []
        for message in picked:
            if len(leased) >= limit:
                if not spec.fifo:
                    queue.restore([message])
                break
            if (
                spec.max_receive_count is not None
                and message.receive_count >= spec.max_receive_count
            ):
                self._dead_letter(queue, message, now)
                continue
            message.receive_count += 1
            message.receipt = token
            if message.first_received_at is None:
                message.first_received_at = now
            queue.hide(message, now + timeout)
            leased.append(message)
        return [self._received(queue.spec.name, message) for message in leased]

    def _fifo_candidates(self, queue: QueueState, now: float) -> Iterator[Stored]:
        blocked: set[str | None] = set()
        for message in sorted(queue.messages.values(), key=lambda m: m.seq):
            if message.group_id in blocked or message.expires_at <= now:
                continue
            if message.visible_at > now:
                blocked.add(message.group_id)
                continue
            yield message

    def _dead_letter(self, queue: QueueState, message: Stored, now: float) -> None:
        assert queue.spec.dead_letter is not None
        target = self.queue(queue.spec.dead_letter)
        del queue.messages[message.seq]
        message.source_queue = queue.spec.name  # the receive count moves along, as in SQS
        message.receipt = None
        message.visible_at = now
        message.expires_at = message.sent_at + target.spec.retention
        message.failure = message.failure or MAX_EXCEEDED_REASON
        message.lost_receives = max(message.receive_count - message.failed_receives, 0)
        target.add(message)
        queue.dead_lettered += 1
        self.touched.add(target.spec.name)

    @staticmethod
    def _received(queue: str, message: Stored) -> ReceivedMessage:
        payload = message.payload
        url = message.unsubscribe_url
        return ReceivedMessage(
            id=payload.message_id,
            body=delivered_body(payload.body, payload.envelope, url),
            message_attributes=decode_attributes(None if url else payload.attributes),
            receipt_handle=f"{message.seq}:{message.receipt}",
            receive_count=message.receive_count,
            sent_timestamp=message.sent_at,
            first_receive_timestamp=message.first_received_at or message.sent_at,
            queue=queue,
            group_id=message.group_id,
            deduplication_id=message.dedup_id,
            sequence_number=message.seq if message.group_id is not None else None,
            failure=message.failure,
            source_queue=message.source_queue,
            failed_receives=message.failed_receives,
            lost_receives=message.lost_receives,
        )

    def _find(self, queue: QueueState, handle: str) -> Stored | FanstackError | None:
        """The message a latest receipt handle names; None if it is gone; the error otherwise."""
        parsed = parse_receipt_handle(handle)
        if isinstance(parsed, FanstackError):
            return parsed
        seq, token = parsed
        message = queue.messages.get(seq)
        if message is None:
            if any(seq in other.messages for other in self.queues.values()):
                return ReceiptHandleIsInvalid(
                    f"receipt handle {handle} belongs to another queue (the message moved)"
                )
            return None
        if message.receipt != token:
            return ReceiptHandleIsInvalid(
                f"receipt handle {handle} is stale or belongs to another queue "
                "(the message was received again or moved)"
            )
        return message

    def op_delete(self, entry: dict[str, Any]) -> list[EntryResult]:
        now: float | None = entry.get("now")  # absent from entries journaled before it was kept
        queue = self.queue(entry["queue"])
        results: list[EntryResult] = []
        for handle in entry["handles"]:
            found = self._find(queue, handle)
            if found is None:
                results.append(None)  # already deleted: DeleteMessage is idempotent, as in SQS
            elif isinstance(found, FanstackError):
                results.append(found)
            elif queue.spec.fifo and now is not None and found.visible_at <= now:
                results.append(receipt_handle_expired(handle))
            else:
                del queue.messages[found.seq]
                results.append(None)
        return results

    def op_visibility(self, entry: dict[str, Any]) -> list[EntryResult]:
        now: float = entry["now"]
        queue = self.queue(entry["queue"])
        results: list[EntryResult] = []
        for handle, timeout in entry["changes"]:
            found = self._find(queue, handle)
            if found is None:
                results.append(
                    ReceiptHandleIsInvalid(f"receipt handle {handle}: the message is gone")
                )
                continue
            if isinstance(found, FanstackError):
                results.append(found)
                continue
            error = visibility_timeout_error(timeout)
            if error is not None:
                results.append(error)
                continue
            if queue.spec.fifo and found.visible_at <= now:  # standard: the latest handle works
                results.append(
                    MessageNotInflight(
                        f"message {found.seq} of queue {queue.spec.name!r} is not in flight"
                    )
                )
                continue
            if entry.get("failure") is not None:
                found.failure = entry["failure"]
                found.failed_receives += 1
            if entry.get("uncount"):
                found.receive_count = max(found.receive_count - 1, 0)
            queue.hide(found, now + timeout)
            self.touched.add(queue.spec.name)
            results.append(None)
        return results

    def op_purge(self, entry: dict[str, Any]) -> None:
        now: float = entry["now"]
        queue = self.queue(entry["queue"])
        check_purge_interval(queue.spec.name, queue.last_purge, now)
        queue.messages.clear()
        queue.by_visibility.clear()
        queue.by_expiry.clear()
        queue.last_purge = now

    def op_move_dead_letters(self, entry: dict[str, Any]) -> int:
        now: float = entry["now"]
        source = self.queue(entry["queue"])
        assert source.spec.dead_letter is not None
        dead = self.queue(source.spec.dead_letter)
        moving = [
            m
            for m in dead.messages.values()
            if m.source_queue == source.spec.name and m.visible_at <= now
        ][: entry["limit"]]
        for message in moving:
            del dead.messages[message.seq]
            message.source_queue = None
            message.receive_count = 0
            message.receipt = None
            message.first_received_at = None
            message.failure = None
            message.failed_receives = 0
            message.lost_receives = None
            message.visible_at = now
            message.expires_at = now + source.spec.retention
            source.add(message)
        if moving:
            self.touched.add(source.spec.name)
        return len(moving)

    def op_stats(self, entry: dict[str, Any]) -> QueueStats:
        now: float = entry["now"]
        queue = self.queue(entry["queue"])
        self._sweep_expired(queue, now)
        visible = in_flight = delayed = 0
        oldest: float | None = None
        for message in queue.messages.values():
            if message.visible_at <= now:
                visible += 1
            elif message.receive_count > 0:
                in_flight += 1
            else:
                delayed += 1
            oldest = message.sent_at if oldest is None else min(oldest, message.sent_at)
        depth = None
        if queue.spec.dead_letter is not None and queue.spec.dead_letter in self.queues:
            depth = len(self.queues[queue.spec.dead_letter].messages)
        return QueueStats(
            name=queue.spec.name,
            visible=visible,
            in_flight=in_flight,
            delayed=delayed,
            oldest_age=None if oldest is None else max(0.0, now - oldest),
            dead_letter_depth=depth,
            expired=queue.expired,
            dead_lettered=queue.dead_lettered,
        )

    def next_visible(self, queue: str) -> float | None:
        """When the earliest hidden message of a queue becomes visible (for long polling)."""
        state = self.queues.get(queue)
        if state is None or not state.by_visibility:
            return None
        return state.by_visibility[0][0]


def subscriptions_of(state: State, topic: str | None) -> list[SubscriptionSpec]:
    """Subscriptions in (topic, queue) order."""
    return [
        spec for (t, _q), spec in sorted(state.subscriptions.items()) if topic is None or t == topic
    ]
