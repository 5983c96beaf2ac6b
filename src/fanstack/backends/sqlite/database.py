"""The database file as a process uses it: one connection, one writer at a time, commit notices."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

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
# For this long after a turn had to wait for another process's, this process yields its CPU
# on letting the writers' lock go (`Database._turn`).
CONTENDED = 0.1
# How long a writer that finds the lock taken tries again before it sleeps on it.
SPIN = 0.0003
# How long an event loop's commit waits for a read of its process to let the connection go.
READ_WAIT = 0.001


class Database:
    """One SQLite file as this process uses it: one connection (`reading`) and write
    transactions.

    Each commit made here that may have made a message visible wakes the long polls of the
    queues it wrote to (`wake`, `wait_for_wake`), and only those: a process serving many
    queues, most of them idle, would otherwise wake every poll at every commit. Commits of
    other processes show in `PRAGMA data_version` instead.

    Writers of every process queue on an advisory lock on `<file>-writer` (`flock`) before
    `BEGIN IMMEDIATE`: the kernel wakes the next waiter the moment the lock is let go, where
    SQLite's busy handler would sleep 1, 2, 5 ... 100 ms between tries and leave the file idle.
    A process that dies holding it lets it go with its descriptors. Writers that do not take
    it (another tool on the file) are still waited for by the busy handler. A writer that finds
    it taken tries again for a moment before it sleeps, and one that had to wait lately yields
    its CPU on letting it go, so that turns pass from process to process without idle gaps.
    """

    def __init__(self, path: Path, *, synchronous: str, busy_timeout_ms: int) -> None:
        self.path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._db: sqlite3.Connection | None = None  # the process's connection (`reading`)
        self._db_pid = 0
        # Held while the connection is in use: a read, a statement, a write transaction.
        self._use = threading.RLock()
        self._connections: list[sqlite3.Connection] = []
        self._writer = threading.Lock()
        self._wake_lock = threading.Lock()
        self._generation = 0  # wakes so far, of any queue's polls
        self._woken_all = 0  # wakes of every queue's polls
        self._woken: dict[str, int] = {}  # wakes of one queue's polls
        self._sleepers: dict[str, threading.Condition] = {}  # one queue's waiting polls
        group_lock = threading.Lock()
        self._group = threading.Condition(group_lock)  # callers of `grouped` waiting
        self._submitted = threading.Condition(group_lock)  # the writer thread, idle
        self._waiting: list[_Work] = []
        self._waiting_futures = 0  # of `_waiting`, work `submit` handed in
        self._running = False
        # Per event loop, what its tasks submitted during this turn of it (`_commit_on_loop`).
        self._on_loop: dict[asyncio.AbstractEventLoop, list[_Work]] = {}
        self._writer_thread: threading.Thread | None = None
        self._writer_thread_pid = 0
        self._stopping_writer = False
        self._queue_fd: int | None = None
        self._queue_pid = 0  # a forked child opens its own: a shared descriptor shares the lock
        self._contended_at = -CONTENDED  # when a turn last had to wait for another process
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self._wrote = False  # since the last checkpoint (set after commits, read by the thread)
        self._checkpointer: threading.Thread | None = None
        self._checkpointer_pid = 0
        self._closing = threading.Event()
        self._starting = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        """The process's connection, opened on first use (called holding `_use`)."""
        db = self._db
        if db is None or self._db_pid != os.getpid():
            db = connect(
                self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
            )
            self._db, self._db_pid = db, os.getpid()
            self._connections.append(db)
        return db

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The process's connection, for reads, while no transaction of this process is open.

        Everything fanstack reads or writes in a process goes through one connection: SQLite
        drops a connection's page cache whenever another connection has committed, so with a
        connection per thread every read and write after another thread's commit read the
        trees' pages again. A read waits for a write transaction of this process to end (it
        would see its uncommitted rows), never for another process. Read what is needed and
        let go: this process's writes wait meanwhile (an event loop's hands its work to the
        writer thread), and a write must not start inside (it would take the writers' lock
        holding the connection, the reverse of a writer's order).
        """
        with self._use:
            yield self._connection()

    @contextmanager
    def write(self, *, wakes: Wakes = True, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction: committed on success, rolled back on error.

        Threads of this process take turns on a lock first: SQLite's own busy handler sleeps
        in growing steps, so threads contending on it would idle while the database is free.
        A write that changed rows wakes this process's long polls: those of the queues in
        `wakes`, every queue's if it is True, none if it cannot have made a message visible
        (`wakes=False`: a lease, a delete; `wake()` says so when it did). With `wait` false, a
        write that would have to wait for another writer (of this process or another) raises
        `_Busy` instead of starting.
        """
        if not self._writer.acquire(blocking=wait):
            raise _Busy
        try:
            with self._turn(wait=wait), self._using(wait=wait):
                db = self._connection()
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
        finally:
            self._writer.release()
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
        with self._writer, self._turn(), self._use:
            db = self._connection()
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
    def _using(self, *, wait: bool) -> Iterator[None]:
        """The connection, for a write that has the turn; `_Busy` if a read of this process
        holds it past READ_WAIT and `wait` is false (an event loop's commit: most reads take
        microseconds, but one may take a while, a FIFO queue's walk say, and the loop hands
        its work to the writer thread instead)."""
        if not (self._use.acquire() if wait else self._use.acquire(timeout=READ_WAIT)):
            raise _Busy
        try:
            yield
        finally:
            self._use.release()

    @contextmanager
    def _turn(self, *, wait: bool = True) -> Iterator[None]:
        """This process's turn among the file's writers (called under `_writer`); `_Busy` if
        another process has it and `wait` is false."""
        if self._queue_fd is None or self._queue_pid != os.getpid():
            self._queue_pid = os.getpid()
            try:
                self._queue_fd = os.open(f"{self.path}-writer", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise BackendUnavailable(f"cannot write to {self.path}: {exc}") from exc
        queue_fd = self._queue_fd
        if not _try_lock(queue_fd):  # another process writes: wait for it
            if not wait:
                raise _Busy
            self._contended_at = time.monotonic()
            if not _spin_for_lock(queue_fd):
                fcntl.flock(queue_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(queue_fd, fcntl.LOCK_UN)
            if time.monotonic() - self._contended_at < CONTENDED:
                # Let the process the kernel just woke take its turn on this CPU now: going
                # on, this process would often take the lock again before that one ran.
                os.sched_yield()

    def grouped(
        self, work: Callable[[sqlite3.Connection], T] | Joinable[T], *, wakes: Wakes = True
    ) -> T:
        """Run `work` in a write transaction shared with the other threads' at that moment.

        Writes asked for at once by several threads (a server's concurrent sends and
        publishes) go in one transaction: the first caller runs everything waiting,
        each in a savepoint of its own (one that fails is rolled back alone and raises in its
        caller; `Joinable` work of one kind shares one call and one savepoint), and every
        caller returns once that transaction has committed: durable, as alone. `work` must
        use the connection it is given (the runner's, not its caller's).
        The shared commit wakes the long polls every caller's `wakes` names (as `write`).
        """
        mine = _Work(work, wakes)
        with self._group:
            self._waiting.append(mine)
            while not mine.done and self._running:
                self._group.wait()
            lead = not mine.done
            if lead:  # nobody is writing: write what is waiting, ours with it
                batch = self._take_batch()
        if lead:
            self._lead(batch)
        if mine.error is not None:
            raise mine.error
        return cast(T, mine.result)

    def submit(
        self, work: Callable[[sqlite3.Connection], T] | Joinable[T], *, wakes: Wakes = True
    ) -> asyncio.Future[T]:
        """`grouped` for the running event loop: the future resolves once the transaction
        that ran `work` has committed.

        What the loop's tasks submit during one turn of the loop is committed together after
        the next turn (`_turn_ends`), on the loop itself, when that needs no waiting: no
        other writer is at it (in this process or another) and a commit does not wait for the
        disk (durability "fsync" does). A commit of a few dozen requests' messages takes the loop
        about as long as handing them to a thread did, without the thread: its wake-ups and
        the GIL passed back and forth cost a busy gateway a fifth of its requests. Otherwise
        the work joins whatever transaction runs next, with the `grouped` callers of the
        moment; when no caller of `grouped` leads one, this process's writer thread (started
        on first use) does. A transaction's futures of one loop are settled in one call to
        that loop.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        item = _Work(work, wakes, future)
        if self.flushes:
            self._hand_over([item])
            return future
        pending = self._on_loop.get(loop)
        if pending is None:
            pending = self._on_loop[loop] = []
        if not pending:
            # In a context of its own: the commit is every submitter's, not the first one's
            # (whose request id its log lines would otherwise carry).
            loop.call_soon(self._turn_ends, loop, context=contextvars.Context())
        pending.append(item)
        return future

    def _turn_ends(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit what the loop's tasks submitted after one more turn of it.

        The turn that follows takes in what arrived meanwhile (requests whose bytes came in
        while this turn ran), whose tasks submit before that commit: a busy gateway's
        transactions hold about twice as many requests, for a turn of waiting. Measured under
        wrk at c=32, groups of 10 became 17 and the requests answered per second rose 13%,
        with lower latencies; an idle loop turns in microseconds.
        """
        loop.call_soon(self._commit_on_loop, loop, context=contextvars.Context())

    def _commit_on_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit, on `loop`, what its tasks submitted during the turn that just ended, with
        whatever else waits; if that would wait for another writer, hand it to the writer
        thread instead."""
        submitted = self._on_loop.pop(loop, [])
        if not submitted:  # `close` handed them to the writer thread
            return
        with self._group:
            if self._running:  # a thread is writing: the next transaction takes these
                self._line_up(submitted)
                return
            batch = [*self._take_batch(), *submitted]
        self._lead(batch, wait=False)

    def _hand_over(self, batch: list[_Work]) -> None:
        """Put `batch` in line for the next transaction."""
        with self._group:
            self._line_up(batch)
            if not self._running:
                self._submitted.notify()

    def _line_up(self, batch: list[_Work], *, first: bool = False) -> None:
        """Put `batch` in line for the next transaction (before what waits already if
        `first`), which the writer thread leads if no caller of `grouped` does (called
        holding `_group`)."""
        self._start_writer()
        if first:
            self._waiting[:0] = batch
        else:
            self._waiting.extend(batch)
        self._waiting_futures += sum(1 for item in batch if item.future is not None)

    def _take_batch(self) -> list[_Work]:
        """Everything waiting, to run now (called holding `_group`)."""
        self._running = True
        batch, self._waiting, self._waiting_futures = self._waiting, [], 0
        return batch

    def _lead(self, batch: list[_Work], *, wait: bool = True) -> None:
        """Run `batch` in one transaction, then let the next transaction start. With `wait`
        false, a transaction that would have to wait for another writer does not start: the
        batch goes back in line, for the writer thread (or a caller of `grouped`) to run."""
        ran = False
        try:
            ran = self._run_group(batch, wait=wait)
        finally:
            with self._group:
                self._running = False
                if not ran and not wait:
                    self._line_up(batch, first=True)
                self._group.notify_all()
                if self._waiting_futures:  # submitted meanwhile, and no caller may come to lead
                    self._submitted.notify()
        if not ran:
            return
        loops: dict[asyncio.AbstractEventLoop, list[_Work]] = {}
        for item in batch:
            if item.future is not None:
                loops.setdefault(item.future.get_loop(), []).append(item)
        for loop, settled in loops.items():
            if loop is _running_loop():
                _settle(settled)
                continue
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for these
                loop.call_soon_threadsafe(_settle, settled)

    def _start_writer(self) -> None:
        """Start this process's writer thread if it is not running (called holding `_group`;
        a forked child starts its own)."""
        self._stopping_writer = False  # a thread told to stop and still waiting carries on
        if self._writer_thread is not None and self._writer_thread_pid == os.getpid():
            return
        self._writer_thread = threading.Thread(
            target=self._write_submitted, name="fanstack-writer", daemon=True
        )
        self._writer_thread.start()
        self._writer_thread_pid = os.getpid()

    def _write_submitted(self) -> None:
        """The writer thread: leads a transaction whenever submitted work waits and nobody
        else is writing, until `close`."""
        while True:
            with self._group:
                while not (self._waiting_futures and not self._running):
                    if self._stopping_writer and not self._waiting_futures:
                        self._writer_thread = None
                        return
                    self._submitted.wait()
                batch = self._take_batch()
            self._lead(batch)

    def _run_group(self, batch: list[_Work], *, wait: bool = True) -> bool:
        """Run `batch` in one transaction (each caller's outcome on its item); false if
        `wait` is false and the transaction could not start at once (nothing ran)."""
        wakes: Wakes = True  # the shared commit wakes what any of its callers would
        if not any(item.wakes is True for item in batch):
            wakes = {q for item in batch if not isinstance(item.wakes, bool) for q in item.wakes}
        try:
            with self.write(wakes=wakes, wait=wait) as db:
                steps = _steps(batch)
                if len(steps) == 1:
                    steps[0].run(db)
                else:
                    for step in steps:
                        db.execute("SAVEPOINT work")
                        try:
                            step.run(db)
                        except Exception as error:
                            db.execute("ROLLBACK TO work")
                            step.fail(error)
                        db.execute("RELEASE work")
        except _Busy:
            return False
        except BaseException as error:  # nothing was committed: every caller gets the error
            for item in batch:
                item.result, item.error = None, error
        with self._group:
            for item in batch:
                item.done = True
        return True

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
        next use opens a fresh one (and the next write starts the checkpoint thread again).
        What was submitted and not committed yet is committed first, by the writer thread."""
        with self._group:  # the writer thread ends once what was submitted has run
            for submitted in self._on_loop.values():  # not committed by their loop yet
                self._line_up(submitted)
            self._on_loop.clear()
            writer = self._writer_thread if self._writer_thread_pid == os.getpid() else None
            self._stopping_writer = True
            self._submitted.notify()
        if writer is not None:
            writer.join(timeout=5)
        with self._starting:  # after the writer's last commits, which would start it again
            self._closing.set()
            if self._checkpointer is not None and self._checkpointer_pid == os.getpid():
                self._checkpointer.join(timeout=5)
            self._checkpointer, self._checkpointer_pid = None, 0
        with self._use:
            for db in self._connections:
                db.close()
            self._connections.clear()
            self._db, self._db_pid = None, 0
        with self._writer:
            if self._queue_fd is not None:
                os.close(self._queue_fd)
                self._queue_fd = None


class _Busy(Exception):
    """Another writer has the turn, and this write was not to wait for it."""


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _try_lock(fd: int) -> bool:
    """Take the writers' lock if it is free."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _spin_for_lock(fd: int) -> bool:
    """Try for the writers' lock for up to SPIN seconds, giving the CPU to whatever else may
    run between tries; true if taken. A turn lasts a few hundred microseconds: a writer that
    went to sleep on the lock would be woken when it is let go, and on a busy or virtual
    machine that wake-up often takes longer than the turn it waited for."""
    deadline = time.perf_counter() + SPIN
    while time.perf_counter() < deadline:
        os.sched_yield()
        if _try_lock(fd):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Joinable(Generic[T]):
    """Work that joins the work of the same `run` waiting for the same transaction: one call
    of `run` gets every caller's `argument` and returns one result per caller, in order (an
    exception instance fails its caller alone, and must leave nothing of that caller's
    written). Many callers' small writes then cost one pass instead of one each."""

    run: Callable[[sqlite3.Connection, list[Any]], list[T | Exception]]
    argument: Any


@dataclass(slots=True)
class _Step:
    """Work of a transaction that succeeds or fails as one: a caller's, or joined callers'."""

    items: list[_Work]

    def run(self, db: sqlite3.Connection) -> None:
        work = self.items[0].work
        if not isinstance(work, Joinable):
            self.items[0].result = work(db)
            return
        results = work.run(db, [cast(Joinable[Any], item.work).argument for item in self.items])
        for item, result in zip(self.items, results, strict=True):
            if isinstance(result, Exception):
                item.error = result
            else:
                item.result = result

    def fail(self, error: Exception) -> None:
        for item in self.items:
            item.result, item.error = None, error


def _steps(batch: list[_Work]) -> list[_Step]:
    """The batch as steps, in order of arrival: joinable work with the same `run` is one."""
    steps: list[_Step] = []
    joined: dict[Any, _Step] = {}
    for item in batch:
        if isinstance(item.work, Joinable):
            step = joined.get(item.work.run)
            if step is not None:
                step.items.append(item)
                continue
            step = joined[item.work.run] = _Step([item])
        else:
            step = _Step([item])
        steps.append(step)
    return steps


@dataclass(slots=True)
class _Work:
    """One caller's write, waiting for the transaction that runs it."""

    work: Callable[[sqlite3.Connection], Any] | Joinable[Any]
    wakes: Wakes = True
    future: asyncio.Future[Any] | None = None  # settled once run, for work `submit` handed in
    result: Any = None
    error: BaseException | None = None
    done: bool = False


def _settle(items: list[_Work]) -> None:
    """Give submitted work its outcome (on the loop that waits for it)."""
    for item in items:
        future = item.future
        if future is None or future.done():  # cancelled: its caller went away
            continue
        if item.error is not None:
            future.set_exception(item.error)
        else:
            future.set_result(item.result)
