"""SIGTERM and SIGINT on every role, as real processes: a graceful stop and exit status 0.

Handlers running at the signal finish within the grace period; past it they are stopped and their
messages handed back at once (not left in flight until their visibility timeout). A process
started with SIGINT ignored, as a shell starts a background job, still stops on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from fanstack import App

from .conftest import free_port, wait_for

APP = textwrap.dedent(
    """
    import json, time
    from pathlib import Path
    from fanstack import App

    app = App("shutdown")
    jobs = app.queue("jobs", visibility_timeout=300)

    @app.consumer(jobs, batch_size=1, concurrency=2, timeout=300)
    def slow(event):
        for record in event["Records"]:
            body = json.loads(record["body"])
            Path(body["dir"], "start-%d" % body["n"]).write_text("")
            time.sleep(body["seconds"])
            Path(body["dir"], "done-%d" % body["n"]).write_text("")
    """
)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_role(
    role: str, app_file: Path, data_dir: Path, grace: float, *, sigint_ignored: bool = False
) -> subprocess.Popen[str]:
    """`fanstack <role> app.py`, its log in a file beside the data dir; returns once it serves."""
    log = (data_dir.parent / f"{role}.log").open("w")
    command = [sys.executable, "-m", "fanstack.cli", "--data-dir", str(data_dir), role]
    command += [str(app_file), "--grace", str(grace)]
    port = free_port()
    if role != "worker":
        command += ["--port", str(port)]
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_ignore_sigint if sigint_ignored else None,
        cwd=data_dir.parent,
    )
    if role != "worker":
        wait_for(lambda: process.poll() is not None or _serving(port))
    else:
        wait_for(lambda: process.poll() is not None or "worker started" in _messages(data_dir))
    assert process.poll() is None, (data_dir.parent / f"{role}.log").read_text()
    return process


def _serving(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _messages(data_dir: Path) -> list[object]:
    return [line.get("message") for line in log_lines(data_dir)]


def log_lines(data_dir: Path) -> list[dict[str, object]]:
    lines: list[dict[str, object]] = []
    for path in data_dir.parent.glob("*.log"):
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
    return lines


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    app_file = tmp_path / "jobs_app.py"
    app_file.write_text(APP)
    work = tmp_path / "work"
    work.mkdir()
    return app_file, tmp_path / "state", work


def send_jobs(data_dir: Path, work: Path, count: int, seconds: float) -> App:
    app = App("shutdown", data_dir=data_dir)
    jobs = app.queue("jobs", visibility_timeout=300)
    for n in range(count):
        jobs.send(json.dumps({"dir": str(work), "n": n, "seconds": seconds}))
    return app


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("role", ["run", "worker"])
def test_running_handlers_finish_and_the_rest_goes_back(
    role: str, signum: int, setup: tuple[Path, Path, Path]
) -> None:
    app_file, data_dir, work = setup
    app = send_jobs(data_dir, work, count=5, seconds=2)
    process = start_role(role, app_file, data_dir, grace=20)
    wait_for(lambda: len(list(work.glob("start-*"))) == 2)
    process.send_signal(signum)
    assert process.wait(timeout=40) == 0
    started = {p.name for p in work.glob("start-*")}
    done = {p.name.replace("done", "start") for p in work.glob("done-*")}
    assert started == done and len(done) >= 2
    stats = app.queue_for("jobs").stats()
    assert (stats.in_flight, stats.visible) == (0, 5 - len(done))
    app.close()
    assert ("stopped" if role == "run" else "worker stopped") in _messages(data_dir)


@pytest.mark.parametrize("role", ["run", "worker"])
def test_past_the_grace_period_messages_go_back_at_once(
    role: str, setup: tuple[Path, Path, Path]
) -> None:
    app_file, data_dir, work = setup
    app = send_jobs(data_dir, work, count=1, seconds=120)
    process = start_role(role, app_file, data_dir, grace=1)
    wait_for(lambda: list(work.glob("start-*")))
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert time.monotonic() - began < 15
    queue = app.queue_for("jobs")
    stats = queue.stats()
    assert (stats.visible, stats.in_flight) == (1, 0)
    # Stopped by the operator, not failed: the interrupted receive is given back.
    (message,) = queue.receive(max_messages=1)
    assert message.receive_count == 1
    app.close()


@pytest.mark.parametrize("role", ["run", "worker"])
def test_a_second_signal_stops_running_handlers_at_once(
    role: str, setup: tuple[Path, Path, Path]
) -> None:
    app_file, data_dir, work = setup
    app = send_jobs(data_dir, work, count=1, seconds=120)
    process = start_role(role, app_file, data_dir, grace=60)
    wait_for(lambda: list(work.glob("start-*")))
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert time.monotonic() - began < 15
    stats = app.queue_for("jobs").stats()
    assert (stats.visible, stats.in_flight) == (1, 0)
    app.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_gateway_stops_cleanly(signum: int, setup: tuple[Path, Path, Path]) -> None:
    app_file, data_dir, _ = setup
    process = start_role("gateway", app_file, data_dir, grace=5)
    process.send_signal(signum)
    assert process.wait(timeout=30) == 0
    assert "stopped" in _messages(data_dir)


@pytest.mark.parametrize("role", ["run", "gateway", "worker"])
def test_a_background_job_ignoring_sigint_stops_on_sigterm(
    role: str, setup: tuple[Path, Path, Path]
) -> None:
    app_file, data_dir, work = setup
    app = send_jobs(data_dir, work, count=1, seconds=1)
    process = start_role(role, app_file, data_dir, grace=20, sigint_ignored=True)
    if role != "gateway":
        wait_for(lambda: list(work.glob("done-*")))
    process.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert process.poll() is None  # Ctrl-C in the shell is not for a background job
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    app.close()
