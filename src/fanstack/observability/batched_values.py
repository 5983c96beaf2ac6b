"""Shared counts written in batches: an increment is added up in memory, not written at once.

With counts shared between processes, prometheus_client writes every increment to the
process's memory-mapped file under a lock: on a busy gateway, the eight increments of one
request (published, sent to five queues, the request and its duration) cost about a tenth of
the request. `batched_value_class` gives values that only append an increment to a queue in
memory (safe from any thread, no lock); this process's flusher thread adds them up and writes
them every `FLUSH_INTERVAL` seconds, and so does anything in this process about to read the
shared files (`flush`, which `/metrics` and the dashboard call first), a function worker
before it answers an invocation (its pool may kill it once answered), and the process's exit.

What another process reports is therefore at most `FLUSH_INTERVAL` behind; a process killed
with SIGKILL loses at most its last `FLUSH_INTERVAL` of counts. Flushes take one lock, so a
flush that returns has written everything counted before it began. A forked child starts with
nothing pending: its parent writes what it had counted.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from typing import Any

from prometheus_client import values

log = logging.getLogger("fanstack.metrics")

FLUSH_INTERVAL = 0.5  # seconds


class _Batches:
    """Every batched value of this process, and the thread that writes what they counted."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.lock = threading.Lock()  # guards `values` and the flusher's start
        # Held while anything reaches the shared file, so flushes do not overtake each other
        # and a fork never happens in the middle of a write (`os.register_at_fork` below).
        self.writing = threading.Lock()
        self.flusher_pid = 0

    def add(self, value: Any) -> None:
        with self.lock:
            self.values.append(value)
            self._start_flusher()

    def flush(self) -> None:
        """Write every increment counted so far in this process."""
        with self.lock:
            batched = list(self.values)
        with self.writing:
            for value in batched:
                value.write_pending()

    def before_fork(self) -> None:
        self.writing.acquire()

    def after_fork_in_parent(self) -> None:
        self.writing.release()

    def after_fork_in_child(self) -> None:
        """What the parent counted is the parent's to write; the child counts afresh."""
        self.lock = threading.Lock()
        self.writing = threading.Lock()
        self.flusher_pid = 0
        for value in self.values:
            value.pending.clear()
        if self.values:
            with self.lock:
                self._start_flusher()

    def _start_flusher(self) -> None:
        """Start this process's flusher thread unless it runs (called holding `lock`)."""
        if self.flusher_pid != os.getpid():
            self.flusher_pid = os.getpid()
            threading.Thread(target=self._flush_often, name="metrics-flush", daemon=True).start()

    def _flush_often(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            try:
                self.flush()
            except Exception:  # a full disk, say: counting goes on, and so do the flushes
                log.exception("could not write this process's counts")


_batches = _Batches()
atexit.register(_batches.flush)
os.register_at_fork(
    before=_batches.before_fork,
    after_in_parent=_batches.after_fork_in_parent,
    after_in_child=_batches.after_fork_in_child,
)


def flush() -> None:
    """Write this process's pending increments to its shared file (before reading the files)."""
    _batches.flush()


def batched_value_class(shared: type | None = None) -> type:
    """A multiprocess value class (`shared`, else a new one of prometheus_client's) with
    increments written in batches."""
    if shared is not None and getattr(shared, "batched", False):
        return shared
    base: Any = values.MultiProcessValue() if shared is None else shared  # type: ignore[no-untyped-call]

    class BatchedValue(base):  # type: ignore[misc]
        batched = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.pending: deque[float] = deque()
            super().__init__(*args, **kwargs)
            # The deque's own append: atomic (no lock, from any thread), and no Python frame.
            self.inc = self.pending.append
            _batches.add(self)

        def write_pending(self) -> None:
            """Write what was counted since the last flush (called holding the flush lock)."""
            pending = self.pending
            if not pending:
                return
            total = 0.0
            while pending:  # an increment appended meanwhile is taken now or next time
                try:
                    total += pending.popleft()
                except IndexError:
                    break
            base.inc(self, total)

        def set(self, value: float, timestamp: float | None = None) -> None:
            with _batches.writing:
                self.write_pending()
                base.set(self, value, timestamp)

        def get(self) -> float:
            with _batches.writing:
                self.write_pending()
                return float(base.get(self))

    return BatchedValue
