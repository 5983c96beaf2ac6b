"""`--workers N`: several server processes on one port and one store, stopped and restarted as
one service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from fanstack import App

from ..chaos.orders import OrderLoad
from .conftest import MARKETPLACE, Server, free_port, start_server, wait_for


def children_of(pid: int) -> list[int]:
    """Live child processes of `pid` (those started by any of its threads)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue  # the thread ended meanwhile
    return [child for child in found if alive(child)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def stored_orders(data_dir: Path) -> int:
    app = App("marketplace", data_dir=data_dir)
    try:
        stats = app.backend.stats("process")
        return stats.visible + stats.in_flight + stats.delayed
    finally:
        app.close()


def gateway_with_workers(tmp_path: Path, workers: int) -> tuple[Server, list[int]]:
    """`fanstack gateway --workers N` on the marketplace, once its N children run."""
    server = start_server(
        MARKETPLACE, tmp_path / "state", command="gateway", args=["--workers", str(workers)]
    )
    wait_for(lambda: len(children_of(server.process.pid)) == workers)
    return server, children_of(server.process.pid)


def test_server_processes_share_the_port_and_store_every_acknowledged_order(
    tmp_path: Path,
) -> None:
    server, children = gateway_with_workers(tmp_path, 3)
    try:
        load = OrderLoad(server.url, "w", clients=6).start()
        load.wait_for(300)
        # A TERM to every process at once, as Ctrl-C in a terminal or a service manager sends.
        for pid in [server.process.pid, *children]:
            os.kill(pid, signal.SIGTERM)
        assert server.process.wait(30) == 0
        load.stop()
        assert not [pid for pid in children if alive(pid)]
        assert "stopping now" not in server.logs()  # one stop each, never a forced one
        assert "Traceback" not in server.logs()
        assert stored_orders(tmp_path / "state") >= len(load.acknowledged) >= 300
    finally:
        server.stop()


def test_a_server_process_killed_is_started_again_and_the_port_keeps_answering(
    tmp_path: Path,
) -> None:
    server, children = gateway_with_workers(tmp_path, 2)
    try:
        victim = children[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: (
                len(children_of(server.process.pid)) == 2
                and victim not in children_of(server.process.pid)
            )
        )
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(20):
                assert client.get("/openapi.json").status_code == 200
        # Lines below WARNING reach the log within a flush interval: wait for it.
        wait_for(lambda: "server process exited; starting another" in server.logs())
    finally:
        server.stop()
    assert server.process.returncode == 0


def cpus_of(pid: int) -> set[int]:
    return set(os.sched_getaffinity(pid))


def thread_cpus(pid: int) -> list[set[int]]:
    """The CPUs of each thread of `pid` (those that end meanwhile left out)."""
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            found.append(cpus_of(int(tid)))
        except OSError:
            continue
    return found


def test_consumers_keep_the_parent_on_one_cpu_and_its_server_processes_on_every_one(
    tmp_path: Path,
) -> None:
    every = cpus_of(0)
    server = start_server(MARKETPLACE, tmp_path / "state", args=["--workers", "2"])
    try:
        wait_for(lambda: len(children_of(server.process.pid)) == 2)
        parent = server.process.pid
        # The consumers' dispatcher runs in the parent (started after its server processes):
        # its threads keep to one CPU.
        wanted = 1 if len(every) > 1 else len(every)
        wait_for(lambda: {len(cpus) for cpus in thread_cpus(parent)} == {wanted}, 10)
        victim = children_of(parent)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(children_of(parent)) == 2 and victim not in children_of(parent))
        # A server process started again while the consumers run gets every CPU (given just
        # after its start: a moment on the parent's one is allowed).
        wait_for(lambda: all(cpus_of(child) == every for child in children_of(parent)), 10)
    finally:
        server.stop()
    assert server.process.returncode == 0


def test_server_processes_do_not_outlive_a_parent_killed_with_kill_9(tmp_path: Path) -> None:
    server, children = gateway_with_workers(tmp_path, 2)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(10)
    wait_for(lambda: not [pid for pid in children if alive(pid)], timeout=30)


def test_a_busy_port_is_one_line_naming_it(tmp_path: Path) -> None:
    import socket

    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "fanstack.cli",
                "--data-dir",
                str(tmp_path / "state"),
                "gateway",
                str(MARKETPLACE),
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_with_server_processes_keeps_the_consumers_in_the_parent(tmp_path: Path) -> None:
    from ..chaos.orders import SERVICES, processed

    server = start_server(MARKETPLACE, tmp_path / "state", args=["--workers", "2"])
    try:
        load = OrderLoad(server.url, "r", clients=2).start()
        load.wait_for(40)
        load.stop()
        app = App("marketplace", data_dir=tmp_path / "state")
        try:
            wait_for(
                lambda: all(set(load.acknowledged) <= processed(app, s) for s in SERVICES),
                timeout=60,
            )
        finally:
            app.close()
    finally:
        server.stop()
    assert server.process.returncode == 0
