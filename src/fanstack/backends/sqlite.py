"""The embedded backend: one SQLite database file in the data dir, safe for many processes.

Mapping onto the engine:

- `queues`, `topics`, `subscriptions` hold the specs as JSON; `catalog.version` is bumped on every
  change so each connection reloads its cached specs and compiled routes only when needed.
- `payloads` holds each published or sent message once (id, body, attributes and, for enveloped
  deliveries, the SNS envelope without its per-subscription `UnsubscribeURL`), with a count of
  the deliveries that refer to it; the last delivery deleted (or expired, or purged) deletes it.
  A 1 KB event fanned out to five queues is thus written once, not five times.
- `messages` holds one row per delivery to a queue (small: no body). A message is *visible* when
  `visible_at <= now`; *in flight* when received (`receive_count > 0`) and `visible_at > now`;
  *delayed* when never received and `visible_at > now`. A receive is one `BEGIN IMMEDIATE`
  transaction that picks candidates and sets `visible_at`, `receive_count` and a fresh receipt
  token; the receipt handle is `seq:token`, so a handle goes stale when the message is received
  again (on a FIFO queue, when its visibility timeout runs out). Dead-lettering and redrive change
  the row's `queue` in place.
- `dedup` remembers deduplication ids per scope (`queue:NAME` or `topic:NAME`) for 5 minutes.
- WAL journal; `synchronous=NORMAL` survives a killed process, `durability="fsync"` selects FULL
  for power loss. A topic publish inserts all its deliveries in one transaction (atomic fan-out).
- Long polling waits on an in-process condition (same process) and polls `PRAGMA data_version`
  (other processes), waking when a commit lands or the next hidden message becomes visible.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fanstack.backends.base import (
    MAX_EXCEEDED_REASON,
    Backend,
    Clock,
    EntryResult,
    QueueStats,
    TableItem,
    check_purge_interval,
    parse_receipt_handle,
    receipt_handle_expired,
    visibility_timeout_error,
)
from fanstack.core.errors import (
    BackendUnavailable,
    ConditionalCheckFailed,
    FanstackError,
    InvalidParameterValue,
    MessageNotInflight,
    QueueDoesNotExist,
    QueueNameExists,
    ReceiptHandleIsInvalid,
    TopicDoesNotExist,
)
from fanstack.core.fanout import Publication, Route, delivered_body, make_route
from fanstack.core.message import ReceivedMessage, decode_attributes, encode_attributes
from fanstack.core.specs import (
    DEDUPLICATION_INTERVAL,
    QueueSpec,
    SubscriptionSpec,
    TopicSpec,
)

log = logging.getLogger("fanstack.backends.sqlite")

DATABASE_FILE = "fanstack.db"
SWEEP_INTERVAL = 10.0
POLL_INTERVAL = 0.02
CATALOG_RECHECK = 0.1
BUSY_TIMEOUT_MS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS catalog (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO catalog (id, version) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    last_purge REAL,
    expired INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    topic TEXT NOT NULL,
    queue TEXT NOT NULL,
    spec TEXT NOT NULL,
    PRIMARY KEY (topic, queue)
);
CREATE TABLE IF NOT EXISTS payloads (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT,
    envelope TEXT,
    refs INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    payload INTEGER NOT NULL,
    unsubscribe_url TEXT,
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_received_at REAL,
    receipt TEXT,
    group_id TEXT,
    dedup_id TEXT,
    failure TEXT,
    source_queue TEXT,
    failed_receives INTEGER NOT NULL DEFAULT 0,
    lost_receives INTEGER
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (queue, visible_at);
CREATE INDEX IF NOT EXISTS messages_by_group ON messages (queue) WHERE group_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_by_source ON messages (queue, source_queue)
    WHERE source_queue IS NOT NULL;
CREATE TABLE IF NOT EXISTS items (
    table_name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    version INTEGER NOT NULL,
    expires_at REAL,
    PRIMARY KEY (table_name, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup (
    scope TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (scope, dedup_id)
) WITHOUT ROWID;
"""

