"""While consumers run, the dispatcher's threads keep to one CPU and its workers get them all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
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


def tid(thread: threading.Thread) -> int:
    assert thread.native_id is not None
    return thread.native_id


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
    dispatcher = [before, threading.main_thread(), *app.runtime.threads]
    worker_cpus = json.loads(markers(work_dir, "cpus-1")[0].read_text())
    assert worker_cpus == ALL  # handlers run on every CPU
    if len(ALL) > 1:
        # The threads of the process, those started before and after the start alike.
        [cpu] = {tuple(running[tid(thread)]) for thread in dispatcher}
        assert len(cpu) == 1 and cpu[0] in ALL
    else:
        assert all(running[tid(thread)] == ALL for thread in dispatcher)
    app.runtime.stop(grace=5)
    after = thread_cpus()
    assert all(after[tid(thread)] == ALL for thread in dispatcher if thread.is_alive())


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
    start = sorted(os.sched_getaffinity(0))  # every CPU, unless a test left a pin behind
    first = affinity.pin_threads()
    second = affinity.pin_threads()
    try:
        if len(ALL) > 1:
            assert first is not None and second == first
            affinity.unpin_threads()
            assert sorted(os.sched_getaffinity(0)) == [first]  # one pin is still on
        else:
            assert first is None and second is None
    finally:
        affinity.unpin_threads()
        affinity.unpin_threads()  # one too many: nothing to undo
    assert sorted(os.sched_getaffinity(0)) == start


PINNED = (
    "import sys\n"
    "from fanstack.runtime import affinity\n"
    "print(affinity.pin_threads(), flush=True)\n"
    "sys.stdin.read()\n"
)


def pinned_process(registry_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """A process that pins itself as a dispatcher does; the CPU it said it took."""
    process = subprocess.Popen(
        [sys.executable, "-c", PINNED],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(registry_dir)},  # a registry of this test's own
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def test_dispatchers_of_one_machine_spread_over_its_cpus(tmp_path: Path) -> None:
    first, first_cpu = pinned_process(tmp_path)
    second, second_cpu = pinned_process(tmp_path)
    try:
        if len(ALL) == 1:
            assert first_cpu == second_cpu == "None"
            return
        assert {first_cpu, second_cpu} <= {str(cpu) for cpu in ALL}
        assert first_cpu != second_cpu
        first.kill()  # kill -9: its note stays behind, and the next process forgets it
        first.wait()
        third, third_cpu = pinned_process(tmp_path)
        third.kill()
        third.wait()
        assert third_cpu != second_cpu  # the dead one's CPU is free again
    finally:
        for process in (first, second):
            process.kill()
            process.wait()


def test_a_child_forked_from_a_pinned_process_gets_every_cpu() -> None:
    cpu = affinity.pin_threads()
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: say its CPUs and whether it thinks it is pinned
            os.write(
                write,
                json.dumps([sorted(os.sched_getaffinity(0)), affinity.pin_threads()]).encode(),
            )
            os._exit(0)
        os.close(write)
        said = json.loads(os.read(read, 4096))
        os.waitpid(pid, 0)
        os.close(read)
    finally:
        affinity.unpin_threads()
    assert said[0] == ALL
    # Its own pin is a first one, not one nested in the parent's.
    assert (said[1] is None) == (cpu is None)


def test_a_registry_held_by_a_stuck_process_does_not_keep_a_dispatcher_from_starting(
    tmp_path: Path,
) -> None:
    import fcntl

    registry = tmp_path / "fanstack-cpus"
    registry.mkdir()
    with open(registry / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a process stopped while choosing would hold it
        started = time.monotonic()
        process, cpu = pinned_process(tmp_path)
        waited = time.monotonic() - started
        process.kill()
        process.wait()
    assert waited < affinity.LOCK_WAIT + 10  # it took a CPU of its own instead of waiting
    assert cpu == "None" if len(ALL) == 1 else int(cpu) in ALL
    assert not [entry for entry in registry.iterdir() if entry.name != ".lock"]  # noted nothing
