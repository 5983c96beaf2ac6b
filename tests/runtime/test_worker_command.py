"""`fanstack worker app.py` as a real process: structured logs and graceful shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fanstack import App

from ..support.stores import Store
from .conftest import wait_for

APP = textwrap.dedent(
    """
    import json, logging, time
    from pathlib import Path
    from fanstack import App

    app = App("shutdown")
    jobs = app.queue("jobs", visibility_timeout=120)
    log = logging.getLogger("jobs")

    @app.consumer(jobs, batch_size=1, concurrency=2, timeout=120)
    def slow(event, context):
        for record in event["Records"]:
            body = json.loads(record["body"])
            Path(body["dir"], "start-%d" % body["n"]).write_text(context.aws_request_id)
            log.info("working on %d", body["n"])
            time.sleep(body["seconds"])
            Path(body["dir"], "done-%d" % body["n"]).write_text("")
    """
)


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "jobs_app.py"
    path.write_text(APP)
    return path


def start_worker(app_file: Path, store: Store, grace: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fanstack.cli",
            *store.cli_options(),
            "worker",
            str(app_file),
            "--grace",
            str(grace),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )


def send_jobs(store: Store, work: Path, count: int, seconds: float) -> App:
    app = store.app("shutdown")
    jobs = app.queue("jobs", visibility_timeout=120)
    for n in range(count):
        jobs.send(json.dumps({"dir": str(work), "n": n, "seconds": seconds}))
    return app


def test_sigterm_finishes_running_work_and_returns_the_rest(
    app_file: Path, tmp_path: Path, store: Store
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    app = send_jobs(store, work, count=6, seconds=2)
    worker = start_worker(app_file, store, grace=20)
    wait_for(lambda: len(list(work.glob("start-*"))) == 2)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    started = {p.name for p in work.glob("start-*")}
    done = {p.name.replace("done", "start") for p in work.glob("done-*")}
    assert started == done  # everything that started, finished
    stats = app.queue_for("jobs").stats()
    # Nothing stuck in flight until its 120 s visibility timeout; nothing lost.
    assert stats.in_flight == 0
    assert stats.visible == 6 - len(done)
    app.close()

    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    outcomes = [line for line in lines if line.get("outcome") == "success"]
    assert len(outcomes) == len(done)
    for line in outcomes:
        assert line["function"] == "slow"
        assert line["queue"] == "jobs"
        assert line["message_ids"] and line["receive_counts"] == [1]
        assert line["duration_ms"] >= 2000
        assert line["level"] == "INFO" and "timestamp" in line
    handler_lines = [line for line in lines if line["message"].startswith("working on")]
    assert {line["invocation_id"] for line in handler_lines} == {
        (work / name).read_text() for name in started
    }
    assert all(line["function"] == "slow" for line in handler_lines)


def test_grace_period_over_hands_messages_back_at_once(
    app_file: Path, tmp_path: Path, store: Store
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    app = send_jobs(store, work, count=1, seconds=60)
    worker = start_worker(app_file, store, grace=1)
    wait_for(lambda: list(work.glob("start-*")))
    began = time.monotonic()
    worker.send_signal(signal.SIGINT)
    worker.communicate(timeout=30)
    assert time.monotonic() - began < 15
    stats = app.queue_for("jobs").stats()
    assert (stats.visible, stats.in_flight) == (1, 0)
    app.close()


def test_kill_9_of_the_worker_command_loses_nothing(
    app_file: Path, tmp_path: Path, store: Store
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    app = send_jobs(store, work, count=1, seconds=60)
    worker = start_worker(app_file, store, grace=1)
    wait_for(lambda: list(work.glob("start-*")))
    os.kill(worker.pid, signal.SIGKILL)
    worker.communicate(timeout=10)
    stats = app.queue_for("jobs").stats()
    assert stats.visible + stats.in_flight == 1  # back after its visibility timeout
    app.close()
