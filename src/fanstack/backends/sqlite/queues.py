"""Queues: declaration, leases, visibility, deletion, dead-letters, redrive, purge, stats, expiry.

A row of `messages` is *visible* when `visible_at <= now`, *in flight* when received
(`receive_count > 0`) and `visible_at > now`, *delayed* when never received and
`visible_at > now`. A lease sets `visible_at`, `receive_count` and a fresh receipt token in one
write (a single statement, or a `BEGIN IMMEDIATE` transaction where it dead-letters or walks
FIFO groups); the receipt handle is `seq:token`. Dead-lettering and redrive change the row's
`queue` in place.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from fanstack.backends.sqlite.catalog import Catalog
from fanstack.backends.sqlite.database import Database
from fanstack.backends.sqlite.messages import (
    COLUMNS,
    add_depths,
    build_received,
    delete_where,
    next_payload_id,
    read_payloads,
    received_messages,
)
from fanstack.core.errors import (
    FanstackError,
    MessageNotInflight,
    QueueDoesNotExist,
    QueueNameExists,
)
from fanstack.core.message import ReceivedMessage
from fanstack.core.queue_rules import (
    FifoCandidate,
    check_purge_interval,
    dead_letter,
    dead_letter_due,
    fifo_eligible,
    message_gone,
    parse_receipt_handle,
    receipt_handle_expired,
    stale_handle,
    visibility_timeout_error,
)
from fanstack.core.records import Clock, EntryResult, QueueStats, new_message_id
from fanstack.core.specs import QueueSpec

log = logging.getLogger("fanstack.backends.sqlite")

POLL_INTERVAL = 0.02
OLDEST_SCAN = 1000  # rows of the expiry index a queue's stats look at for its oldest message
# The visible messages a standard queue's lease would take next, on the state index. A message
# is never visible before it was sent (or moved here), and retention counts from then: whatever
# became visible longer than the retention period ago has expired. Starting the scan there
# skips, on the index, a wave of expired messages the expiry thread has not deleted yet.
_VISIBLE = (
    "SELECT {} FROM messages INDEXED BY messages_by_state "
    "WHERE queue = ? AND visible_at > ? AND visible_at <= ? AND expires_at > ? "
    "ORDER BY visible_at LIMIT ?"
)
# How many of them there are and how often the most received one was: one row, one step.
_LOOK = f"SELECT COUNT(*), MAX(receive_count) FROM ({_VISIBLE.format('receive_count')})"
# A standard queue's lease when none of them is due for the DLQ: atomic by itself, one call
# into SQLite, one row per message. `receive_count < ?` leaves alone a message that came back
# due meanwhile; the next lease dead-letters it. The payloads are read after it, by id.
_LEASE = (
    "UPDATE messages SET receive_count = receive_count + 1, receipt = ?, visible_at = ?, "
    f"first_received_at = COALESCE(first_received_at, ?) WHERE seq IN ({_VISIBLE.format('seq')}) "
    f"AND receive_count < ? RETURNING {COLUMNS}"
)
_NEVER_DUE = 1 << 62  # the receive count no message reaches (a queue without a DLQ)


class Queues:
    """The queues of one database and the lifecycle of their messages after they are stored."""

    def __init__(self, database: Database, catalog: Catalog) -> None:
        self._database = database
        self._catalog = catalog
        # Standard queues whose last lease here was a full batch: the next one leases at once.
        self._full: set[str] = set()

    # -- declaration ----------------------------------------------------------------------

    def create_queue(self, spec: QueueSpec) -> None:
        """Create a queue; no-op if identical, `QueueNameExists` if it differs."""
        with self._database.write() as db:
            row = db.execute("SELECT spec FROM queues WHERE name = ?", (spec.name,)).fetchone()
            if row is not None:
                if QueueSpec.from_json(row[0]) != spec:
                    raise QueueNameExists(f"queue {spec.name!r} exists with different attributes")
                return
            db.execute("INSERT INTO queues (name, spec) VALUES (?, ?)", (spec.name, spec.to_json()))
            self._catalog.bump(db)

    def set_queue_attributes(self, spec: QueueSpec) -> None:
        """Replace an existing queue's attributes."""
        with self._database.write() as db:
            row = db.execute("SELECT spec FROM queues WHERE name = ?", (spec.name,)).fetchone()
            if row is None:
                raise QueueDoesNotExist(spec.name)
            old = QueueSpec.from_json(row[0])
            if old != spec:
                log.info("queue %s attributes updated: %s -> %s", spec.name, row[0], spec.to_json())
                db.execute("UPDATE queues SET spec = ? WHERE name = ?", (spec.to_json(), spec.name))
                if old.retention != spec.retention:
                    # The new retention period holds for the messages already stored, as SQS
                    # and the NATS backend have it (the next expiry pass deletes what it ends).
                    db.execute(
                        "UPDATE messages SET expires_at = expires_at + ? WHERE queue = ?",
                        (spec.retention - old.retention, spec.name),
                    )
                self._catalog.bump(db)

    def get_queue(self, name: str) -> QueueSpec:
        """The queue's spec, or `QueueDoesNotExist`."""
        spec = self._catalog.current().queues.get(name)
        if spec is None:
            raise QueueDoesNotExist(name)
        return spec

    def list_queues(self) -> list[QueueSpec]:
        """Every queue, sorted by name."""
        return sorted(self._catalog.current().queues.values(), key=lambda spec: spec.name)

    def delete_queue(self, name: str) -> None:
        """Delete the queue, its messages and its subscriptions."""
        with self._database.write() as db:
            if db.execute("DELETE FROM queues WHERE name = ?", (name,)).rowcount == 0:
                raise QueueDoesNotExist(name)
            delete_where(db, "queue = ?", (name,))
            db.execute("DELETE FROM subscriptions WHERE queue = ?", (name,))
            db.execute("DELETE FROM dedup WHERE scope = ?", (f"queue:{name}",))
            self._catalog.bump(db)

    # -- receiving ------------------------------------------------------------------------

    def lease(
        self, queue: QueueSpec, max_messages: int, visibility_timeout: int, now: float
    ) -> list[ReceivedMessage]:
        """Hide up to `max_messages` visible messages; dead-letter those received too often.

        A standard queue is looked at first, on a read: with nothing to lease, the writer's
        turn is not taken (the runtime's pollers ask often, and an empty write would make
        every writer of the file wait for nothing); with nothing due for the DLQ, the lease is
        one statement. After a full batch the queue is not looked at: the lease leaves out
        any message due for the DLQ, and a batch that falls short is made up by a lease that
        looks (and dead-letters it). A FIFO queue's candidates are a walk of its groups, made
        once, in the transaction.
        """
        token = secrets.token_hex(8)
        if not queue.fifo:
            window = (queue.name, now - queue.retention, now, now, max_messages)
            # (A visibility timeout of 0 leaves the batch visible: a lease to make it up
            # could take its messages again.)
            if queue.name in self._full and visibility_timeout > 0:
                batch = self._lease_visible(queue, window, visibility_timeout, now, token)
                if len(batch) == max_messages:
                    return batch
                # Short: the queue ran low, or a message it left out is due for the DLQ.
                self._full.discard(queue.name)
                try:
                    rest = self.lease(queue, max_messages - len(batch), visibility_timeout, now)
                except FanstackError as error:  # what is leased already is handed out
                    log.warning(
                        "receive: a lease after a short batch failed",
                        extra={"queue": queue.name, "error": str(error)},
                    )
                    return batch
                return batch + rest
            with self._database.reading() as db:
                count, most = db.execute(_LOOK, window).fetchone()
            if not count:
                return []
            if not dead_letter_due(queue, most):
                batch = self._lease_visible(queue, window, visibility_timeout, now, token)
                if len(batch) == max_messages:
                    self._full.add(queue.name)
                return batch
        dead_lettered = False
        with self._database.write(wakes=False) as db:
            leased: list[tuple[Any, ...]] = []
            taken: set[int] = set()  # leased by this call (with a timeout of 0, still visible)
            while len(leased) < max_messages:
                wanted = max_messages - len(leased)
                candidates = [
                    candidate
                    for candidate in self._candidates(db, queue, now, wanted + len(taken))
                    if candidate[0] not in taken
                ][:wanted]
                if not candidates:
                    break
                to_lease = []
                for seq, receive_count in candidates:
                    if dead_letter_due(queue, receive_count):
                        self._dead_letter(db, queue, seq, now)
                        dead_lettered = True
                    else:
                        to_lease.append(seq)
                if to_lease:
                    leased.extend(_mark_received(db, to_lease, now, visibility_timeout, token))
                    taken.update(to_lease)
                if len(to_lease) == len(candidates):
                    break
            payloads = read_payloads(db, leased) if leased else {}
        received = build_received(queue.name, leased, payloads, token)
        if dead_lettered:  # the dead-letter queue got messages: its long polls may take them
            self._database.wake([queue.dead_letter] if queue.dead_letter else None)
        return received

    def _lease_visible(
        self,
        queue: QueueSpec,
        window: tuple[object, ...],
        visibility_timeout: int,
        now: float,
        token: str,
    ) -> list[ReceivedMessage]:
        """Lease a standard queue's next visible messages in one statement (`_LEASE`), in
        the order they were stored (SQS promises standard queues no order).

        Their payloads are read after the commit, by id, with no writer waiting on the read.
        Only this call's receipt handle (nobody else has it yet), a purge, an expiry or the
        queue's deletion can delete a leased message meanwhile: one whose payload went with
        it is not handed out; one whose payload other queues' deliveries keep is, as a
        receive at the moment of a purge may hand out a message in SQS.
        """
        due = _NEVER_DUE if queue.max_receive_count is None else queue.max_receive_count
        rows: list[tuple[Any, ...]] = self._database.write_statement(
            _LEASE, (token, now + visibility_timeout, now, *window, due), wakes=False
        )
        if not rows:
            return []
        rows.sort(key=lambda row: int(row[0]))
        with self._database.reading() as db:
            payloads = read_payloads(db, rows)
        kept = [row for row in rows if row[1] in payloads]
        return build_received(queue.name, kept, payloads, token)

    @staticmethod
    def _candidates(
        db: sqlite3.Connection, queue: QueueSpec, now: float, limit: int
    ) -> list[tuple[int, int]]:
        if not queue.fifo:
            return db.execute(
                _VISIBLE.format("seq, receive_count"),
                (queue.name, now - queue.retention, now, now, limit),
            ).fetchall()
        # FIFO: walk the queue in order; a group whose earliest message is hidden is blocked.
        rows = db.execute(
            "SELECT seq, receive_count, group_id, visible_at FROM messages "
            "INDEXED BY messages_by_group WHERE queue = ? AND group_id IS NOT NULL "
            "AND expires_at > ? ORDER BY seq",
            (queue.name, now),
        )
        counts: dict[int, int] = {}

        def candidates() -> Iterator[FifoCandidate]:
            for seq, receive_count, group_id, visible_at in rows:
                counts[seq] = receive_count
                yield FifoCandidate((seq,), group_id, visible=visible_at <= now)

        picked = itertools.islice(fifo_eligible(candidates()), limit)
        return [(c.position[0], counts[c.position[0]]) for c in picked]

    def _dead_letter(self, db: sqlite3.Connection, queue: QueueSpec, seq: int, now: float) -> None:
        assert queue.dead_letter is not None
        target = self._catalog.current(db).queues.get(queue.dead_letter)
        if target is None:
            raise QueueDoesNotExist(queue.dead_letter)
        failure, receive_count, failed_receives = db.execute(
            "SELECT failure, receive_count, failed_receives FROM messages WHERE seq = ?", (seq,)
        ).fetchone()
        letter = dead_letter(
            failure=failure, receive_count=receive_count, failed_receives=failed_receives
        )
        # The receive count and first receive time move along, as in SQS. A new sequence puts
        # it after everything already in the DLQ: redrive takes dead letters in arrival order.
        db.execute(
            "UPDATE messages SET seq = (SELECT MAX(seq) + 1 FROM messages), queue = ?, "
            "source_queue = ?, receipt = NULL, visible_at = ?, "
            "expires_at = sent_at + ?, failure = ?, lost_receives = ? WHERE seq = ?",
            (
                target.name,
                queue.name,
                now,
                target.retention,
                letter.failure,
                letter.lost_receives,
                seq,
            ),
        )
        db.execute(
            "UPDATE queues SET dead_lettered = dead_lettered + 1 WHERE name = ?", (queue.name,)
        )
        add_depths(db, {queue.name: -1, target.name: 1})

    def wait(self, queue: str, timeout: float, clock: Clock) -> None:
        """Sleep until the queue may have a message to lease: a commit (here or in another
        process) after which a read finds a candidate, or the time a hidden message shows.

        Commits of other queues and of other receivers come all the time when several
        processes share the file; a receive that leased after each of them would take the
        writer's turn for nothing. So a commit wakes this wait only if the lease's own
        candidate query (`_candidates`, read-only) finds something now.
        """
        spec = self.get_queue(queue)
        deadline = time.monotonic() + timeout
        mark = self._database.wake_mark(queue)
        with self._database.reading() as db:
            (version,) = db.execute("PRAGMA data_version").fetchone()
            # What was committed between the caller's empty lease and the mark above woke
            # nobody: look once, so a poll never sleeps past a message that is already there.
            if self._candidates(db, spec, clock(), 1):
                return
            next_visible = _next_visible(db, queue, clock())
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            woken = self._database.wait_for_wake(queue, mark, min(remaining, POLL_INTERVAL))
            seen = self._database.wake_mark(queue)
            with self._database.reading() as db:
                # Changes only with other processes' commits: this process's wake instead.
                (current,) = db.execute("PRAGMA data_version").fetchone()
                if woken or current != version:
                    if self._candidates(db, spec, clock(), 1):
                        return
                    mark, version = seen, current
                    next_visible = _next_visible(db, queue, clock())
                    continue
            if next_visible is not None and clock() >= next_visible:
                return

    # -- settling -------------------------------------------------------------------------

    def delete_messages(
        self, queue: str, receipt_handles: Sequence[str], now: float
    ) -> list[EntryResult]:
        """Delete by receipt handle; stale handles fail, and on a FIFO queue expired ones."""
        parsed = [parse_receipt_handle(handle) for handle in receipt_handles]
        valid = [entry for entry in parsed if not isinstance(entry, FanstackError)]
        spec = self._catalog.current().queues.get(queue)
        expiring = spec is not None and spec.fifo
        deleted = 0
        if valid:
            marks = ",".join("?" * len(valid))
            cases = " ".join("WHEN ? THEN ?" for _ in valid)
            # One statement (the schema's trigger releases payloads and counts depth). A
            # delete makes nothing visible, except the next message of a FIFO group.
            deleted = self._database.write_count(
                f"DELETE FROM messages WHERE seq IN ({marks}) AND +queue = ? "
                f"AND receipt = CASE seq {cases} END AND (NOT ? OR visible_at > ?)",
                (
                    *(seq for seq, _ in valid),
                    queue,
                    *(part for entry in valid for part in entry),
                    expiring,
                    now,
                ),
                wakes=[queue] if expiring else False,
            )
        if deleted == len(valid):
            return [entry if isinstance(entry, FanstackError) else None for entry in parsed]
        # Some handle deleted nothing: what is stored now says why. A message that is gone
        # was deleted (by this call or before it), which succeeds, as in SQS.
        with self._database.reading() as db:
            return [
                entry
                if isinstance(entry, FanstackError)
                else _why_not(db, queue, *entry, deleting=True)
                for entry in parsed
            ]

    def set_visibility(
        self,
        queue: str,
        changes: Sequence[tuple[str, int]],
        failure: str | None,
        now: float,
        *,
        uncount: bool,
    ) -> list[EntryResult]:
        """Change visibility by the latest receipt handles, keeping `failure` for a dead-letter."""
        results: list[EntryResult] = []
        with self._database.write() as db:
            spec = self._catalog.current(db).queues.get(queue)
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
                results.append(None if changed else _why_not(db, queue, seq, token))
        return results

    # -- maintenance ----------------------------------------------------------------------

    def purge(self, queue: str, now: float) -> None:
        """Delete every message of the queue, at most once per 60 seconds."""
        with self._database.write() as db:
            row = db.execute("SELECT last_purge FROM queues WHERE name = ?", (queue,)).fetchone()
            if row is None:
                raise QueueDoesNotExist(queue)
            check_purge_interval(queue, row[0], now)
            delete_where(db, "queue = ?", (queue,))
            db.execute("UPDATE queues SET last_purge = ? WHERE name = ?", (now, queue))

    def move_dead_letters(self, source: QueueSpec, limit: int, now: float) -> int:
        """Move up to `limit` visible messages dead-lettered from `source` back to it, in the
        order they went into the DLQ (their sequence, renewed when they moved there).

        As SQS's redrive does, each comes back as a new message: a new message id, sent (and
        kept for the source's retention) from now, never received, and after everything stored
        before it (a new sequence: a FIFO group's messages sent meanwhile come first). Its
        body, attributes and SNS envelope are copied to a payload of its own (a topic message's
        payload is shared with its other queues' copies, which keep their id)."""
        assert source.dead_letter is not None
        with self._database.write() as db:
            moving = db.execute(
                "SELECT seq, payload FROM messages WHERE queue = ? AND source_queue = ? "
                "AND visible_at <= ? ORDER BY seq LIMIT ?",
                (source.dead_letter, source.name, now, limit),
            ).fetchall()
            if not moving:
                return 0
            first = next_payload_id(db)
            copies = [(first + n, new_message_id(), old) for n, (_seq, old) in enumerate(moving)]
            db.executemany(
                "INSERT INTO payloads (id, message_id, body, attributes, envelope, refs) "
                "SELECT ?, ?, body, attributes, envelope, 1 FROM payloads WHERE id = ?",
                copies,
            )
            db.executemany(
                "UPDATE payloads SET refs = refs - 1 WHERE id = ?", [(old,) for _s, old in moving]
            )
            db.executemany(
                "DELETE FROM payloads WHERE id = ? AND refs <= 0", [(old,) for _s, old in moving]
            )
            db.executemany(
                "UPDATE messages SET seq = (SELECT MAX(seq) + 1 FROM messages), queue = ?, "
                "payload = ?, source_queue = NULL, receive_count = 0, receipt = NULL, "
                "first_received_at = NULL, failure = NULL, failed_receives = 0, "
                "lost_receives = NULL, sent_at = ?, visible_at = ?, expires_at = ? WHERE seq = ?",
                [
                    (source.name, payload, now, now, now + source.retention, seq)
                    for (seq, _old), (payload, _id, _o) in zip(moving, copies, strict=True)
                ],
            )
            moved = len(moving)
            add_depths(db, {source.dead_letter: -moved, source.name: moved})
            return moved

    def peek(self, queue: str, limit: int, now: float) -> list[ReceivedMessage]:
        """Up to `limit` live messages of the queue in stored order (a dead letter's order is
        its arrival in the DLQ), read in one snapshot: nothing is written, so no receive
        count, visibility or receipt changes. The receipt handles are empty."""
        self.get_queue(queue)
        with self._database.reading() as db:
            db.execute("BEGIN")  # the rows and their payloads from one snapshot
            try:
                rows = db.execute(
                    f"SELECT {COLUMNS} FROM messages WHERE queue = ? AND expires_at > ? "
                    "ORDER BY seq LIMIT ?",
                    (queue, now, limit),
                ).fetchall()
                messages = received_messages(db, queue, rows, "") if rows else []
            finally:
                db.execute("COMMIT")
        return [replace(message, receipt_handle="") for message in messages]

    def stats(self, queue: str, now: float) -> QueueStats:
        """Depths of the queue, read without a write and without a scan of the backlog.

        The stored count is kept by every write (`queues.depth`); what is hidden (in flight or
        delayed) and what has expired but not been deleted yet are counted on their indexes,
        so the work grows with those, never with the visible backlog. The oldest age is that
        of the message whose retention ends first (`_oldest`).
        """
        spec = self.get_queue(queue)
        with self._database.reading() as db:
            db.execute("BEGIN")  # one snapshot for all the reads
            try:
                stored, expired, dead_lettered = db.execute(
                    "SELECT depth, expired, dead_lettered FROM queues WHERE name = ?", (queue,)
                ).fetchone()
                hidden = _hidden(db, queue, now)
                gone = _expired(db, queue, now)
                oldest = _oldest(db, queue, now) if stored > sum(gone) else None
                depth = None
                if spec.dead_letter is not None:
                    row = db.execute(
                        "SELECT depth FROM queues WHERE name = ?", (spec.dead_letter,)
                    ).fetchone()
                    if row is not None:
                        depth = row[0] - sum(_expired(db, spec.dead_letter, now))
            finally:
                db.execute("COMMIT")
        in_flight = hidden[0] - gone[0]
        delayed = hidden[1] - gone[1]
        visible = stored - sum(hidden) - gone[2]
        return QueueStats(
            name=queue,
            visible=visible,
            in_flight=in_flight,
            delayed=delayed,
            oldest_age=None if oldest is None else max(0.0, now - oldest),
            dead_letter_depth=depth,
            expired=expired + sum(gone),
            dead_lettered=dead_lettered,
        )


