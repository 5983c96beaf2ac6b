"""Messages: each payload stored once, one `messages` row per delivery, deduplication ids.

A publish and a send both arrive here as publications; `Messages.commit` writes them in one
transaction, which makes a topic's fan-out atomic. A payload counts the deliveries that refer to
it (`refs`) and goes with the last of them, however it goes: deleted, purged or expired (the
schema's `messages_deleted` trigger sees to it).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fanstack.backends.sqlite.catalog import Catalog
from fanstack.backends.sqlite.database import Database, Joinable
from fanstack.core.errors import QueueDoesNotExist
from fanstack.core.fanout import Publication, delivered_body
from fanstack.core.message import (
    ReceivedMessage,
    decode_attributes,
    decode_trace_context,
    encode_attributes,
)
from fanstack.core.queue_rules import log_expired
from fanstack.core.specs import DEDUPLICATION_INTERVAL

# The columns of a leased row, in the order `received_messages` reads them.
COLUMNS = (
    "seq, payload, unsubscribe_url, sent_at, receive_count, first_received_at, group_id, "
    "dedup_id, failure, source_queue, failed_receives, lost_receives"
)
EXPIRE_BATCH = 64  # expired messages deleted at most per write (a short hold)
EXPIRY_INTERVAL = 1.0  # seconds between passes (none while one is behind)

log = logging.getLogger("fanstack.backends.sqlite")

_INSERT = (
    "INSERT INTO messages (queue, payload, unsubscribe_url, sent_at, visible_at, expires_at, "
    "group_id, dedup_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# A row without group or deduplication id (a standard queue's delivery), and one without an
# unsubscribe URL either (of a send or of a raw subscription): their NULLs written in the
# statement. CPython's sqlite3 binds None through its adapter registry, whose miss costs about
# half a microsecond a value, and a bound NULL leaves SQLite to evaluate the partial indexes'
# conditions on every row, which it settles once for a literal: together a third of a row's
# insert. The statement of a row is the one for its number of values.
_INSERTS = {
    8: _INSERT,
    6: "INSERT INTO messages (queue, payload, unsubscribe_url, sent_at, visible_at, expires_at, "
    "group_id, dedup_id) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
    5: "INSERT INTO messages (queue, payload, unsubscribe_url, sent_at, visible_at, expires_at, "
    "group_id, dedup_id) VALUES (?, ?, NULL, ?, ?, ?, NULL, NULL)",
}
_INSERT_PAYLOAD = (
    "INSERT INTO payloads (id, message_id, body, attributes, envelope, refs) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


class Messages:
    """Writes publications (expired deduplication ids go with the `Expirer`'s passes)."""

    def __init__(self, database: Database, catalog: Catalog) -> None:
        self._database = database
        self._catalog = catalog

    def commit(self, publications: Sequence[Publication], now: float) -> list[str]:
        """Store each message once and one row per delivery, all in one transaction (shared
        with other threads' writes of the moment: `Database.grouped`, in one pass with the
        other commits waiting for it)."""
        return self._database.grouped(
            Joinable(self._write, (publications, now)), wakes=_queues(publications)
        )

    def submit(self, publications: Sequence[Publication], now: float) -> asyncio.Future[list[str]]:
        """`commit` for the running event loop: the future resolves once committed."""
        return self._database.submit(
            Joinable(self._write, (publications, now)), wakes=_queues(publications)
        )

    def _write(
        self, db: sqlite3.Connection, calls: list[tuple[Sequence[Publication], float]]
    ) -> list[list[str] | Exception]:
        """Write the publications of several `commit` calls in the open transaction, in one
        pass: each call's message ids, or `QueueDoesNotExist` for a call naming a queue that
        is gone (nothing of that call is written)."""
        queues = self._catalog.current(db).queues
        results: list[list[str] | Exception] = []
        payloads: list[tuple[object, ...]] = []
        rows: list[tuple[object, ...]] = []
        next_payload = next_payload_id(db)
        for publications, now in calls:
            gone = next(
                (d.queue for p in publications for d in p.deliveries if d.queue not in queues),
                None,
            )
            if gone is not None:
                results.append(QueueDoesNotExist(gone))
                continue
            message_ids: list[str] = []
            for publication in publications:
                message = publication.message
                if publication.dedup_key is not None:
                    first = _remember(db, *publication.dedup_key, message.id, now)
                    if first is not None:
                        message_ids.append(first)
                        continue
                message_ids.append(message.id)
                stored = len(rows)
                for delivery in publication.deliveries:
                    spec = queues[delivery.queue]
                    if delivery.deduplication_id is not None and spec.fifo:
                        scope = f"queue:{spec.name}"
                        if _remember(db, scope, delivery.deduplication_id, message.id, now):
                            continue
                    delay = spec.delay if message.delay_seconds is None else message.delay_seconds
                    url, dedup_id = delivery.unsubscribe_url, delivery.deduplication_id
                    row: tuple[object, ...]
                    if message.group_id is not None or dedup_id is not None:
                        row = (
                            spec.name,
                            next_payload,
                            url,
                            now,
                            now + delay,
                            now + spec.retention,
                            message.group_id,
                            dedup_id,
                        )
                    elif url is not None:
                        row = (spec.name, next_payload, url, now, now + delay, now + spec.retention)
                    else:
                        row = (spec.name, next_payload, now, now + delay, now + spec.retention)
                    rows.append(row)
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
            results.append(message_ids)
        db.executemany(_INSERT_PAYLOAD, payloads)
        # In order (rowids are the queues' order): a run of rows of one form in one statement.
        for width, run in itertools.groupby(rows, key=len):
            db.executemany(_INSERTS[width], run)
        add_depths(db, Counter(str(row[0]) for row in rows))
        return results


def next_payload_id(db: sqlite3.Connection) -> int:
    """The id the next payload row written in this transaction takes."""
    (next_id,) = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM payloads").fetchone()
    return int(next_id)


def _queues(publications: Sequence[Publication]) -> set[str]:
    """The queues `publications` write to: whose long polls their commit wakes, no other."""
    return {delivery.queue for publication in publications for delivery in publication.deliveries}


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


def delete_where(db: sqlite3.Connection, condition: str, params: Sequence[object]) -> int:
    """Delete message rows matching `condition` (the `messages_deleted` trigger releases their
    payloads and counts them off their queues); returns the count."""
    deleted: int = db.execute(f"DELETE FROM messages WHERE {condition}", params).rowcount
    return deleted


class Expirer:
    """Deletes messages past their retention on a daemon thread, in short writes of their own,
    so that no send or receive does that work: a pass each EXPIRY_INTERVAL, and pass after
    pass while one finds a full batch (a wave of expiry is deleted as fast as it came). A pass
    with nothing expired costs one read on the expiry index, whatever the number of queues.
    Deduplication ids past their interval go too, every tenth of that interval.
    """

    def __init__(self, database: Database, clock: Callable[[], float]):
        self._database = database
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_dedup_sweep = 0.0

    def start(self) -> None:
        """Start the thread if it is not running (once per process: a forked child starts its
        own on first use)."""
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="fanstack-expiry", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def run_pass(self) -> bool:
        """Expire a batch of what is past its retention; true if there was more than a batch."""
        now = self._clock()
        if now - self._last_dedup_sweep >= DEDUPLICATION_INTERVAL / 10:
            self._last_dedup_sweep = now
            # Looked for first: a write with nothing to delete makes the file's writers wait.
            with self._database.reading() as db:
                due = db.execute("SELECT 1 FROM dedup WHERE expires_at <= ? LIMIT 1", (now,))
                stale = due.fetchone() is not None
            if stale:
                with self._database.write(wakes=False) as writing:
                    writing.execute("DELETE FROM dedup WHERE expires_at <= ?", (now,))
        with self._database.reading() as db:
            due = db.execute(
                "SELECT 1 FROM messages INDEXED BY messages_by_deadline "
                "WHERE expires_at <= ? LIMIT 1",
                (now,),
            ).fetchone()
        if due is None:
            return False
        with self._database.write(wakes=False) as writing:
            return expire(writing, now) == EXPIRE_BATCH

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                behind = self.run_pass()
            except Exception as error:  # the store closed or busy: the next pass tries again
                log.debug("expiry pass failed: %s", error)
                behind = False
            if not behind:
                self._stop.wait(EXPIRY_INTERVAL)


def expire(db: sqlite3.Connection, now: float) -> int:
    """Delete messages past their retention period, those whose period ended first first,
    counting and logging them by queue: at most EXPIRE_BATCH, found on the expiry index
    (nothing that has not expired is read)."""
    gone = db.execute(
        "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages INDEXED BY "
        "messages_by_deadline WHERE expires_at <= ? LIMIT ?) RETURNING queue",
        (now, EXPIRE_BATCH),
    ).fetchall()
    for queue, expired in sorted(Counter(queue for (queue,) in gone).items()):
        db.execute("UPDATE queues SET expired = expired + ? WHERE name = ?", (expired, queue))
        log_expired(log, queue, expired)
    return len(gone)


def add_depths(db: sqlite3.Connection, changes: Mapping[str, int]) -> None:
    """Keep each queue's count of stored messages (`queues.depth`), which `stats` reads instead
    of counting rows: every write that adds, removes or moves messages calls this (one
    statement for every queue it changed)."""
    pairs = [(queue, change) for queue, change in changes.items() if change]
    if not pairs:
        return
    values = ", ".join(["(?, ?)"] * len(pairs))
    db.execute(
        f"UPDATE queues SET depth = depth + changed.column2 FROM (VALUES {values}) AS changed "
        "WHERE queues.name = changed.column1",
        [value for pair in pairs for value in pair],
    )


def received_messages(
    db: sqlite3.Connection, queue: str, rows: list[tuple[Any, ...]], token: str
) -> list[ReceivedMessage]:
    """Join leased rows (`COLUMNS`) with their payloads into received messages, in lease order."""
    return build_received(queue, rows, read_payloads(db, rows), token)


def read_payloads(
    db: sqlite3.Connection, rows: list[tuple[Any, ...]]
) -> dict[int, tuple[Any, ...]]:
    """The payload rows leased rows (`COLUMNS`) refer to, by id (one missing was deleted
    since: a purge, an expiry)."""
    ids = {row[1] for row in rows}
    return {
        payload[0]: payload
        for payload in db.execute(
            "SELECT id, message_id, body, attributes, envelope FROM payloads "
            f"WHERE id IN ({','.join('?' * len(ids))})",
            tuple(ids),
        )
    }


def build_received(
    queue: str, rows: list[tuple[Any, ...]], payloads: Mapping[int, tuple[Any, ...]], token: str
) -> list[ReceivedMessage]:
    """Received messages of leased rows and their payloads, in lease order (no database work:
    a lease builds them after its commit, so other writers wait less)."""
    messages = []
    for row in rows:
        seq, payload, url, sent_at, count, first, group, dedup, failure, source = row[:10]
        _, message_id, body, attributes, envelope = payloads[payload]
        messages.append(
            ReceivedMessage(
                id=message_id,
                body=delivered_body(body, envelope, url),
                message_attributes=decode_attributes(None if url else attributes),
                trace_context=decode_trace_context(attributes),
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
