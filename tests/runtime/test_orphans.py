"""Worker processes never outlive their dispatcher, however early it dies.

These run once, not per backend: a bare worker spawn and synchronous invokes open no store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from .conftest import wait_for

SLOW_MODULE = textwrap.dedent(
    """
    import time
    time.sleep(30)  # a cold start that takes long: the worker is importing when its parent dies

    def handler(event):
        return event
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead; only a running (or sleeping) process counts.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _workers_of(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"fanstack.runtime.worker" in argv and str(parent).encode() in argv:
            pids.append(int(entry.name))
    return pids


def test_a_worker_whose_dispatcher_died_during_its_start_exits(tmp_path: Path) -> None:
    (tmp_path / "slow_module.py").write_text(SLOW_MODULE)
    # The dispatcher starts a worker, hands it what to load, and dies before the worker's
    # interpreter is even up: the worker must notice, not import for 30 s and wait forever.
    path = str(tmp_path)
    script = textwrap.dedent(
        f"""
        import os
        from fanstack.runtime.process import WorkerSpec, spawn
        spec = WorkerSpec(
            function="slow",
            target={{"module": "slow_module", "qualname": "handler", "sys_path": [{path!r}]}},
            timeout=5,
            memory_mb=None,
        )
        process = spawn(spec)
        print(process.pid, flush=True)
        os._exit(0)
        """
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    )
    worker = int(output.stdout.strip())
    wait_for(lambda: not _alive(worker), timeout=5)


BUSY_APP = textwrap.dedent(
    """
    import threading, time
    from fanstack import App

    app = App("orphans")

    @app.function(concurrency=4, timeout=60)
    def slow(event):
        return event

    if __name__ == "__main__":  # the dispatcher: four invocations, four cold starts
        for _ in range(4):
            threading.Thread(target=slow.invoke, args=({},), daemon=True).start()
        time.sleep(120)
    else:  # a worker loading the handler: a cold start that takes long
        time.sleep(30)
    """
)


def test_kill_9_of_a_dispatcher_during_cold_starts_leaves_no_worker(tmp_path: Path) -> None:
    app_file = tmp_path / "busy_app.py"
    app_file.write_text(BUSY_APP)
    dispatcher = subprocess.Popen([sys.executable, str(app_file)], cwd=tmp_path)
    try:
        wait_for(lambda: len(_workers_of(dispatcher.pid)) == 4, timeout=30)
        workers = _workers_of(dispatcher.pid)
    finally:
        os.kill(dispatcher.pid, signal.SIGKILL)
        dispatcher.wait()
    began = time.monotonic()
    wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=5)
    assert time.monotonic() - began < 5