def _next_visible(db: sqlite3.Connection, queue: str, now: float) -> float | None:
    """When the queue's next hidden message (in flight or delayed) becomes visible."""
    (found,) = db.execute(
        "SELECT MIN(visible_at) FROM messages WHERE queue = ? AND visible_at > ?", (queue, now)
    ).fetchone()
    return None if found is None else float(found)


def _hidden(db: sqlite3.Connection, queue: str, now: float) -> tuple[int, int]:
    """(in flight, delayed) counted on the state index: what is not visible at `now`."""
    counts = dict(
        db.execute(
            "SELECT receive_count > 0, COUNT(*) FROM messages INDEXED BY messages_by_state "
            "WHERE queue = ? AND visible_at > ? GROUP BY 1",
            (queue, now),
        ).fetchall()
    )
    return counts.get(1, 0), counts.get(0, 0)


def _oldest(db: sqlite3.Connection, queue: str, now: float) -> float | None:
    """When the queue's oldest live message was sent: the queue's first row on the expiry index
    (every message of a queue has the queue's retention, so the oldest ends first).

    That index holds every queue: at most OLDEST_SCAN of its rows are looked at, in one step.
    Past them (more than that many of other queues' messages end sooner), the oldest is the
    older of the first visible message and the oldest hidden one (in flight or delayed): a
    message received before and visible again may be passed over for a younger one that was
    never received, and the hidden ones are read one by one.
    """
    row = db.execute(
        "SELECT sent_at FROM (SELECT queue, sent_at FROM messages INDEXED BY "
        "messages_by_deadline WHERE expires_at > ? ORDER BY expires_at LIMIT ?) "
        "WHERE queue = ? LIMIT 1",
        (now, OLDEST_SCAN, queue),
    ).fetchone()
    if row is not None:
        return float(row[0])
    (visible,) = db.execute(
        "SELECT sent_at FROM messages INDEXED BY messages_by_state WHERE queue = ? "
        "AND visible_at <= ? AND expires_at > ? ORDER BY visible_at LIMIT 1",
        (queue, now, now),
    ).fetchone() or (None,)
    (hidden,) = db.execute(
        "SELECT MIN(sent_at) FROM messages INDEXED BY messages_by_state WHERE queue = ? "
        "AND visible_at > ? AND expires_at > ?",
        (queue, now, now),
    ).fetchone()
    found = [float(at) for at in (visible, hidden) if at is not None]
    return min(found) if found else None