_COLUMNS = (
    "seq, payload, unsubscribe_url, sent_at, receive_count, first_received_at, group_id, "
    "dedup_id, failure, source_queue, failed_receives, lost_receives"
)
# Columns added after a data dir may have been created: (table, column, definition).
_ADDED_COLUMNS = (
    ("messages", "failed_receives", "INTEGER NOT NULL DEFAULT 0"),
    ("messages", "lost_receives", "INTEGER"),
)
_INSERT = (
    "INSERT INTO messages (queue, payload, unsubscribe_url, sent_at, visible_at, expires_at, "
    "group_id, dedup_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_PAYLOAD = (
    "INSERT INTO payloads (id, message_id, body, attributes, envelope, refs) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


class _Catalog:
    """Specs and compiled routes as of one catalog version."""

    def __init__(self, version: int, checked: float = float("-inf")) -> None:
        self.version = version
        self.checked = checked
        self.queues: dict[str, QueueSpec] = {}
        self.topics: dict[str, TopicSpec] = {}
        self.routes: dict[str, list[Route]] = {}


class SQLiteBackend(Backend):
    """SNS/SQS semantics on one SQLite file (WAL), shared safely by threads and processes."""

    name = "sqlite"

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        durability: str = "normal",
        clock: Clock = time.time,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        super().__init__(clock=clock)
        if busy_timeout_ms < 0:
            raise InvalidParameterValue(f"busy_timeout_ms must be >= 0, got {busy_timeout_ms}")
        self.busy_timeout_ms = busy_timeout_ms
        if durability not in ("normal", "fsync"):
            raise InvalidParameterValue(
                f"durability must be 'normal' or 'fsync', got {durability!r}"
            )
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DATABASE_FILE
        self._synchronous = "FULL" if durability == "fsync" else "NORMAL"
        self._local = threading.local()
        self._catalog = _Catalog(-1)
        self._catalog_lock = threading.Lock()
        self._commits = threading.Condition()
        self._writer = threading.Lock()
        self._generation = 0
        self._last_sweep: dict[str, float] = {}
        self._last_dedup_sweep = 0.0
        self._connections: list[sqlite3.Connection] = []
        self._db().executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")
        self._add_columns()

    def _add_columns(self) -> None:
        """Bring a data dir made by an earlier version up to the current schema."""
        with self._write() as db:
            for table, column, definition in _ADDED_COLUMNS:
                present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    @property
    def url(self) -> str:
        """`sqlite://` + the data dir, with this busy timeout."""
        return f"sqlite://{self.data_dir.resolve()}?busy_timeout_ms={self.busy_timeout_ms}"

    # -- connections and transactions -----------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(
                    self.path,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=self.busy_timeout_ms / 1000,
                )
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={self._synchronous}")
                db.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
            except sqlite3.Error as exc:
                raise BackendUnavailable(f"cannot open {self.path}: {exc}") from exc
            self._local.db = db
            self._connections.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction: committed on success, rolled back on error.

        Threads of this process take turns on a lock first: SQLite's own busy handler sleeps
        in growing steps, so threads contending on it would idle while the database is free.
        """
        db = self._db()
        with self._writer:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise BackendUnavailable(f"cannot write to {self.path}: {exc}") from exc
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        with self._commits:
            self._generation += 1
            self._commits.notify_all()

    def close(self) -> None:
        """Close every connection this backend opened."""
        for db in self._connections:
            db.close()
        self._connections.clear()
        self._local = threading.local()

    # -- catalog ------------------------------------------------------------------------------

    def _current(self, db: sqlite3.Connection | None = None) -> _Catalog:
        """The catalog, re-checked inside every write and at most every 0.1 s outside one.

        Another process's resource changes thus show here within 0.1 s (SNS itself documents
        subscription changes as eventually consistent); this process's own show at once.
        """
        catalog = self._catalog
        now = time.monotonic()
        if db is None and now - catalog.checked < CATALOG_RECHECK:
            return catalog
        db = db or self._db()
        (version,) = db.execute("SELECT version FROM catalog").fetchone()
        if catalog.version == version:
            catalog.checked = now
            return catalog
        with self._catalog_lock:
            fresh = _Catalog(version, now)
            for name, spec in db.execute("SELECT name, spec FROM queues"):
                fresh.queues[name] = QueueSpec.from_json(spec)
            for name, spec in db.execute("SELECT name, spec FROM topics"):
                fresh.topics[name] = TopicSpec.from_json(spec)
            self._catalog = fresh
            return fresh

    def _bump(self, db: sqlite3.Connection) -> None:
        db.execute("UPDATE catalog SET version = version + 1")
        self._catalog = _Catalog(-1)  # reload on next use, even within the recheck interval

    def create_queue(self, spec: QueueSpec) -> None:
        """Create a queue; no-op if identical, `QueueNameExists` if it differs."""
        with self._write() as db:
            row = db.execute("SELECT spec FROM queues WHERE name = ?", (spec.name,)).fetchone()
            if row is not None:
                if QueueSpec.from_json(row[0]) != spec:
                    raise QueueNameExists(f"queue {spec.name!r} exists with different attributes")
                return
            db.execute("INSERT INTO queues (name, spec) VALUES (?, ?)", (spec.name, spec.to_json()))
            self._bump(db)

    def set_queue_attributes(self, spec: QueueSpec) -> None:
        """Replace an existing queue's attributes."""
        with self._write() as db:
            row = db.execute("SELECT spec FROM queues WHERE name = ?", (spec.name,)).fetchone()
            if row is None:
                raise QueueDoesNotExist(spec.name)
            old = QueueSpec.from_json(row[0])
            if old != spec:
                log.info("queue %s attributes updated: %s -> %s", spec.name, row[0], spec.to_json())
                db.execute("UPDATE queues SET spec = ? WHERE name = ?", (spec.to_json(), spec.name))
                self._bump(db)

    def get_queue(self, name: str) -> QueueSpec:
        """The queue's spec, or `QueueDoesNotExist`."""
        spec = self._current().queues.get(name)
        if spec is None:
            raise QueueDoesNotExist(name)
        return spec

    def list_queues(self) -> list[QueueSpec]:
        """Every queue, sorted by name."""
        return sorted(self._current().queues.values(), key=lambda spec: spec.name)

    def delete_queue(self, name: str) -> None:
        """Delete the queue, its messages and its subscriptions."""
        with self._write() as db:
            if db.execute("DELETE FROM queues WHERE name = ?", (name,)).rowcount == 0:
                raise QueueDoesNotExist(name)
            self._delete_where(db, "queue = ?", (name,))
            db.execute("DELETE FROM subscriptions WHERE queue = ?", (name,))
            db.execute("DELETE FROM dedup WHERE scope = ?", (f"queue:{name}",))
            self._bump(db)

    def create_topic(self, spec: TopicSpec) -> None:
        """Create or replace a topic."""
        with self._write() as db:
            db.execute(
                "INSERT INTO topics (name, spec) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec",
                (spec.name, spec.to_json()),
            )
            self._bump(db)

    def get_topic(self, name: str) -> TopicSpec:
        """The topic's spec, or `TopicDoesNotExist`."""
        spec = self._current().topics.get(name)
        if spec is None:
            raise TopicDoesNotExist(name)
        return spec

    def list_topics(self) -> list[TopicSpec]:
        """Every topic, sorted by name."""
        return sorted(self._current().topics.values(), key=lambda spec: spec.name)

    def delete_topic(self, name: str) -> None:
        """Delete the topic and its subscriptions."""
        with self._write() as db:
            if db.execute("DELETE FROM topics WHERE name = ?", (name,)).rowcount == 0:
                raise TopicDoesNotExist(name)
            db.execute("DELETE FROM subscriptions WHERE topic = ?", (name,))
            self._bump(db)

    def put_subscription(self, spec: SubscriptionSpec) -> None:
        """Create or replace the subscription of a queue to a topic."""
        with self._write() as db:
            db.execute(
                "INSERT INTO subscriptions (topic, queue, spec) VALUES (?, ?, ?) "
                "ON CONFLICT (topic, queue) DO UPDATE SET spec = excluded.spec",
                (spec.topic, spec.queue, spec.to_json()),
            )
            self._bump(db)

    def delete_subscription(self, topic: str, queue: str) -> None:
        """Remove a subscription if present."""
        with self._write() as db:
            db.execute("DELETE FROM subscriptions WHERE topic = ? AND queue = ?", (topic, queue))
            self._bump(db)

    def list_subscriptions(self, topic: str | None = None) -> list[SubscriptionSpec]:
        """Subscriptions of one topic, or all."""
        db = self._db()
        if topic is None:
            rows = db.execute("SELECT spec FROM subscriptions ORDER BY topic, queue").fetchall()
        else:
            rows = db.execute(
                "SELECT spec FROM subscriptions WHERE topic = ? ORDER BY queue", (topic,)
            ).fetchall()
        return [SubscriptionSpec.from_json(spec) for (spec,) in rows]

    def routes(self, topic: str) -> list[Route]:
        """Compiled subscriptions of the topic, cached per catalog version."""
        catalog = self._current()
        routes = catalog.routes.get(topic)
        if routes is None:
            routes = [
                make_route(spec, catalog.queues[spec.queue])
                for spec in self.list_subscriptions(topic)
                if spec.queue in catalog.queues
            ]
            catalog.routes[topic] = routes
        return routes

    # -- messages -----------------------------------------------------------------------------

    def commit(self, publications: Sequence[Publication]) -> list[str]:
        """Store each message once and one row per delivery, all in one transaction."""
        now = self.clock()
        message_ids: list[str] = []
        payloads: list[tuple[object, ...]] = []
        rows: list[tuple[object, ...]] = []
        with self._write() as db:
            queues = self._current(db).queues
            self._sweep_dedup(db, now)
            (next_payload,) = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM payloads").fetchone()
            for publication in publications:
                message = publication.message
                if publication.dedup_key is not None:
                    first = self._remember(db, *publication.dedup_key, message.id, now)
                    if first is not None:
                        message_ids.append(first)
                        continue
                message_ids.append(message.id)
                stored = len(rows)
                for delivery in publication.deliveries:
                    spec = queues.get(delivery.queue)
                    if spec is None:
                        raise QueueDoesNotExist(delivery.queue)
                    if delivery.deduplication_id is not None and spec.fifo:
                        scope = f"queue:{spec.name}"
                        if self._remember(db, scope, delivery.deduplication_id, message.id, now):
                            continue
                    delay = spec.delay if message.delay_seconds is None else message.delay_seconds
                    rows.append(
                        (
                            spec.name,
                            next_payload,
                            delivery.unsubscribe_url,
                            now,
                            now + delay,
                            now + spec.retention,
                            message.group_id,
                            delivery.deduplication_id,
                        )
                    )
                if len(rows) > stored:
                    payloads.append(
                        (
                            next_payload,
                            message.id,
                            message.body,
                            encode_attributes(message.attributes),
                            publication.envelope_prefix,
                            len(rows) - stored,
                        )
                    )
                    next_payload += 1
            db.executemany(_INSERT_PAYLOAD, payloads)
            db.executemany(_INSERT, rows)
        return message_ids

    @staticmethod
    def _release(db: sqlite3.Connection, payload_ids: Iterable[int]) -> None:
        """Drop one reference per id; a payload no delivery refers to any more is deleted."""
        released = Counter(payload_ids)
        db.executemany(
            "UPDATE payloads SET refs = refs - ? WHERE id = ?",
            [(count, payload) for payload, count in released.items()],
        )
        db.executemany("DELETE FROM payloads WHERE id = ? AND refs <= 0", [(p,) for p in released])

    def _delete_where(
        self, db: sqlite3.Connection, condition: str, params: Sequence[object]
    ) -> int:
        """Delete message rows matching `condition`, releasing their payloads; returns the count."""
        payload_ids = [
            payload
            for (payload,) in db.execute(
                f"DELETE FROM messages WHERE {condition} RETURNING payload", params
            )
        ]
        self._release(db, payload_ids)
        return len(payload_ids)

    @staticmethod
    def _remember(
        db: sqlite3.Connection, scope: str, dedup_id: str, message_id: str, now: float
    ) -> str | None:
        """Record a deduplication id; return the first message's id if it was seen already."""
        row = db.execute(
            "SELECT message_id FROM dedup WHERE scope = ? AND dedup_id = ? AND expires_at > ?",
            (scope, dedup_id, now),
        ).fetchone()
        if row is not None:
            return str(row[0])
        db.execute(
            "INSERT OR REPLACE INTO dedup (scope, dedup_id, message_id, expires_at) "
            "VALUES (?, ?, ?, ?)",
            (scope, dedup_id, message_id, now + DEDUPLICATION_INTERVAL),
        )
        return None

    def _sweep_dedup(self, db: sqlite3.Connection, now: float) -> None:
        if now - self._last_dedup_sweep >= DEDUPLICATION_INTERVAL / 10:
            self._last_dedup_sweep = now
            db.execute("DELETE FROM dedup WHERE expires_at <= ?", (now,))

    def _sweep_expired(
        self, db: sqlite3.Connection, queue: str, now: float, force: bool = False
    ) -> None:
        """Delete messages past their retention period, counting and logging them."""
        if not force and now - self._last_sweep.get(queue, 0.0) < SWEEP_INTERVAL:
            return
        self._last_sweep[queue] = now
        expired = self._delete_where(db, "queue = ? AND expires_at <= ?", (queue, now))
        if expired:
            db.execute("UPDATE queues SET expired = expired + ? WHERE name = ?", (expired, queue))
            log.warning("queue %s: %d message(s) expired past the retention period", queue, expired)

    def lease(
        self, queue: QueueSpec, max_messages: int, visibility_timeout: int
    ) -> list[ReceivedMessage]:
        """Hide up to `max_messages` visible messages; dead-letter those received too often."""
        now = self.clock()
        token = secrets.token_hex(8)
        with self._write() as db:
            self._sweep_expired(db, queue.name, now)
            leased: list[tuple[Any, ...]] = []
            while len(leased) < max_messages:
                candidates = self._candidates(db, queue, now, max_messages - len(leased))
                if not candidates:
                    break
                to_lease = []
                for seq, receive_count in candidates:
                    if (
                        queue.max_receive_count is not None
                        and receive_count >= queue.max_receive_count
                    ):
                        self._dead_letter(db, queue, seq, now)
                    else:
                        to_lease.append(seq)
                if to_lease:
                    leased.extend(self._mark_received(db, to_lease, now, visibility_timeout, token))
                if len(to_lease) == len(candidates):
                    break
            return self._messages(db, queue.name, leased, token) if leased else []

    def _candidates(
        self, db: sqlite3.Connection, queue: QueueSpec, now: float, limit: int
    ) -> list[tuple[int, int]]:
        if not queue.fifo:
            return db.execute(
                "SELECT seq, receive_count FROM messages INDEXED BY messages_by_visibility "
                "WHERE queue = ? AND visible_at <= ? AND expires_at > ? "
                "ORDER BY visible_at LIMIT ?",
                (queue.name, now, now, limit),
            ).fetchall()
        # FIFO: walk the queue in order; a group whose earliest message is hidden is blocked.
        blocked: set[str] = set()
        picked: list[tuple[int, int]] = []
        rows = db.execute(
            "SELECT seq, receive_count, group_id, visible_at, expires_at FROM messages "
            "INDEXED BY messages_by_group WHERE queue = ? AND group_id IS NOT NULL ORDER BY seq",
            (queue.name,),
        )
        for seq, receive_count, group_id, visible_at, expires_at in rows:
            if group_id in blocked or expires_at <= now:
                continue
            if visible_at > now:
                blocked.add(group_id)
                continue
            picked.append((seq, receive_count))
            if len(picked) >= limit:
                break
        return picked

    def _dead_letter(self, db: sqlite3.Connection, queue: QueueSpec, seq: int, now: float) -> None:
        assert queue.dead_letter is not None
        dead_letter = self._current(db).queues.get(queue.dead_letter)
        if dead_letter is None:
            raise QueueDoesNotExist(queue.dead_letter)
        db.execute(  # the receive count and first receive time move along, as in SQS
            "UPDATE messages SET queue = ?, source_queue = ?, receipt = NULL, visible_at = ?, "
            "expires_at = sent_at + ?, failure = COALESCE(failure, ?), "
            "lost_receives = MAX(receive_count - failed_receives, 0) WHERE seq = ?",
            (dead_letter.name, queue.name, now, dead_letter.retention, MAX_EXCEEDED_REASON, seq),
        )
        db.execute(
            "UPDATE queues SET dead_lettered = dead_lettered + 1 WHERE name = ?", (queue.name,)
        )

    @staticmethod
    def _mark_received(
        db: sqlite3.Connection, seqs: list[int], now: float, timeout: int, token: str
    ) -> list[tuple[Any, ...]]:
        marks = ",".join("?" * len(seqs))
        rows = db.execute(
            "UPDATE messages SET receive_count = receive_count + 1, receipt = ?, visible_at = ?, "
            f"first_received_at = COALESCE(first_received_at, ?) WHERE seq IN ({marks}) "
            f"RETURNING {_COLUMNS}",
            (token, now + timeout, now, *seqs),
        ).fetchall()
        order = {seq: index for index, seq in enumerate(seqs)}
        rows.sort(key=lambda row: order[row[0]])
        return rows

    @staticmethod
    def _messages(
        db: sqlite3.Connection, queue: str, rows: list[tuple[Any, ...]], token: str
    ) -> list[ReceivedMessage]:
        """Join leased rows with their payloads into received messages, in lease order."""
        ids = {row[1] for row in rows}
        payloads = {
            payload[0]: payload
            for payload in db.execute(
                "SELECT id, message_id, body, attributes, envelope FROM payloads "
                f"WHERE id IN ({','.join('?' * len(ids))})",
                tuple(ids),
            )
        }
        messages = []
        for row in rows:
            seq, payload, url, sent_at, count, first, group, dedup, failure, source = row[:10]
            _, message_id, body, attributes, envelope = payloads[payload]
            messages.append(
                ReceivedMessage(
                    id=message_id,
                    body=delivered_body(body, envelope, url),
                    message_attributes=decode_attributes(None if url else attributes),
                    receipt_handle=f"{seq}:{token}",
                    receive_count=count,
                    sent_timestamp=sent_at,
                    first_receive_timestamp=first,
                    queue=queue,
                    group_id=group,
                    deduplication_id=dedup,
                    sequence_number=seq if group is not None else None,
                    failure=failure,
                    source_queue=source,
                    failed_receives=row[10],
                    lost_receives=row[11],
                )
            )
        return messages

    def wait(self, queue: str, timeout: float) -> None:
        """Sleep until a commit lands (here or in another process) or a hidden message shows."""
        db = self._db()
        deadline = time.monotonic() + timeout
        (version,) = db.execute("PRAGMA data_version").fetchone()
        (next_visible,) = db.execute(
            "SELECT MIN(visible_at) FROM messages WHERE queue = ? AND visible_at > ?",
            (queue, self.clock()),
        ).fetchone()
        with self._commits:
            generation = self._generation
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            step = min(remaining, POLL_INTERVAL)
            with self._commits:
                if self._commits.wait_for(lambda: self._generation != generation, timeout=step):
                    return
            if db.execute("PRAGMA data_version").fetchone()[0] != version:
                return
            if next_visible is not None and self.clock() >= next_visible:
                return

    def delete_messages(self, queue: str, receipt_handles: Sequence[str]) -> list[EntryResult]:
        """Delete by receipt handle; stale handles fail, and on a FIFO queue expired ones."""
        parsed = [parse_receipt_handle(handle) for handle in receipt_handles]
        valid = [entry for entry in parsed if not isinstance(entry, FanstackError)]
        now = self.clock()
        with self._write() as db:
            spec = self._current(db).queues.get(queue)
            expiring = spec is not None and spec.fifo
            deleted: dict[int, int] = {}
            if valid:
                marks = ",".join("?" * len(valid))
                cases = " ".join("WHEN ? THEN ?" for _ in valid)
                deleted = dict(
                    db.execute(
                        f"DELETE FROM messages WHERE seq IN ({marks}) AND +queue = ? "
                        f"AND receipt = CASE seq {cases} END AND (NOT ? OR visible_at > ?) "
                        "RETURNING seq, payload",
                        (
                            *(seq for seq, _ in valid),
                            queue,
                            *(part for entry in valid for part in entry),
                            expiring,
                            now,
                        ),
                    ).fetchall()
                )
                self._release(db, deleted.values())
            results: list[EntryResult] = []
            for entry in parsed:
                if isinstance(entry, FanstackError):
                    results.append(entry)
                elif entry[0] in deleted:
                    results.append(None)
                else:
                    results.append(self._why_not(db, queue, *entry, deleting=True))
        return results

    def set_visibility(
        self,
        queue: str,
        changes: Sequence[tuple[str, int]],
        failure: str | None = None,
        *,
        uncount: bool = False,
    ) -> list[EntryResult]:
        """Change visibility by the latest receipt handles, keeping `failure` for a dead-letter."""
        now = self.clock()
        results: list[EntryResult] = []
        with self._write() as db:
            spec = self._current(db).queues.get(queue)
            expiring = spec is not None and spec.fifo
            for handle, timeout in changes:
                entry = parse_receipt_handle(handle)
                if isinstance(entry, FanstackError):
                    results.append(entry)
                    continue
                error = visibility_timeout_error(timeout)
                if error is not None:
                    results.append(error)
                    continue
                seq, token = entry
                params = (now + timeout, failure, failure, int(uncount), seq, queue, token)
                changed = db.execute(
                    "UPDATE messages SET visible_at = ?, failure = COALESCE(?, failure), "
                    "failed_receives = failed_receives + (? IS NOT NULL), "
                    "receive_count = MAX(receive_count - ?, 0) "
                    "WHERE seq = ? AND queue = ? AND receipt = ? AND (NOT ? OR visible_at > ?)",
                    (*params, expiring, now),
                ).rowcount
                results.append(None if changed else self._why_not(db, queue, seq, token))
        return results

    def _why_not(
        self, db: sqlite3.Connection, queue: str, seq: int, token: str, deleting: bool = False
    ) -> FanstackError | None:
        row = db.execute("SELECT queue, receipt FROM messages WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            if deleting:
                return None  # already deleted: DeleteMessage is idempotent, as in SQS
            return ReceiptHandleIsInvalid(f"receipt handle {seq}:{token}: the message is gone")
        if row[0] != queue or row[1] != token:
            return ReceiptHandleIsInvalid(
                f"receipt handle {seq}:{token} is stale or belongs to another queue "
                "(the message was received again or moved)"
            )
        # The handle is the latest one, so its FIFO queue refused it for running out of time.
        if deleting:
            return receipt_handle_expired(f"{seq}:{token}")
        return MessageNotInflight(f"message {seq} of queue {queue!r} is not in flight")

    def purge(self, queue: str) -> None:
        """Delete every message of the queue, at most once per 60 seconds."""
        now = self.clock()
        with self._write() as db:
            row = db.execute("SELECT last_purge FROM queues WHERE name = ?", (queue,)).fetchone()
            if row is None:
                raise QueueDoesNotExist(queue)
            check_purge_interval(queue, row[0], now)
            self._delete_where(db, "queue = ?", (queue,))
            db.execute("UPDATE queues SET last_purge = ? WHERE name = ?", (now, queue))

    def move_dead_letters(self, source: QueueSpec, limit: int) -> int:
        """Move up to `limit` visible messages dead-lettered from `source` back to it."""
        assert source.dead_letter is not None
        now = self.clock()
        with self._write() as db:
            return db.execute(
                "UPDATE messages SET queue = ?, source_queue = NULL, receive_count = 0, "
                "receipt = NULL, first_received_at = NULL, failure = NULL, failed_receives = 0, "
                "lost_receives = NULL, "
                "visible_at = ?, "
                "expires_at = ? WHERE seq IN (SELECT seq FROM messages WHERE queue = ? "
                "AND source_queue = ? AND visible_at <= ? ORDER BY seq LIMIT ?)",
                (
                    source.name,
                    now,
                    now + source.retention,
                    source.dead_letter,
                    source.name,
                    now,
                    limit,
                ),
            ).rowcount

    # -- tables ---------------------------------------------------------------------------

    def get_item(self, table: str, key: str) -> TableItem | None:
        """The live item, read without a write lock."""
        row = (
            self._db()
            .execute(
                "SELECT value, version, expires_at FROM items WHERE table_name = ? AND key = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (table, key, self.clock()),
            )
            .fetchone()
        )
        return None if row is None else TableItem(key, json.loads(row[0]), row[1], row[2])

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
        """Check and write in one IMMEDIATE transaction (one writer at a time)."""
        now = self.clock()
        with self._write() as db:
            row = db.execute(
                "SELECT version, expires_at FROM items WHERE table_name = ? AND key = ?",
                (table, key),
            ).fetchone()
            live = row is not None and (row[1] is None or row[1] > now)
            if if_absent and live:
                raise ConditionalCheckFailed(
                    f"table {table!r} key {key!r}: an item exists (condition: if_absent)"
                )
            if if_version is not None and (not live or row[0] != if_version):
                found = row[0] if live else "none"
                raise ConditionalCheckFailed(
                    f"table {table!r} key {key!r}: version is {found}, not {if_version} "
                    "(condition: if_version)"
                )
            version = row[0] + 1 if live else 1
            db.execute(
                "INSERT OR REPLACE INTO items (table_name, key, value, version, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (table, key, value, version, expires_at),
            )
        return TableItem(key, json.loads(value), version, expires_at)

    def delete_item(self, table: str, key: str, *, if_version: int | None) -> bool:
        """Delete the live item, conditionally, in one transaction."""
        now = self.clock()
        with self._write() as db:
            row = db.execute(
                "SELECT version, expires_at FROM items WHERE table_name = ? AND key = ?",
                (table, key),
            ).fetchone()
            live = row is not None and (row[1] is None or row[1] > now)
            if if_version is not None and (not live or row[0] != if_version):
                raise ConditionalCheckFailed(
                    f"table {table!r} key {key!r}: version is not {if_version} "
                    "(condition: if_version)"
                )
            if row is None:
                return False
            db.execute("DELETE FROM items WHERE table_name = ? AND key = ?", (table, key))
            return live

    def scan_items(self, table: str, prefix: str, limit: int) -> list[TableItem]:
        """Live items in key order under `prefix`."""
        upper = prefix + "\U0010ffff"
        rows = (
            self._db()
            .execute(
                "SELECT key, value, version, expires_at FROM items WHERE table_name = ? "
                "AND key >= ? AND key < ? AND (expires_at IS NULL OR expires_at > ?) "
                "ORDER BY key LIMIT ?",
                (table, prefix, upper, self.clock(), limit),
            )
            .fetchall()
        )
        return [TableItem(r[0], json.loads(r[1]), r[2], r[3]) for r in rows]

    def stats(self, queue: str) -> QueueStats:
        """Depths of the queue, after sweeping expired messages."""
        spec = self.get_queue(queue)
        now = self.clock()
        with self._write() as db:
            self._sweep_expired(db, queue, now, force=True)
            visible, in_flight, delayed, oldest = db.execute(
                "SELECT COALESCE(SUM(visible_at <= ?1), 0), "
                "COALESCE(SUM(visible_at > ?1 AND receive_count > 0), 0), "
                "COALESCE(SUM(visible_at > ?1 AND receive_count = 0), 0), MIN(sent_at) "
                "FROM messages WHERE queue = ?2",
                (now, queue),
            ).fetchone()
            expired, dead_lettered = db.execute(
                "SELECT expired, dead_lettered FROM queues WHERE name = ?", (queue,)
            ).fetchone()
            depth = None
            if spec.dead_letter is not None:
                (depth,) = db.execute(
                    "SELECT COUNT(*) FROM messages WHERE queue = ?", (spec.dead_letter,)
                ).fetchone()
        return QueueStats(
            name=queue,
            visible=visible,
            in_flight=in_flight,
            delayed=delayed,
            oldest_age=None if oldest is None else max(0.0, now - oldest),
            dead_letter_depth=depth,
            expired=expired,
            dead_lettered=dead_lettered,
        )
