"""Which CPUs a dispatcher's process and its worker processes run on.

A dispatcher's threads (the driver, the pollers, a server's event loop, whatever publishes in
the same process) take turns at Python's one interpreter lock: together they run Python on one
core at a time, however many they may use. Left to move between cores, every turn of the lock
wakes a thread on another core, which is costly (an inter-processor interrupt, caches to warm
again; most of all in a virtual machine). So while a dispatcher runs, its process's threads keep
to one CPU (every thread of the process: a server's, the app's own), and the threads they
start keep to it too. Worker processes and the server processes fanstack starts get back
every CPU the process had right after their start (`release`), so handlers run in parallel as
before, and so does a child forked from the process; a process other code in it starts keeps
the one CPU. When the dispatcher stops, the threads get their CPUs back.

Several dispatchers on one machine (`fanstack worker` processes, say) spread over its CPUs:
each takes the CPU the fewest others hold, as noted in `REGISTRY` (a file per pinned process,
named by its pid and CPU, under a lock; a process that died is forgotten by the next one to
look). Where that directory cannot be written, the CPU is the one the starting thread ran on.

`FANSTACK_PIN=off` leaves the scheduler free (also where CPU affinity does not exist or the
process has one CPU).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Collection
from pathlib import Path

ENV = "FANSTACK_PIN"
OFF = ("off", "0", "false", "no")
REGISTRY = Path(tempfile.gettempdir()) / "fanstack-cpus"
LOCK_WAIT = 1.0  # seconds a dispatcher waits for the registry before taking its own CPU

log = logging.getLogger("fanstack.runtime")

_lock = threading.Lock()
_pins = 0  # dispatchers of this process that keep its threads on one CPU
_allowed: frozenset[int] | None = None  # the process's CPUs while pinned


def pin_threads() -> int | None:
    """Keep this process's threads on one CPU until `unpin_threads`; the CPU, or None when the
    scheduler stays free (`FANSTACK_PIN=off`, one CPU, no CPU affinity or no /proc here, an
    interpreter without the global lock). Calls nest: the threads are freed when every pin was
    undone."""
    global _pins, _allowed
    if os.environ.get(ENV, "").strip().lower() in OFF or not hasattr(os, "sched_setaffinity"):
        return None
    if getattr(sys, "_is_gil_enabled", lambda: True)() is False:
        return None  # threads that run Python in parallel lose by sharing a CPU
    with _lock:
        if _allowed is not None:
            _pins += 1
            return next(iter(os.sched_getaffinity(0)))
        allowed: frozenset[int] = frozenset()
        try:
            allowed = frozenset(os.sched_getaffinity(0))
            if len(allowed) < 2:
                return None
            cpu = _choose(allowed)
            _allowed = allowed  # first: a process started meanwhile is given these back
            _set_threads({cpu})
            if os.sched_getaffinity(0) != {cpu}:
                raise OSError(f"CPU {cpu} could not be kept")
        except OSError as error:  # no /proc, a CPU taken out of the set: left free
            if allowed:
                with contextlib.suppress(OSError):
                    _set_threads(allowed)
            _allowed = None
            _forget()
            log.debug("dispatcher threads left on every CPU", extra={"error": str(error)})
            return None
        _pins = 1
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
        with contextlib.suppress(OSError):
            _set_threads(_allowed)
        _allowed = None
        _forget()


def release(pid: int) -> None:
    """Give a process this one started every CPU this process had before it was pinned (called
    right after the start: the new process has started no threads of its own yet)."""
    allowed = _allowed
    if allowed is None:  # unpinned meanwhile: the CPUs of the thread that started it
        allowed = frozenset(os.sched_getaffinity(0))
    with contextlib.suppress(OSError):  # it exited already: nothing to give
        os.sched_setaffinity(pid, allowed)


def _forget() -> None:
    """This process holds no CPU in the registry any more."""
    with contextlib.suppress(OSError):
        for entry in REGISTRY.glob(f"{os.getpid()}.*"):
            entry.unlink(missing_ok=True)


def _forked() -> None:
    """In a child forked from a pinned process: every CPU back, and no pin of its own."""
    global _pins, _allowed
    allowed, _pins, _allowed = _allowed, 0, None
    if allowed is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, allowed)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _choose(allowed: Collection[int]) -> int:
    """The allowed CPU the fewest live pinned processes of this machine hold (among equals,
    the one the calling thread runs on, else the lowest), noted in REGISTRY for the others."""
    current = _current_cpu()
    try:
        if not REGISTRY.is_dir():
            REGISTRY.mkdir(exist_ok=True)
            with contextlib.suppress(OSError):  # every user's processes note theirs there
                REGISTRY.chmod(0o1777)
        with open(REGISTRY / ".lock", "a+") as lock:
            with contextlib.suppress(OSError):
                (REGISTRY / ".lock").chmod(0o666)
            _lock_briefly(lock.fileno())
            held = dict.fromkeys(allowed, 0)
            for entry in REGISTRY.iterdir():
                pid, _, cpu = entry.name.partition(".")
                if not (pid.isdigit() and cpu.isdigit()):
                    continue
                if not _alive(int(pid)) or int(pid) == os.getpid():
                    with contextlib.suppress(OSError):  # another user's: not counted either
                        entry.unlink(missing_ok=True)
                elif int(cpu) in held:
                    held[int(cpu)] += 1
            chosen = min(sorted(held), key=lambda cpu: (held[cpu], cpu != current))
            (REGISTRY / f"{os.getpid()}.{chosen}").touch()
            return chosen
    except OSError:  # no registry here: the scheduler's choice of the moment
        return current if current in allowed else min(allowed)


def _lock_briefly(fd: int) -> None:
    """The registry's lock, waited for LOCK_WAIT seconds at most (a process stopped while it
    held it must not keep dispatchers from starting): OSError past that."""
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def _set_threads(cpus: frozenset[int] | set[int]) -> None:
    """Every thread of the process on `cpus`, those started meanwhile (by a thread not yet
    set, whose CPUs they took) included."""
    done: set[str] = set()
    while todo := set(os.listdir("/proc/self/task")) - done:
        for tid in todo:
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(tid), cpus)
        done |= todo


def _current_cpu() -> int:
    """The CPU the calling thread last ran on (field 39 of its /proc stat line)."""
    try:
        with open("/proc/thread-self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[36])
    except (OSError, IndexError, ValueError):
        return -1
