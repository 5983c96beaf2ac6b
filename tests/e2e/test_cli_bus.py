"""The event bus from the `fanstack` command, run as a real subprocess over a real data dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fanstack import App

from .test_cli import fanstack

EVENT = {
    "version": "0",
    "id": "e-1",
    "detail-type": "OrderPlaced",
    "source": "com.shop",
    "account": "000000000000",
    "time": "2026-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {"total": 12},
}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A `shop` bus with one rule to a queue and an archive of everything."""
    app = App("cli-bus", data_dir=tmp_path)
    bus = app.bus("shop")
    bus.rule("orders", event_pattern={"source": ["com.shop"]}, targets=[app.queue("orders")])
    bus.archive("everything")
    app.backend  # noqa: B018 - provision the resources now
    app.close()
    return tmp_path


def test_buses_and_rules_list_what_is_declared(data_dir: Path) -> None:
    [bus] = json.loads(fanstack(data_dir, "buses", "--json").stdout)
    assert (bus["name"], bus["rules"], bus["archives"], bus["to_route"]) == (
        "shop",
        1,
        ["everything"],
        0,
    )
    [rule] = json.loads(fanstack(data_dir, "rules", "shop", "--json").stdout)
    assert rule["name"] == "orders" and rule["enabled"] is True
    assert rule["targets"][0]["kind"] == "queue"
    table = fanstack(data_dir, "rules").stdout
    assert "orders" in table and "ENABLED" in table
    missing = fanstack(data_dir, "rules", "nope")
    assert missing.returncode == 1 and "ResourceNotFound" in missing.stderr


def test_put_events_stores_the_event_or_says_why_not(data_dir: Path) -> None:
    done = fanstack(
        data_dir, "put-events", "shop", "--source", "com.shop", "--detail-type", "Ping",
        "--detail", '{"n": 1}',
    )
    assert done.returncode == 0 and len(done.stdout.strip()) == 36  # the event id
    assert json.loads(fanstack(data_dir, "buses", "--json").stdout)[0]["to_route"] == 1
    bad = fanstack(
        data_dir, "put-events", "shop", "--source", "com.shop", "--detail-type", "Ping",
        "--detail", "[1]",
    )
    assert bad.returncode == 1 and "MalformedDetail" in bad.stderr
    no_bus = fanstack(
        data_dir, "put-events", "nope", "--source", "s", "--detail-type", "d", "--detail", "{}"
    )
    assert no_bus.returncode == 1 and "ResourceNotFound" in no_bus.stderr


def test_test_event_pattern_answers_with_its_exit_status(tmp_path: Path) -> None:
    event = json.dumps(EVENT)
    yes = fanstack(tmp_path, "test-event-pattern", "--event-pattern", '{"source": ["com.shop"]}',
                   "--event", event)
    assert (yes.returncode, json.loads(yes.stdout)) == (0, {"Result": True})
    no = fanstack(tmp_path, "test-event-pattern", "--event-pattern",
                  '{"detail": {"total": [{"numeric": [">", 100]}]}}', "--event", event)
    assert (no.returncode, json.loads(no.stdout)) == (1, {"Result": False})
    bad = fanstack(tmp_path, "test-event-pattern", "--event-pattern", '{"source": "x"}',
                   "--event", event)
    assert bad.returncode == 2 and "InvalidEventPattern" in bad.stderr and "source" in bad.stderr


def test_a_replay_started_without_a_worker_can_be_listed_and_cancelled(data_dir: Path) -> None:
    [archive] = json.loads(fanstack(data_dir, "archives", "--json").stdout)
    assert (archive["name"], archive["event_count"]) == ("everything", 0)
    started = fanstack(
        data_dir, "replay", "everything", "--name", "r1", "--start", "2026-01-01T00:00:00Z",
        "--end", "2026-01-02T00:00:00Z", "--no-wait",
    )
    assert started.returncode == 0, started.stderr
    [replay] = json.loads(fanstack(data_dir, "replays", "--json").stdout)
    assert (replay["name"], replay["state"]) == ("r1", "STARTING")
    waited = fanstack(
        data_dir, "replay", "everything", "--name", "r2", "--start", "2026-01-01T00:00:00Z",
        "--end", "2026-01-02T00:00:00Z", "--timeout", "0.5",
    )
    assert waited.returncode == 1 and "STARTING" in waited.stdout  # no worker ran it
    cancelled = fanstack(data_dir, "cancel-replay", "r1")
    assert cancelled.returncode == 0 and "CANCELLED" in cancelled.stdout
    again = fanstack(data_dir, "cancel-replay", "r1")
    assert again.returncode == 1 and "cannot be cancelled" in again.stderr
