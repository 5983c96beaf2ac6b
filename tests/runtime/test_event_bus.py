"""The worker role routes a bus's events: functions invoked, HTTP targets retried, replays run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fanstack import App, Target

from ..support.endpoints import Endpoint
from . import handlers
from .conftest import markers, wait_for


def test_a_function_target_is_invoked_asynchronously_with_the_event(
    app: App, work_dir: Path
) -> None:
    noted = app.function(handlers.note_event)
    bus = app.bus("shop")
    bus.rule("note", event_pattern={"detail-type": ["OrderPlaced"]}, targets=[noted])
    app.runtime.start()
    ids = [bus.put_event("shop", "OrderPlaced", {"dir": str(work_dir), "n": n}) for n in range(3)]
    bus.put_event("shop", "OrderCancelled", {"dir": str(work_dir)})
    wait_for(lambda: len(markers(work_dir, "event-")) == 3)
    assert sorted(p.name for p in markers(work_dir, "event-")) == sorted(f"event-{i}" for i in ids)
    event = json.loads((work_dir / f"event-{ids[0]}").read_text())
    assert event["detail-type"] == "OrderPlaced" and event["detail"]["n"] == 0


def test_an_http_target_that_fails_then_recovers_gets_the_event(app: App) -> None:
    endpoint = Endpoint(status=503)
    try:
        bus = app.bus("shop")
        dlq = app.queue("hook-dlq")
        bus.rule(
            "hook",
            event_pattern={"source": ["shop"]},
            targets=[Target(endpoint.destination, dead_letter=dlq)],
        )
        app.runtime.start()
        bus.put_event("shop", "OrderPlaced", {"n": 1})
        wait_for(lambda: len(endpoint.requests) >= 1)
        endpoint.status = 200
        wait_for(lambda: len(endpoint.requests) >= 2)  # retried after its backoff
        time.sleep(0.5)
        assert dlq.stats().visible == 0
        assert all(json.loads(body)["detail"] == {"n": 1} for body in endpoint.requests)
    finally:
        endpoint.close()


def test_the_worker_role_runs_replays(app: App, work_dir: Path) -> None:
    sink = app.queue("sink")
    bus = app.bus("shop")
    bus.rule("to-sink", event_pattern={"source": ["shop"]}, targets=[sink])
    archive = bus.archive("all")
    app.runtime.start()
    began = time.time() - 1
    for n in range(15):
        bus.put_event("shop", "OrderPlaced", {"n": n})
    wait_for(lambda: len(archive.events()) == 15)
    wait_for(lambda: sink.stats().visible == 15)
    sink.purge()
    replay = archive.replay("again", began, time.time())
    final = replay.wait(timeout=30)
    assert final.state == "COMPLETED" and final.replayed == 15
    wait_for(lambda: sink.stats().visible == 15)
    [message] = sink.receive(max_messages=1)
    assert json.loads(message.body)["replay-name"] == "again"
