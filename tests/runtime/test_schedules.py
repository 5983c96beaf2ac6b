"""Schedules in a running app: the worker role fires them into functions, queues, topics, buses
and workflows, and a bus rule fires on its own schedule — on a schedule clock running 60 times
faster than real time (`FANSTACK_SCHEDULER_CLOCK_RATE`), so a minute passes in a second."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from fanstack import App

from . import handlers
from .conftest import markers, wait_for

RATE = 60


@pytest.fixture(autouse=True)
def fast_schedule_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FANSTACK_SCHEDULER_CLOCK_RATE", str(RATE))
    monkeypatch.setenv("FANSTACK_SCHEDULER_CLOCK_ORIGIN", str(time.time()))


def received(app: App, name: str) -> list[Any]:
    found = []
    while batch := app.backend.receive(name, max_messages=10, wait_seconds=0):
        found.extend(json.loads(m.body) for m in batch)
        app.backend.delete_messages(name, [m.receipt_handle for m in batch])
    return found


def test_a_function_target_is_invoked_with_the_input_every_period(
    app: App, work_dir: Path
) -> None:
    tick = app.function(handlers.note_tick)
    app.schedule("ticker", "rate(1 minute)", tick, input={"dir": str(work_dir), "n": 7})
    app.runtime.start()
    wait_for(lambda: len(markers(work_dir, "tick-")) >= 3, timeout=20)
    event = json.loads(markers(work_dir, "tick-")[0].read_text())
    assert event == {"dir": str(work_dir), "n": 7}
    state = app.schedules.get("ticker").state()
    assert state.fired >= 3 and state.next_fire is not None


def test_a_queue_and_a_topic_get_each_occurrence(app: App) -> None:
    ticks = app.queue("ticks")
    fanned = app.queue("fanned")
    topic = app.topic("announcements")
    topic.subscribe(fanned)
    app.schedule("to-queue", "rate(1 minute)", ticks, input="plain text")
    app.schedule("to-topic", "rate(2 minutes)", topic, input={"kind": "report"})
    app.runtime.start()
    wait_for(lambda: ticks.stats().visible >= 4, timeout=20)
    batch = app.backend.receive("ticks", max_messages=10, wait_seconds=0)
    assert {message.body for message in batch} == {"plain text"}
    wait_for(lambda: fanned.stats().visible >= 2, timeout=20)
    note = json.loads(app.backend.receive("fanned", max_messages=1, wait_seconds=0)[0].body)
    assert json.loads(note["Message"]) == {"kind": "report"}


def test_a_workflow_target_starts_one_execution_per_occurrence(app: App) -> None:
    workflow = app.workflow(
        "report", {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
    )
    app.schedule("nightly", "rate(1 minute)", workflow, input={"report": "sales"})
    app.runtime.start()
    wait_for(lambda: len(workflow.executions(status="SUCCEEDED")) >= 3, timeout=30)
    execution = workflow.executions(status="SUCCEEDED")[0]
    assert execution.input == {"report": "sales"} and execution.output == {"report": "sales"}
    fired = app.schedules.get("nightly").state().fired
    time.sleep(0.5)
    assert len(workflow.executions()) <= fired + 1  # one execution per occurrence


def test_a_bus_rule_with_a_schedule_sends_its_targets_the_scheduled_event(app: App) -> None:
    heartbeat = app.queue("heartbeat")
    bus = app.bus("ops")
    rule = bus.rule("every-minute", schedule_expression="rate(1 minute)", targets=[heartbeat])
    app.runtime.start()
    wait_for(lambda: heartbeat.stats().visible >= 2, timeout=30)
    event = received(app, "heartbeat")[0]
    assert event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event"
    assert event["resources"] == [rule.spec.arn] and event["detail"] == {}


def test_a_bus_target_gets_an_event_whose_detail_is_the_input(app: App) -> None:
    audit = app.queue("audit")
    bus = app.bus("ops")
    bus.rule("scheduled", event_pattern={"source": ["fanstack.scheduler"]}, targets=[audit])
    app.schedule("audit", "rate(1 minute)", bus, input={"check": "disk"})
    app.runtime.start()
    wait_for(lambda: audit.stats().visible >= 1, timeout=30)
    event = received(app, "audit")[0]
    assert event["detail-type"] == "Scheduled Event" and event["detail"] == {"check": "disk"}
    schedule = "arn:aws:scheduler:us-east-1:000000000000:schedule/default/audit"
    assert event["resources"] == [schedule]


def test_a_bad_schedule_is_refused_when_declared(app: App) -> None:
    ticks = app.queue("ticks")
    with pytest.raises(Exception, match="one of them must be '\\?'"):
        app.schedule("bad", "cron(0 12 * * * *)", ticks)
    with pytest.raises(Exception, match="flexible_window_minutes"):
        app.schedule("wide", "rate(1 hour)", ticks, flexible_window_minutes=2000)
    with pytest.raises(Exception, match="event_pattern or a schedule_expression"):
        app.bus("ops").rule("neither", targets=[ticks])
