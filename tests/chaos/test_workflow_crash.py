"""Kill -9 the worker in the middle of a Map of 10,000 items and of Parallel fan-outs: every
execution resumes and ends with the output an uninterrupted run gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fanstack import App
from fanstack.workflows.store import JOINS_TABLE, STEP_QUEUE

from ..support.stores import Store

ITEMS = 10_000
FANS = 60
BIG_MAP = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 100,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Add",
                "States": {
                    "Add": {
                        "Type": "Pass",
                        "Parameters": {"v.$": "States.MathAdd($, 1)"},
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    },
}


def chain(branch: int, length: int) -> dict[str, Any]:
    """A branch of `length` Pass states each adding its number, with a 1-second Wait midway."""
    states: dict[str, Any] = {}
    for i in range(length):
        name = f"B{branch}S{i}"
        state: dict[str, Any] = {"Type": "Pass", "Result": i, "ResultPath": f"$.s{i}"}
        if i == length // 2:
            state = {"Type": "Wait", "Seconds": 1}
        if i + 1 < length:
            state["Next"] = f"B{branch}S{i + 1}"
        else:
            state["End"] = True
        states[name] = state
    return {"StartAt": f"B{branch}S0", "States": states}


FAN = {
    "StartAt": "All",
    "States": {
        "All": {"Type": "Parallel", "Branches": [chain(b, 30) for b in range(3)], "End": True}
    },
}

APP = f"""
from fanstack import App
app = App("workflow-chaos")
app.workflow("big-map", {BIG_MAP!r})
app.workflow("fan", {FAN!r})
"""


def declare(store: Store) -> tuple[App, Any, Any]:
    app = store.app("workflow-chaos")
    return app, app.workflow("big-map", BIG_MAP), app.workflow("fan", FAN)


def start_worker(app_file: Path, store: Store) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fanstack.cli", *store.cli_options(), "worker", str(app_file)],
        stderr=subprocess.DEVNULL,
        text=True,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 240, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def expected_fan_output(n: int) -> list[dict[str, Any]]:
    return [{"n": n, **{f"s{i}": i for i in range(30) if i != 15}} for _ in range(3)]


# The resumed run may take most of the 300 s it is given on a slow machine: pytest's deadline
# comes after the test's own.
@pytest.mark.timeout(420)
@pytest.mark.parametrize("backend_kind", ["sqlite"])
def test_kill_9_in_the_middle_of_a_map_of_10000_items(tmp_path: Path, store: Store) -> None:
    app_file = tmp_path / "workflow_app.py"
    app_file.write_text(APP)
    app, big_map, _ = declare(store)
    execution = big_map.start({"items": list(range(ITEMS))}, name="big")
    backend = app.backend
    done_buckets = f"{execution.key}/r#0/bucket/"

    worker = start_worker(app_file, store)
    # Kill it once a few hundred items are in, thousands still to run.
    wait_for(lambda: len(backend.table_scan(JOINS_TABLE, prefix=done_buckets)) >= 2)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    assert execution.describe().status == "RUNNING"

    worker = start_worker(app_file, store)
    try:
        record = execution.wait(timeout=300, interval=0.5)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert record.status == "SUCCEEDED", record
    assert record.output == [{"v": i + 1} for i in range(ITEMS)]
    app.close()


def test_kill_9_in_the_middle_of_parallel_fan_outs(tmp_path: Path, store: Store) -> None:
    app_file = tmp_path / "workflow_app.py"
    app_file.write_text(APP)
    app, _, fan = declare(store)
    executions = [fan.start({"n": n}, name=f"fan-{n}") for n in range(FANS)]

    worker = start_worker(app_file, store)
    steps = app.queue_for(STEP_QUEUE)
    # Kill it with branches half way: their Waits are timers in the store by then.
    wait_for(lambda: steps.stats().delayed >= FANS)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    assert any(e.describe().status == "RUNNING" for e in executions), "all ended before the kill"

    worker = start_worker(app_file, store)
    try:
        records = [e.wait(timeout=300, interval=0.2) for e in executions]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    for n, record in enumerate(records):
        assert record.status == "SUCCEEDED", record
        assert record.output == expected_fan_output(n)
    app.close()


@pytest.mark.parametrize("backend_kind", ["sqlite"])
def test_sigterm_stops_the_worker_gracefully_and_the_next_one_finishes(
    tmp_path: Path, store: Store
) -> None:
    app_file = tmp_path / "workflow_app.py"
    app_file.write_text(APP)
    app, _, fan = declare(store)
    executions = [fan.start({"n": n}, name=f"term-{n}") for n in range(10)]
    worker = start_worker(app_file, store)
    steps = app.queue_for(STEP_QUEUE)
    wait_for(lambda: steps.stats().delayed >= 10)  # every fan-out waiting on its timers
    began = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    assert time.monotonic() - began < 15
    worker = start_worker(app_file, store)
    try:
        records = [e.wait(timeout=120, interval=0.2) for e in executions]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    for n, record in enumerate(records):
        assert (record.status, record.output) == ("SUCCEEDED", expected_fan_output(n))
    app.close()
