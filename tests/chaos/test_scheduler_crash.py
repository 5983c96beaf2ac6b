"""Two worker processes share the scheduler's lease; kill -9 of the leader mid-run: the other
takes over, and over 100 occurrences of a `rate(1 minute)` schedule (on a schedule clock 240
times faster than real time) none is lost and none fires twice."""

from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fanstack.schedules.scheduler import LEADER_KEY, SCHEDULER_TABLE, TICK
from fanstack.schedules.store import OCCURRENCES_TABLE

from ..support.stores import Store

RATE = 240  # an occurrence of rate(1 minute) every quarter second
OCCURRENCES = 100
APP = """
from fanstack import App
app = App("scheduler-chaos")
app.schedule("tick", "rate(1 minute)", app.queue("ticks"), input={"beat": True})
"""


def start_worker(app_file: Path, store: Store, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fanstack.cli", *store.cli_options(), "worker", str(app_file)],
        env=env,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_kill_9_of_the_leader_loses_and_doubles_no_occurrence(
    tmp_path: Path, store: Store
) -> None:
    app_file = tmp_path / "scheduler_app.py"
    app_file.write_text(APP)
    env = {
        **os.environ,
        "FANSTACK_SCHEDULER_CLOCK_RATE": str(RATE),
        "FANSTACK_SCHEDULER_CLOCK_ORIGIN": str(time.time()),
    }
    app = store.app("scheduler-chaos")
    backend = app.backend

    def occurrences() -> list[float]:
        return sorted(item.value["scheduled"] for item in backend.table_items(OCCURRENCES_TABLE))

    def leader_pid() -> int | None:
        item = backend.table_get(SCHEDULER_TABLE, LEADER_KEY)
        return None if item is None else int(item.value["pid"])

    workers = {}
    first = start_worker(app_file, store, env)
    workers[first.pid] = first
    try:
        wait_for(lambda: len(occurrences()) >= 5)
        second = start_worker(app_file, store, env)
        workers[second.pid] = second
        wait_for(lambda: len(occurrences()) >= 30)
        leader = leader_pid()
        assert leader in workers
        workers[leader].send_signal(signal.SIGKILL)
        workers[leader].wait()
        survivor = next(process for pid, process in workers.items() if pid != leader)
        wait_for(lambda: leader_pid() == survivor.pid)
        wait_for(lambda: len(occurrences()) >= OCCURRENCES)
        app.schedules.get("tick").disable()
        time.sleep(1)  # the leader sees the change at its next tick
        ticks = app.queue_for("ticks")
        # A delivery the dead worker held comes back once its visibility timeout ends.
        wait_for(lambda: ticks.stats().visible >= len(occurrences()), timeout=30)
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=30) == 0
        fired = occurrences()
        assert [b - a for a, b in itertools.pairwise(fired)] == [60.0] * (len(fired) - 1)
        delivered = app.queue_for("ticks").stats().visible
        # Each occurrence fired once (one record each); delivery is at-least-once, and only
        # what the killed worker was in the middle of arrives twice: the occurrences its leader
        # had handed to delivery without yet saving its progress (the next leader queues them
        # again) and those its retrier had delivered without yet deleting. Each is at most one
        # tick's worth.
        around_the_kill = 2 * math.ceil(TICK * RATE / 60)
        assert len(fired) <= delivered <= len(fired) + around_the_kill
        assert app.schedules.get("tick").state().fired == len(fired)
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        app.close()
