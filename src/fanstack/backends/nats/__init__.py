"""The NATS JetStream backend: fanstack's state as a replicated journal.

How resources map onto JetStream:

- **One stream per fanstack namespace** (default `FANSTACK`), file storage, replicated R3 when
  the URL names three or more servers (R1 otherwise, or `?replicas=N`). It holds one subject,
  `fanstack.<stream>.journal`: an ordered journal of every change — resource declarations,
  publishes, sends, receives, deletes, visibility changes, purges, redrives and table writes.
- **One ordered push consumer per process** tails the journal from its first entry and applies
  each entry to an in-memory `State` (`state.py`), the same SNS/SQS state machine on every
  process. Entries are deterministic: they carry the writer's clock and receipt tokens, so every
  replica computes the same leases, redrives and expiries.
- **Filter policies are evaluated by the publisher**, above the backend (`Backend.publish`); the
  journal entry of a publish already lists its deliveries.
- **Atomic fan-out**: a publish is one journal entry holding the message once and every delivery,
  so it is stored for all matching subscriptions or for none. A publish returns once JetStream
  acknowledged the entry (stored on a quorum of replicas) and this process applied it.
- **Leases are serialized by the journal**: two processes receiving from one queue append two
  lease entries; the journal orders them and each replica gives each message to exactly one.
- Reads that must see other processes' writes (listings, a queue this process has not seen)
  first catch up to the stream's last sequence.
- **Tables** live in a JetStream key-value bucket (`<stream>_TABLES`), one key per item;
  conditional writes are compare-and-set on the key's revision (`tables.py`).

- **Snapshots**: the writer of every `snapshot_every`-th entry stores the whole state in the
  `<stream>_SNAPSHOTS` object store and purges the journal behind it (keeping a margin); a new
  process starts from the snapshot, and one that lagged behind a purge reloads it.
- **Starting while the cluster restarts**: opening (connect, then the stream and buckets) is
  retried with exponential backoff and jitter for `?connect_timeout=` seconds (default 30; 0 is
  one attempt), one WARNING line a failed attempt, then `BackendUnavailable` naming the timeout
  and the last error (`startup.py`). Bad credentials or a malformed URL fail at once. Once open,
  the client reconnects forever.

URL options (`options.py`): `stream`, `replicas`, `snapshot_every`, `connect_timeout`, e.g.
`nats://n1:4222,n2:4222,n3:4222?stream=SHOP&connect_timeout=60`.

Limits: an entry must fit the server's `max_payload` (set it to 8 MB for 1 MiB queue messages);
every process holds the whole state in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import threading
import time
import uuid
import zlib
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from fanstack.backends.base import Backend
from fanstack.backends.nats.options import NatsOptions
from fanstack.backends.nats.snapshot import from_snapshot, to_snapshot
from fanstack.backends.nats.state import State, subscriptions_of
from fanstack.backends.nats.tables import KeyValueTables
from fanstack.core.errors import (
    BackendNotInstalled,
    BackendUnavailable,
    FanstackError,
    MessageTooLarge,
    QueueDoesNotExist,
    TopicDoesNotExist,
)
from fanstack.core.fanout import Publication, Route, make_route
from fanstack.core.message import ReceivedMessage, encode_attributes
from fanstack.core.records import Clock, EntryResult, QueueStats
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec
from fanstack.core.tables import TableItem

try:
    import nats
    from nats.aio.client import Client
    from nats.errors import Error as NatsError
    from nats.errors import NoServersError
    from nats.js.api import DeliverPolicy, ObjectStoreConfig, StorageType, StreamConfig
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise BackendNotInstalled(
        "the NATS backend needs nats-py: pip install 'fanstack[nats]'"
    ) from exc

from fanstack.backends.nats.startup import ATTEMPT_TIMEOUT, is_transient, retry_until_ready

log = logging.getLogger("fanstack.nats")

T = TypeVar("T")
REQUEST_TIMEOUT = 10.0
APPLY_TIMEOUT = 30.0
SERVER_CONNECT_TIMEOUT = 5  # one TCP connection and handshake, within one opening attempt
SNAPSHOT_MARGIN = 0.1  # share of the interval kept in the journal behind a snapshot
SNAPSHOT_OBJECT = "state"
HEARTBEAT = 1.0  # the tail consumer's idle heartbeat: how fast a lost consumer is noticed
CATCH_UP_AFTER = 0.5  # seconds to wait for the tail before reading entries directly


class NatsBackend(Backend):
    """SNS/SQS semantics replicated through a JetStream journal."""

    def __init__(self, url: str, *, clock: Clock = time.time) -> None:
        super().__init__(clock=clock)
        self._url = url  # as given, options included: worker processes reopen it alike
        options = NatsOptions.from_url(url)
        self.stream = options.stream
        self.subject = f"fanstack.{self.stream}.journal"
        self.replicas = options.replicas
        self.snapshot_every = options.snapshot_every
        self.connect_timeout = options.connect_timeout
        self.bucket = f"{self.stream}_SNAPSHOTS"
        self.id = uuid.uuid4().hex
        self._ready = False
        self._connect_error: BaseException | None = None
        self._nc = Client()
        self.state = State()
        self.applied = 0
        self._refs = itertools.count(1)
        self._results: dict[int, Any] = {}
        self._changed = threading.Condition()
        self._touched: dict[str, int] = {}
        self._routes: dict[str, tuple[int, list[Route]]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fanstack-nats")
        self._thread.daemon = True
        self._thread.start()
        opening = retry_until_ready(
            lambda: self._connect(list(options.servers)),
            self._discard_connection,
            target=options.hosts,
            connect_timeout=self.connect_timeout,
        )
        try:
            self._run(opening, timeout=self.connect_timeout + 2 * ATTEMPT_TIMEOUT)
        except BackendUnavailable:
            self._stop_loop()
            raise
        self._ready = True

    @property
    def url(self) -> str:
        """The URL this backend was opened with."""
        return self._url

    # -- the connection and the journal -------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float = REQUEST_TIMEOUT) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except FanstackError:
            raise
        except (NatsError, OSError, TimeoutError) as exc:
            future.cancel()
            raise BackendUnavailable(f"NATS: {type(exc).__name__}: {exc}") from exc

    async def _connect(self, servers: list[str]) -> None:
        """One opening attempt: connect, then make the stream, buckets and journal tail ready."""
        self._nc, self._connect_error = Client(), None
        try:
            await self._nc.connect(
                servers=servers,
                name=f"fanstack-{self.id[:8]}",
                connect_timeout=SERVER_CONNECT_TIMEOUT,
                max_reconnect_attempts=1,  # each server twice; retry_until_ready does the waiting
                reconnect_time_wait=0.5,  # type: ignore[arg-type]  # seconds; floats work
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        except NoServersError:
            # Say why: refused, timed out, or an authorization violation (which is final).
            if self._connect_error is None:
                raise
            raise self._connect_error from None
        self._nc.options["max_reconnect_attempts"] = -1  # connected once: never give up
        self._js = self._nc.jetstream(timeout=REQUEST_TIMEOUT)
        config = StreamConfig(
            name=self.stream,
            subjects=[self.subject],
            storage=StorageType.FILE,
            num_replicas=self.replicas,
        )
        try:
            await self._js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(config)
        try:
            self._snapshots = await self._js.object_store(self.bucket)
        except nats.js.errors.NotFoundError:
            self._snapshots = await self._js.create_object_store(
                self.bucket,
                config=ObjectStoreConfig(
                    bucket=self.bucket, storage=StorageType.FILE, replicas=self.replicas
                ),
            )
        self._tables = KeyValueTables(self._js, f"{self.stream}_TABLES", self.replicas)
        await self._tables.open()
        await self._load_snapshot()
        self._subscription = await self._js.subscribe(
            self.subject,
            cb=self._on_entry,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            idle_heartbeat=HEARTBEAT,
        )

    async def _discard_connection(self) -> None:
        """Drop what a failed opening attempt left, so the next one starts clean."""
        client = self._nc
        if client.is_connected or client.is_connecting or client.is_reconnecting:
            with contextlib.suppress(NatsError, OSError, TimeoutError):
                await asyncio.wait_for(client.close(), REQUEST_TIMEOUT)

    async def _on_error(self, error: Exception) -> None:
        if not self._ready:
            # While opening, retry_until_ready logs each failed attempt: no need to shout.
            # Keep a final error (an authorization violation) over the reset that follows it.
            if self._connect_error is None or is_transient(self._connect_error):
                self._connect_error = error
            log.debug("NATS connection error: %s: %s", type(error).__name__, error)
            return
        log.warning("NATS connection error: %s: %s", type(error).__name__, error)

    async def _on_disconnected(self) -> None:
        if self._ready:
            log.warning("NATS disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        log.info(
            "NATS reconnected to %s",
            self._nc.connected_url.netloc if self._nc.connected_url else "?",
        )

    async def _on_entry(self, message: Any) -> None:
        sequence = message.metadata.sequence.stream
        if sequence > self.applied + 1:
            # Entries before this one were purged behind a snapshot while we lagged.
            await self._load_snapshot()
        self._apply(sequence, message.data)

    async def _load_snapshot(self) -> None:
        """Adopt the latest snapshot if it is ahead of what this process applied."""
        try:
            found = await self._snapshots.get(SNAPSHOT_OBJECT)
        except nats.js.errors.ObjectNotFoundError:
            return
        if found.data is None:
            return
        snapshot = json.loads(zlib.decompress(found.data))
        with self._changed:
            if snapshot["seq"] > self.applied:
                self.state = from_snapshot(snapshot["state"])
                self.applied = snapshot["seq"]
                self._routes.clear()
                for queue in self.state.queues:
                    self._touched[queue] = self.applied
                self._changed.notify_all()
                log.info("loaded the snapshot at journal entry %d", self.applied)

    async def _snapshot(self, sequence: int, state: dict[str, Any]) -> None:
        """Store a snapshot taken at `sequence`, then purge the journal behind it."""
        data = zlib.compress(json.dumps({"seq": sequence, "state": state}).encode())
        try:
            await self._snapshots.put(SNAPSHOT_OBJECT, data)
            keep = int(self.snapshot_every * SNAPSHOT_MARGIN)
            if sequence - keep > 1:
                await self._js.purge_stream(self.stream, seq=sequence - keep)
            log.info("snapshot at journal entry %d (%d bytes)", sequence, len(data))
        except (TimeoutError, NatsError, OSError) as exc:
            log.warning("snapshot at %d failed: %s", sequence, exc)

    def _apply(self, sequence: int, data: bytes) -> None:
        """Apply the entry at `sequence` once, in order (the tail and catch-up both call this)."""
        with self._changed:
            if sequence != self.applied + 1:
                return  # already applied, or a gap the tail or a catch-up will fill in order
            entry = json.loads(data)
            result, touched = self.state.apply(entry)
            self.applied = sequence
            if entry.get("origin") == self.id:
                self._results[entry["ref"]] = result
            for queue in touched:
                self._touched[queue] = sequence
            self._changed.notify_all()
            if sequence % self.snapshot_every == 0 and entry.get("origin") == self.id:
                # The writer of every snapshot_every-th entry snapshots: one writer, no vote.
                state = to_snapshot(self.state)
                self._loop.call_soon_threadsafe(
                    lambda: self._loop.create_task(self._snapshot(sequence, state))
                )

    def _append(self, entry: dict[str, Any]) -> Any:
        """Append an entry, wait until this process applied it, and return its result."""
        ref = next(self._refs)
        entry["origin"], entry["ref"] = self.id, ref
        data = json.dumps(entry, separators=(",", ":")).encode()
        limit = self._nc.max_payload
        if len(data) > limit:
            raise MessageTooLarge(
                f"a journal entry of {len(data)} bytes exceeds the NATS server's max_payload "
                f"of {limit} bytes (raise max_payload on the server)"
            )
        ack = self._run(self._js.publish(self.subject, data, stream=self.stream))
        self._wait_applied(ack.seq)
        with self._changed:
            result = self._results.pop(ref)
        if isinstance(result, FanstackError):
            raise result
        return result

    def _sync(self) -> None:
        """Catch up with every entry appended so far (by any process)."""
        info = self._run(self._js.stream_info(self.stream))
        self._wait_applied(info.state.last_seq)

    def _wait_applied(self, target: int) -> None:
        """Wait until entries up to `target` are applied; read them directly if the tail lags
        (its consumer may be re-forming after a node failure)."""
        deadline = time.monotonic() + APPLY_TIMEOUT
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self.applied >= target, timeout=CATCH_UP_AFTER)
                if self.applied >= target:
                    return
                start = self.applied + 1
            if time.monotonic() > deadline:
                raise BackendUnavailable(f"NATS: could not catch up with the journal to {target}")
            for sequence in range(start, target + 1):
                try:
                    raw = self._run(self._js.get_msg(self.stream, sequence))
                except nats.js.errors.NotFoundError:
                    self._run(self._load_snapshot())  # purged behind a snapshot
                    break
                self._apply(sequence, raw.data or b"")

    def close(self) -> None:
        """Close the connection (the state stays in JetStream)."""
        if self._loop.is_closed():
            return
        self._ready = False  # a disconnect from here on is ours, not news

        async def shutdown() -> None:
            with contextlib.suppress(NatsError):
                await self._subscription.unsubscribe()
            await self._nc.drain()

        try:
            self._run(shutdown(), timeout=10)
        except BackendUnavailable:
            log.warning("NATS connection did not drain cleanly")
        self._stop_loop()

    def _stop_loop(self) -> None:
        async def cancel_all() -> None:
            current = asyncio.current_task()
            pending = [task for task in asyncio.all_tasks() if task is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), self._loop).result(5)
        except (TimeoutError, RuntimeError) as exc:
            log.warning("NATS client tasks did not stop cleanly: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()

    # -- catalog ------------------------------------------------------------------------

    def create_queue(self, spec: QueueSpec) -> None:
        """Create a queue; no-op if identical, `QueueNameExists` if it differs."""
        self._append({"op": "create_queue", "spec": spec.to_json()})

    def set_queue_attributes(self, spec: QueueSpec) -> None:
        """Replace an existing queue's attributes."""
        self._append({"op": "set_queue_attributes", "spec": spec.to_json()})

    def get_queue(self, name: str) -> QueueSpec:
        """The queue's spec, or `QueueDoesNotExist`."""
        queue = self.state.queues.get(name)
        if queue is None:
            self._sync()
            queue = self.state.queues.get(name)
            if queue is None:
                raise QueueDoesNotExist(name)
        return queue.spec

    def list_queues(self) -> list[QueueSpec]:
        """Every queue, sorted by name."""
        self._sync()
        with self._changed:
            return sorted((q.spec for q in self.state.queues.values()), key=lambda s: s.name)

    def delete_queue(self, name: str) -> None:
        """Delete the queue, its messages and its subscriptions."""
        self._append({"op": "delete_queue", "name": name})

    def create_topic(self, spec: TopicSpec) -> None:
        """Create or replace a topic."""
        self._append({"op": "create_topic", "spec": spec.to_json()})

    def get_topic(self, name: str) -> TopicSpec:
        """The topic's spec, or `TopicDoesNotExist`."""
        spec = self.state.topics.get(name)
        if spec is None:
            self._sync()
            spec = self.state.topics.get(name)
            if spec is None:
                raise TopicDoesNotExist(name)
        return spec

    def list_topics(self) -> list[TopicSpec]:
        """Every topic, sorted by name."""
        self._sync()
        with self._changed:
            return sorted(self.state.topics.values(), key=lambda s: s.name)

    def delete_topic(self, name: str) -> None:
        """Delete the topic and its subscriptions."""
        self._append({"op": "delete_topic", "name": name})

    def put_subscription(self, spec: SubscriptionSpec) -> None:
        """Create or replace a subscription."""
        self._append({"op": "put_subscription", "spec": spec.to_json()})

    def delete_subscription(self, topic: str, queue: str) -> None:
        """Remove a subscription if present."""
        self._append({"op": "delete_subscription", "topic": topic, "queue": queue})

    def list_subscriptions(self, topic: str | None = None) -> list[SubscriptionSpec]:
        """Subscriptions of one topic, or all."""
        self._sync()
        with self._changed:
            return subscriptions_of(self.state, topic)

    def routes(self, topic: str) -> list[Route]:
        """Compiled subscriptions of the topic, cached per catalog version."""
        with self._changed:
            version = self.state.catalog_version
            cached = self._routes.get(topic)
            if cached is not None and cached[0] == version:
                return cached[1]
            routes = [
                make_route(spec, self.state.queues[spec.queue].spec)
                for spec in subscriptions_of(self.state, topic)
                if spec.queue in self.state.queues
            ]
            self._routes[topic] = (version, routes)
            return routes

    # -- messages -----------------------------------------------------------------------

    def commit(self, publications: Sequence[Publication]) -> list[str]:
        """Append the publications as journal entries (each one atomic), within max_payload."""
        now = self.clock()
        encoded = [_publication(p) for p in publications]
        message_ids: list[str] = []
        limit = self._nc.max_payload - 4096
        chunk: list[dict[str, Any]] = []
        size = 0
        for publication in encoded:
            length = len(json.dumps(publication))
            if chunk and size + length > limit:
                message_ids += self._append({"op": "commit", "now": now, "publications": chunk})
                chunk, size = [], 0
            chunk.append(publication)
            size += length
        if chunk:
            message_ids += self._append({"op": "commit", "now": now, "publications": chunk})
        return message_ids

    def lease(
        self, queue: QueueSpec, max_messages: int, visibility_timeout: int
    ) -> list[ReceivedMessage]:
        """Lease visible messages through the journal (one receiver per message, everywhere)."""
        with self._changed:
            state = self.state.queues.get(queue.name)
            if state is not None and not _maybe_visible(state, self.clock()):
                return []  # nothing to lease here: skip the round trip
        result: list[ReceivedMessage] = self._append(
            {
                "op": "lease",
                "now": self.clock(),
                "queue": queue.name,
                "max": max_messages,
                "visibility_timeout": visibility_timeout,
                "token": secrets.token_hex(8),
            }
        )
        return result

    def wait(self, queue: str, timeout: float) -> None:
        """Sleep until an entry touches the queue or a hidden message becomes visible."""
        deadline = time.monotonic() + timeout
        with self._changed:
            seen = self._touched.get(queue, 0)
            next_visible = self.state.next_visible(queue)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._touched.get(queue, 0) != seen:
                    return
                if next_visible is not None:
                    until = next_visible - self.clock()
                    if until <= 0:
                        return
                    remaining = min(remaining, until)
                self._changed.wait(remaining)

    def delete_messages(self, queue: str, receipt_handles: Sequence[str]) -> list[EntryResult]:
        """Delete by receipt handle; stale handles fail, and on a FIFO queue expired ones."""
        result: list[EntryResult] = self._append(
            {"op": "delete", "now": self.clock(), "queue": queue, "handles": list(receipt_handles)}
        )
        return result

    def set_visibility(
        self,
        queue: str,
        changes: Sequence[tuple[str, int]],
        failure: str | None = None,
        *,
        uncount: bool = False,
    ) -> list[EntryResult]:
        """Change visibility by the latest receipt handles, keeping `failure` for a dead-letter."""
        result: list[EntryResult] = self._append(
            {
                "op": "visibility",
                "now": self.clock(),
                "queue": queue,
                "changes": [list(change) for change in changes],
                "failure": failure,
                "uncount": uncount,
            }
        )
        return result

    def purge(self, queue: str) -> None:
        """Delete every message of the queue, at most once per 60 seconds."""
        self._append({"op": "purge", "now": self.clock(), "queue": queue})

    def move_dead_letters(self, source: QueueSpec, limit: int) -> int:
        """Move up to `limit` visible messages dead-lettered from `source` back to it."""
        moved: int = self._append(
            {"op": "move_dead_letters", "now": self.clock(), "queue": source.name, "limit": limit}
        )
        return moved

    def stats(self, queue: str) -> QueueStats:
        """Depths of the queue, as of an entry appended now (expiry swept alike everywhere)."""
        stats: QueueStats = self._append({"op": "stats", "now": self.clock(), "queue": queue})
        return stats

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


def _publication(publication: Publication) -> dict[str, Any]:
    message = publication.message
    return {
        "message": {
            "id": message.id,
            "body": message.body,
            "attributes": encode_attributes(message.attributes),
            "delay": message.delay_seconds,
            "group_id": message.group_id,
        },
        "deliveries": [
            [d.queue, d.unsubscribe_url, d.deduplication_id] for d in publication.deliveries
        ],
        "envelope": publication.envelope_prefix,
        "dedup_key": list(publication.dedup_key) if publication.dedup_key else None,
    }


def _maybe_visible(state: Any, now: float) -> bool:
    """Cheap local check: could a lease of this queue find anything right now?"""
    index = state.by_visibility
    return bool(index) and index[0][0] <= now
