"""The embedded backend: one SQLite database file in the data dir, safe for many processes.

Mapping onto the engine (the schema is in `schema.py`):

- `queues`, `topics`, `subscriptions` hold the specs as JSON; `catalog.version` is bumped on every
  change so each connection reloads its cached specs and compiled routes only when needed
  (`catalog.py`; topics and subscriptions in `topics.py`).
- `payloads` holds each published or sent message once (id, body, attributes and, for enveloped
  deliveries, the SNS envelope without its per-subscription `UnsubscribeURL`), with a count of
  the deliveries that refer to it; the last delivery deleted (or expired, or purged) deletes it.
  A 1 KB event fanned out to five queues is thus written once, not five times (`messages.py`).
- `messages` holds one row per delivery to a queue (small: no body). A message is *visible* when
  `visible_at <= now`; *in flight* when received (`receive_count > 0`) and `visible_at > now`;
  *delayed* when never received and `visible_at > now`. A receive is one `BEGIN IMMEDIATE`
  transaction that picks candidates and sets `visible_at`, `receive_count` and a fresh receipt
  token; the receipt handle is `seq:token`, so a handle goes stale when the message is received
  again (on a FIFO queue, when its visibility timeout runs out). Dead-lettering and redrive change
  the row's `queue` in place (`queues.py`).
- `dedup` remembers deduplication ids per scope (`queue:NAME` or `topic:NAME`) for 5 minutes.
- `items` holds table items, one row per (table, key) with a version and an expiry (`tables.py`).
- WAL journal; `synchronous=NORMAL` survives a killed process, `durability="fsync"` selects FULL
  for power loss. A topic publish inserts all its deliveries in one transaction (atomic fan-out).
  Each thread has its own connection; this process's writers take turns (`database.py`).
- Long polling waits on an in-process condition (same process) and polls `PRAGMA data_version`
  (other processes), waking when a commit lands or the next hidden message becomes visible.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from fanstack.backends.base import Backend
from fanstack.backends.sqlite import schema
from fanstack.backends.sqlite.catalog import Catalog
from fanstack.backends.sqlite.database import Database
from fanstack.backends.sqlite.messages import Expirer, Messages
from fanstack.backends.sqlite.queues import Queues
from fanstack.backends.sqlite.tables import Tables
from fanstack.backends.sqlite.topics import Topics
from fanstack.core.errors import InvalidParameterValue
from fanstack.core.fanout import Publication, Route
from fanstack.core.message import ReceivedMessage
from fanstack.core.records import Clock, EntryResult, QueueStats
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec
from fanstack.core.tables import TableItem

__all__ = ["BUSY_TIMEOUT_MS", "DATABASE_FILE", "SQLiteBackend"]

DATABASE_FILE = "fanstack.db"
BUSY_TIMEOUT_MS = 30_000


class SQLiteBackend(Backend):
    """SNS/SQS semantics on one SQLite file (WAL), shared safely by threads and processes."""

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
        self._database = Database(
            self.path,
            synchronous="FULL" if durability == "fsync" else "NORMAL",
            busy_timeout_ms=busy_timeout_ms,
        )
        with self._database.reading() as db:
            schema.create(db)
        with self._database.write() as db:
            schema.upgrade(db)
        catalog = Catalog(self._database)
        self._queues = Queues(self._database, catalog)
        self._topics = Topics(self._database, catalog)
        self._messages = Messages(self._database, catalog)
        self._expirer = Expirer(self._database, lambda: self.clock())
        self._tables = Tables(self._database)

    def calls_are_local(self) -> bool:
        """True: the store is a file on this machine."""
        return True

    def writes_at_once(self) -> bool:
        """No flush per commit (durability "normal") and no other thread of this process
        writing or waiting to: a write now waits at most for another process's transaction."""
        return not self._database.flushes and self._database.idle()

    @property
    def url(self) -> str:
        """`sqlite://` + the data dir, with this busy timeout."""
        return f"sqlite://{self.data_dir.resolve()}?busy_timeout_ms={self.busy_timeout_ms}"

    def close(self) -> None:
        """Stop deleting what expires and close every connection this backend opened."""
        self._expirer.stop()
        self._database.close()

    # -- queues ---------------------------------------------------------------------------

    def create_queue(self, spec: QueueSpec) -> None:
        """Create a queue; no-op if identical, `QueueNameExists` if it differs."""
        self._queues.create_queue(spec)

    def set_queue_attributes(self, spec: QueueSpec) -> None:
        """Replace an existing queue's attributes."""
        self._queues.set_queue_attributes(spec)

    def get_queue(self, name: str) -> QueueSpec:
        """The queue's spec, or `QueueDoesNotExist`."""
        return self._queues.get_queue(name)

    def list_queues(self) -> list[QueueSpec]:
        """Every queue, sorted by name."""
        return self._queues.list_queues()

    def delete_queue(self, name: str) -> None:
        """Delete the queue, its messages and its subscriptions."""
        self._queues.delete_queue(name)

    # -- topics and subscriptions ---------------------------------------------------------

    def create_topic(self, spec: TopicSpec) -> None:
        """Create or replace a topic."""
        self._topics.create_topic(spec)

    def get_topic(self, name: str) -> TopicSpec:
        """The topic's spec, or `TopicDoesNotExist`."""
        return self._topics.get_topic(name)

    def list_topics(self) -> list[TopicSpec]:
        """Every topic, sorted by name."""
        return self._topics.list_topics()

    def delete_topic(self, name: str) -> None:
        """Delete the topic and its subscriptions."""
        self._topics.delete_topic(name)

    def put_subscription(self, spec: SubscriptionSpec) -> None:
        """Create or replace the subscription of a queue to a topic."""
        self._topics.put_subscription(spec)

    def delete_subscription(self, topic: str, queue: str) -> None:
        """Remove a subscription if present."""
        self._topics.delete_subscription(topic, queue)

    def list_subscriptions(self, topic: str | None = None) -> list[SubscriptionSpec]:
        """Subscriptions of one topic, or all."""
        return self._topics.list_subscriptions(topic)

    def routes(self, topic: str) -> list[Route]:
        """Compiled subscriptions of the topic, cached per catalog version."""
        return self._topics.routes(topic)

    # -- messages -------------------------------------------------------------------------

    def commit(self, publications: Sequence[Publication]) -> list[str]:
        """Store each message once and one row per delivery, all in one transaction."""
        self._expirer.start()
        return self._messages.commit(publications, self.clock())

    async def commit_async(self, publications: Sequence[Publication]) -> list[str]:
        """`commit` from an event loop: in the next transaction the process's writers share."""
        self._expirer.start()
        return await self._messages.submit(publications, self.clock())

    def lease(
        self, queue: QueueSpec, max_messages: int, visibility_timeout: int
    ) -> list[ReceivedMessage]:
        """Hide up to `max_messages` visible messages; dead-letter those received too often."""
        self._expirer.start()
        return self._queues.lease(queue, max_messages, visibility_timeout, self.clock())

    def wait(self, queue: str, timeout: float) -> None:
        """Sleep until a commit lands (here or in another process) or a hidden message shows."""
        self._queues.wait(queue, timeout, self.clock)

    def delete_messages(self, queue: str, receipt_handles: Sequence[str]) -> list[EntryResult]:
        """Delete by receipt handle; stale handles fail, and on a FIFO queue expired ones."""
        return self._queues.delete_messages(queue, receipt_handles, self.clock())

    def set_visibility(
        self,
        queue: str,
        changes: Sequence[tuple[str, int]],
        failure: str | None = None,
        *,
        uncount: bool = False,
    ) -> list[EntryResult]:
        """Change visibility by the latest receipt handles, keeping `failure` for a dead-letter."""
        return self._queues.set_visibility(queue, changes, failure, self.clock(), uncount=uncount)

    def purge(self, queue: str) -> None:
        """Delete every message of the queue, at most once per 60 seconds."""
        self._queues.purge(queue, self.clock())

    def peek(self, queue: str, limit: int) -> list[ReceivedMessage]:
        """The queue's first `limit` live messages in stored order, read without a write."""
        return self._queues.peek(queue, limit, self.clock())

    def move_dead_letters(self, source: QueueSpec, limit: int) -> int:
        """Move up to `limit` visible messages dead-lettered from `source` back to it."""
        return self._queues.move_dead_letters(source, limit, self.clock())

    def stats(self, queue: str) -> QueueStats:
        """Depths of the queue, after sweeping expired messages."""
        return self._queues.stats(queue, self.clock())

    # -- tables ---------------------------------------------------------------------------

    def get_item(self, table: str, key: str) -> TableItem | None:
        """The live item, read without a write lock."""
        return self._tables.get_item(table, key, self.clock())

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
        return self._tables.put_item(
            table, key, value, expires_at, self.clock(), if_absent=if_absent, if_version=if_version
        )

    def delete_item(self, table: str, key: str, *, if_version: int | None) -> bool:
        """Delete the live item, conditionally, in one transaction."""
        return self._tables.delete_item(table, key, self.clock(), if_version=if_version)

    def scan_items(
        self, table: str, prefix: str, limit: int, start_after: str = ""
    ) -> list[TableItem]:
        """Live items in key order under `prefix`, after `start_after`."""
        return self._tables.scan_items(table, prefix, limit, self.clock(), start_after)
