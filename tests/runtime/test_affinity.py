"""While consumers run, the dispatcher's threads keep to one CPU and its workers get them all."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from fanstack import App
from fanstack.runtime import affinity

from . import handlers
from .conftest import ONE_BACKEND, markers, wait_for

ALL = sorted(os.sched_getaffinity(0))


def thread_cpus() -> dict[int, list[int]]:
    """The CPUs each thread of this process may run on, by thread id."""
    return {
        int(tid): sorted(os.sched_getaffinity(int(tid))) for tid in os.listdir("/proc/self/task")
    }


@ONE_BACKEND
def test_dispatcher_threads_share_one_cpu_and_workers_get_every_cpu(
    app: App, work_dir: Path
) -> None:
    queue = app.queue("cpus")
    app.consumer(queue)(handlers.note_cpus)
    before = threading.Thread(target=threading.Event().wait, args=(30,), daemon=True)
    before.start()  # a thread of the process from before the start (a server's, say)
    app.runtime.start()
    queue.send(json.dumps({"dir": str(work_dir), "n": 1}))
    wait_for(lambda: markers(work_dir, "cpus-1"))
    running = thread_cpus()
    worker_cpus = json.loads(markers(work_dir, "cpus-1")[0].read_text())
    assert worker_cpus == ALL  # handlers run on every CPU
    if len(ALL) > 1:
        [cpu] = {tuple(cpus) for cpus in running.values()}  # every thread, the same one CPU
        assert len(cpu) == 1 and cpu[0] in ALL
        assert before.native_id in running
    else:
        assert all(cpus == ALL for cpus in running.values())
    app.runtime.stop(grace=5)
    assert all(cpus == ALL for cpus in thread_cpus().values())  # given back at stop


@ONE_BACKEND
def test_fanstack_pin_off_leaves_the_scheduler_free(
    app: App, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(affinity.ENV, "off")
    queue = app.queue("cpus")
    app.consumer(queue)(handlers.note_cpus)
    app.runtime.start()
    queue.send(json.dumps({"dir": str(work_dir), "n": 2}))
    wait_for(lambda: markers(work_dir, "cpus-2"))
    assert all(cpus == ALL for cpus in thread_cpus().values())
    assert json.loads(markers(work_dir, "cpus-2")[0].read_text()) == ALL


def test_pins_nest_and_the_last_undone_frees_the_threads() -> None:
    first = affinity.pin_threads()
    second = affinity.pin_threads()
    try:
        if len(ALL) > 1:
            assert first is not None and second == first
            affinity.unpin_threads()
            assert all(cpus == [first] for cpus in thread_cpus().values())  # one pin still on
        else:
            assert first is None and second is None
    finally:
        affinity.unpin_threads()
        affinity.unpin_threads()  # one too many: nothing to undo
    assert all(cpus == ALL for cpus in thread_cpus().values())
