"""Kill -9 the worker while it routes a burst of events to five rules: no event is lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fanstack import App
from fanstack.core.events import ingress_queue

from ..support.stores import Store

EVENTS = 3000
RULES = {
    "all": {"source": ["shop"]},
    "big": {"detail": {"total": [{"numeric": [">=", 50]}]}},
    "small": {"detail": {"total": [{"numeric": ["<", 50]}]}},
    "even": {"detail": {"even": [True]}},
    "eu": {"detail": {"market": [{"prefix": "eu-"}]}},
}

APP = """
from fanstack import App
import json, os
app = App("bus-chaos")
bus = app.bus("shop")
RULES = json.loads(os.environ["RULES"])
for name in RULES:
    bus.rule(name, event_pattern=RULES[name], targets=[app.queue("to-" + name)])
"""


def declare(store: Store) -> App:
    app = store.app("bus-chaos")
    bus = app.bus("shop")
    for name, pattern in RULES.items():
        bus.rule(name, event_pattern=pattern, targets=[app.queue("to-" + name)])
    return app


def detail(n: int) -> dict[str, object]:
    return {"n": n, "total": n % 100, "even": n % 2 == 0, "market": "eu-de" if n % 3 else "us"}


def expected(rule: str, n: int) -> bool:
    value = detail(n)
    return {
        "all": True,
        "big": value["total"] >= 50,  # type: ignore[operator]
        "small": value["total"] < 50,  # type: ignore[operator]
        "even": value["even"] is True,
        "eu": str(value["market"]).startswith("eu-"),
    }[rule]


def start_worker(app_file: Path, store: Store) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fanstack.cli", *store.cli_options(), "worker", str(app_file)],
        env={**os.environ, "RULES": json.dumps(RULES)},
        stderr=subprocess.DEVNULL,
        text=True,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 90, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def test_kill_9_mid_routing_loses_no_event_for_any_rule(tmp_path: Path, store: Store) -> None:
    app_file = tmp_path / "bus_app.py"
    app_file.write_text(APP)
    app = declare(store)
    bus = app.buses.declared["shop"]
    ids: dict[str, int] = {}
    for start in range(0, EVENTS, 10):
        result = bus.put_events(
            [
                {"source": "shop", "detail_type": "Order", "detail": detail(n)}
                for n in range(start, start + 10)
            ]
        )
        assert result.failed_entry_count == 0
        for offset, entry in enumerate(result.entries):
            assert entry.event_id is not None
            ids[entry.event_id] = start + offset
    ingress = app.queue_for(ingress_queue("shop"))

    worker = start_worker(app_file, store)
    # Kill it as soon as it is routing: a few leased batches in, most of the burst still to go.
    wait_for(lambda: ingress.stats().visible < EVENTS - 200, every=0.002)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    assert ingress.stats().visible > 0, "the burst was routed before the kill"

    worker = start_worker(app_file, store)
    try:
        wait_for(lambda: (s := ingress.stats()).visible + s.in_flight + s.delayed == 0)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)

    for rule in RULES:
        queue = app.queue_for("to-" + rule)
        seen: set[int] = set()
        while batch := queue.receive(max_messages=10):
            seen.update(ids[json.loads(m.body)["id"]] for m in batch)
            assert queue.delete_batch([m.receipt_handle for m in batch]).ok
        assert seen == {n for n in range(EVENTS) if expected(rule, n)}, rule
    app.close()
