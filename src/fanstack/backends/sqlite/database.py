"""Connections to the database file: one per thread, one writer at a time, commit notices."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from fanstack.backends.sqlite.schema import connect
from fanstack.core.errors import BackendUnavailable

T = TypeVar("T")
# Whose long polls a commit wakes: every queue's (True), none (False), or these queues'.
Wakes = bool | Collection[str]

# The interpreter's switch interval in a process with an embedded store open (shortened, never
# lengthened). A writer holds the write turn across each call into SQLite, and coming back from
# one it waits for the GIL, which a thread running Python keeps up to the switch interval: at
# Python's default of 5 ms every other writer of the process waited that long behind it.
SWITCH_INTERVAL = 0.001
# A process that writes checkpoints the WAL into the database file on a thread of its own, this
# often, so that no write waits for it; a writer does it itself only past
# `schema.CHECKPOINT_PAGES` (the thread fell behind), where SQLite's default of 1,000 pages made
# one commit in every few dozen copy 4 MB while holding every other writer of the file.
CHECKPOINT_INTERVAL = 0.05


class Database:
    """One SQLite file as this process uses it: a connection per thread and write transactions.

    Each commit made here that may have made a message visible wakes the long polls of the
    queues it wrote to (`wake`, `wait_for_wake`), and only those: a process serving many
    queues, most of them idle, would otherwise wake every poll at every commit. Commits of
    other processes show in `PRAGMA data_version` instead.

    Writers of every process queue on an advisory lock on `<file>-writer` (`flock`) before
    `BEGIN IMMEDIATE`: the kernel wakes the next waiter the moment the lock is let go, where
    SQLite's busy handler would sleep 1, 2, 5 ... 100 ms between tries and leave the file idle.
    A process that dies holding it lets it go with its descriptors. Writers that do not take
    it (another tool on the file) are still waited for by the busy handler.
    """

    def __init__(self, path: Path, *, synchronous: str, busy_timeout_ms: int) -> None:
        self.path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._writer = threading.Lock()
        self._wake_lock = threading.Lock()
        self._generation = 0  # wakes so far, of any queue's polls
        self._woken_all = 0  # wakes of every queue's polls
        self._woken: dict[str, int] = {}  # wakes of one queue's polls
        self._sleepers: dict[str, threading.Condition] = {}  # one queue's waiting polls
        self._group = threading.Condition()
        self._waiting: list[_Work] = []
        self._running = False
        self._queue_fd: int | None = None
        self._queue_pid = 0  # a forked child opens its own: a shared descriptor shares the lock
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self._wrote = False  # since the last checkpoint (set after commits, read by the thread)
        self._checkpointer: threading.Thread | None = None
        self._checkpointer_pid = 0
        self._closing = threading.Event()
        self._starting = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = connect(
                self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
            )
            self._local.db = db
            self._connections.append(db)
        return db

    @contextmanager
    def write(self, *, wakes: Wakes = True) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction: committed on success, rolled back on error.

        Threads of this process take turns on a lock first: SQLite's own busy handler sleeps
        in growing steps, so threads contending on it would idle while the database is free.
        A write that changed rows wakes this process's long polls: those of the queues in
        `wakes`, every queue's if it is True, none if it cannot have made a message visible
        (`wakes=False`: a lease, a delete; `wake()` says so when it did).
        """
        db = self.connection()
        with self._writer, self._turn():
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise BackendUnavailable(f"cannot write to {self.path}: {exc}") from exc
            before = db.total_changes
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            changed = db.total_changes != before
        if changed:
            self._written()
            if wakes:
                self.wake(None if wakes is True else wakes)

    def _written(self) -> None:
        """A commit changed the file: the checkpoint thread has work (started on first use, in
        this process: a forked child starts its own)."""
        self._wrote = True
        if self._checkpointer_pid == os.getpid():
            return
        with self._starting:
            if self._checkpointer_pid != os.getpid():
                self._closing.clear()
                self._checkpointer = threading.Thread(
                    target=self._checkpoints, name="fanstack-checkpoint", daemon=True
                )
                self._checkpointer.start()
                self._checkpointer_pid = os.getpid()

    def _checkpoints(self) -> None:
        """Copy committed pages from the WAL into the file, passively (never waiting for
        readers or writers, who go on meanwhile), every CHECKPOINT_INTERVAL after a write."""
        try:
            db = connect(
                self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
            )
        except BackendUnavailable:
            return  # the writers checkpoint themselves, past schema.CHECKPOINT_PAGES
        try:
            while not self._closing.wait(CHECKPOINT_INTERVAL):
                if self._wrote:
                    self._wrote = False
                    try:
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    except sqlite3.Error:
                        self._wrote = True  # try again next time
        finally:
            db.close()

    @property
    def flushes(self) -> bool:
        """Whether every commit is flushed to disk (`synchronous=FULL`: durability "fsync")."""
        return self._synchronous == "FULL"

    def idle(self) -> bool:
        """Whether no thread of this process is writing or waiting to (a hint: it may change
        the moment after)."""
        return not (self._writer.locked() or self._running or self._waiting)

    def wake(self, queues: Collection[str] | None = None) -> None:
        """Wake this process's long polls of `queues` (None: of every queue): a committed
        write may have made messages visible there."""
        with self._wake_lock:
            self._generation += 1
            if queues is None:
                self._woken_all += 1
                for sleepers in self._sleepers.values():
                    sleepers.notify_all()
                return
            for queue in queues:
                self._woken[queue] = self._woken.get(queue, 0) + 1
                waiting = self._sleepers.get(queue)
                if waiting is not None:
                    waiting.notify_all()

    def write_statement(
        self, sql: str, parameters: tuple[object, ...], *, wakes: Wakes = True
    ) -> list[tuple[object, ...]]:
        """One statement as its own transaction (autocommit); the rows it returns.

        A single statement is atomic by itself: without BEGIN and COMMIT around it, the writer
        lock is held across one call into SQLite instead of three, and every call releases the
        GIL, which busy threads then hold for up to a switch interval before it comes back.
        """
        return self._statement(sql, parameters, wakes)[0]

    def write_count(self, sql: str, parameters: tuple[object, ...], *, wakes: Wakes = True) -> int:
        """One statement as its own transaction, as `write_statement`; the rows it changed
        (those of its table: not what its triggers did)."""
        return self._statement(sql, parameters, wakes)[1]

    def _statement(
        self, sql: str, parameters: tuple[object, ...], wakes: Wakes
    ) -> tuple[list[tuple[object, ...]], int]:
        db = self.connection()
        with self._writer, self._turn():
            before = db.total_changes
            try:
                cursor = db.execute(sql, parameters)
                rows = cursor.fetchall()
            except sqlite3.OperationalError as exc:
                raise BackendUnavailable(f"cannot write to {self.path}: {exc}") from exc
            changed = db.total_changes != before
        if changed:
            self._written()
            if wakes:
                self.wake(None if wakes is True else wakes)
        return rows, cursor.rowcount

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """This process's turn among the file's writers (called under `_writer`)."""
        if self._queue_fd is None or self._queue_pid != os.getpid():
            self._queue_pid = os.getpid()
            try:
                self._queue_fd = os.open(f"{self.path}-writer", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise BackendUnavailable(f"cannot write to {self.path}: {exc}") from exc
        fcntl.flock(self._queue_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._queue_fd, fcntl.LOCK_UN)

    def grouped(self, work: Callable[[sqlite3.Connection], T], *, wakes: Wakes = True) -> T:
        """Run `work` in a write transaction shared with the other threads' at that moment.

        Writes asked for at once by several threads (a server's concurrent sends and
        publishes) go in one transaction: the first caller runs everything waiting,
        each in a savepoint of its own (one that fails is rolled back alone and raises in its
        caller), and every caller returns once that transaction has committed: durable, as
        alone. `work` must use the connection it is given (the runner's, not its caller's).
        The shared commit wakes the long polls every caller's `wakes` names (as `write`).
        """
        mine = _Work(work, wakes)
        with self._group:
            self._waiting.append(mine)
            while not mine.done and self._running:
                self._group.wait()
            lead = not mine.done
            if lead:  # nobody is writing: write what is waiting, ours with it
                self._running = True
                batch, self._waiting = self._waiting, []
        if lead:
            try:
                self._run_group(batch)
            finally:
                with self._group:
                    self._running = False
                    self._group.notify_all()
        if mine.error is not None:
            raise mine.error
        return cast(T, mine.result)

    def _run_group(self, batch: list[_Work]) -> None:
        wakes: Wakes = True  # the shared commit wakes what any of its callers would
        if not any(item.wakes is True for item in batch):
            wakes = {q for item in batch if not isinstance(item.wakes, bool) for q in item.wakes}
        try:
            with self.write(wakes=wakes) as db:
                if len(batch) == 1:
                    batch[0].result = batch[0].work(db)
                else:
                    for item in batch:
                        db.execute("SAVEPOINT work")
                        try:
                            item.result = item.work(db)
                        except Exception as error:
                            db.execute("ROLLBACK TO work")
                            item.error = error
                        db.execute("RELEASE work")
        except BaseException as error:  # nothing was committed: every caller gets the error
            for item in batch:
                item.result, item.error = None, error
        with self._group:
            for item in batch:
                item.done = True

    def generation(self) -> int:
        """How many commits of this process have woken long polls so far."""
        with self._wake_lock:
            return self._generation

    def wake_mark(self, queue: str) -> int:
        """Where the wakes of `queue`'s long polls stand (for `wait_for_wake`)."""
        with self._wake_lock:
            return self._woken_all + self._woken.get(queue, 0)

    def wait_for_wake(self, queue: str, mark: int, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a wake of `queue`'s long polls after `mark`; true
        if one came."""
        with self._wake_lock:
            sleepers = self._sleepers.get(queue)
            if sleepers is None:
                sleepers = self._sleepers[queue] = threading.Condition(self._wake_lock)
            return sleepers.wait_for(
                lambda: self._woken_all + self._woken.get(queue, 0) != mark, timeout=timeout
            )

    def close(self) -> None:
        """Stop the checkpoint thread and close every connection opened so far; a thread's
        next use opens a fresh one (and the next write starts the checkpoint thread again)."""
        with self._starting:
            self._closing.set()
            if self._checkpointer is not None and self._checkpointer_pid == os.getpid():
                self._checkpointer.join(timeout=5)
            self._checkpointer, self._checkpointer_pid = None, 0
        for db in self._connections:
            db.close()
        self._connections.clear()
        self._local = threading.local()
        with self._writer:
            if self._queue_fd is not None:
                os.close(self._queue_fd)
                self._queue_fd = None


@dataclass(slots=True)
class _Work:
    """One caller's write, waiting for the transaction that runs it."""

    work: Callable[[sqlite3.Connection], Any]
    wakes: Wakes = True
    result: Any = None
    error: BaseException | None = None
    done: bool = False
