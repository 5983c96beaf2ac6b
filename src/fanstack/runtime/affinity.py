"""Which CPUs a dispatcher's process and its worker processes run on.

A dispatcher's threads (the driver, the pollers, a server's event loop, whatever publishes in
the same process) take turns at Python's one interpreter lock: together they run Python on one
core at a time, however many they may use. Left to move between cores, every turn of the lock
wakes a thread on another core, which is costly (an inter-processor interrupt, caches to warm
again; most of all in a virtual machine). So while a dispatcher runs, its process's threads keep
to one CPU, the one the thread starting it ran on, and the threads they start keep to it too.
Worker processes and the other processes this one starts get back every CPU the process had,
so handlers run in parallel as before. When the dispatcher stops, the threads get their CPUs
back.

`FANSTACK_PIN=off` leaves the scheduler free (also where CPU affinity does not exist or the
process has one CPU).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

ENV = "FANSTACK_PIN"
OFF = ("off", "0", "false", "no")

log = logging.getLogger("fanstack.runtime")

_lock = threading.Lock()
_pins = 0  # dispatchers of this process that keep its threads on one CPU
_allowed: frozenset[int] | None = None  # the process's CPUs while pinned


def pin_threads() -> int | None:
    """Keep this process's threads on one CPU (the calling thread's) until `unpin_threads`;
    the CPU, or None when the scheduler stays free (`FANSTACK_PIN=off`, one CPU, no affinity).
    Calls nest: the threads are freed when every pin was undone."""
    global _pins, _allowed
    if os.environ.get(ENV, "").strip().lower() in OFF or not hasattr(os, "sched_setaffinity"):
        return None
    with _lock:
        if _allowed is not None:
            _pins += 1
            return next(iter(os.sched_getaffinity(0)))
        allowed = frozenset(os.sched_getaffinity(0))
        if len(allowed) < 2:
            return None
        cpu = _current_cpu()
        if cpu not in allowed:
            cpu = min(allowed)
        _set_threads({cpu})
        _pins, _allowed = 1, allowed
    log.debug("dispatcher threads kept on one CPU", extra={"cpu": cpu})
    return cpu


def unpin_threads() -> None:
    """Undo one `pin_threads`: after the last, every thread gets the process's CPUs back."""
    global _pins, _allowed
    with _lock:
        if _allowed is None:
            return
        _pins -= 1
        if _pins > 0:
            return
        _set_threads(_allowed)
        _allowed = None


def release(pid: int) -> None:
    """Give a process this one started every CPU this process had before it was pinned (called
    right after the start: the new process has started no threads of its own yet)."""
    allowed = _allowed
    if allowed is not None:
        with contextlib.suppress(OSError):  # it exited already: nothing to give
            os.sched_setaffinity(pid, allowed)


def _set_threads(cpus: frozenset[int] | set[int]) -> None:
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cpus)


def _current_cpu() -> int:
    """The CPU the calling thread last ran on (field 39 of its /proc stat line)."""
    try:
        with open("/proc/thread-self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[36])
    except (OSError, IndexError, ValueError):
        return -1