def _expired(db: sqlite3.Connection, queue: str, now: float) -> tuple[int, int, int]:
    """(in flight, delayed, visible) of the messages past retention that are not deleted yet
    (the expiry thread's next pass deletes them), counted on the expiry index: the work grows
    with what has expired in every queue and is not deleted yet (a pass's worth, normally)."""
    in_flight = delayed = visible = 0
    for hidden, received, count in db.execute(
        "SELECT visible_at > ?1, receive_count > 0, COUNT(*) FROM messages "
        "INDEXED BY messages_by_deadline WHERE expires_at <= ?1 AND queue = ?2 GROUP BY 1, 2",
        (now, queue),
    ):
        if not hidden:
            visible += count
        elif received:
            in_flight += count
        else:
            delayed += count
    return in_flight, delayed, visible


def _mark_received(
    db: sqlite3.Connection, seqs: list[int], now: float, timeout: int, token: str
) -> list[tuple[Any, ...]]:
    marks = ",".join("?" * len(seqs))
    rows = db.execute(
        "UPDATE messages SET receive_count = receive_count + 1, receipt = ?, visible_at = ?, "
        f"first_received_at = COALESCE(first_received_at, ?) WHERE seq IN ({marks}) "
        f"RETURNING {COLUMNS}",
        (token, now + timeout, now, *seqs),
    ).fetchall()
    order = {seq: index for index, seq in enumerate(seqs)}
    rows.sort(key=lambda row: order[row[0]])
    return rows


def _why_not(
    db: sqlite3.Connection, queue: str, seq: int, token: str, deleting: bool = False
) -> FanstackError | None:
    """Why a receipt handle changed nothing: gone, stale, expired, or not in flight."""
    row = db.execute("SELECT queue, receipt FROM messages WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        if deleting:
            return None  # already deleted: DeleteMessage is idempotent, as in SQS
        return message_gone(f"{seq}:{token}")
    if row[0] != queue or row[1] != token:
        return stale_handle(f"{seq}:{token}")
    # The handle is the latest one, so its FIFO queue refused it for running out of time.
    if deleting:
        return receipt_handle_expired(f"{seq}:{token}")
    return MessageNotInflight(f"message {seq} of queue {queue!r} is not in flight")
