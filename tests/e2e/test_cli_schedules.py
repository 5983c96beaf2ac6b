"""Schedules from the `fanstack` command, run as a real subprocess over a real data dir."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fanstack import App
from fanstack.core.events import iso_seconds
from fanstack.core.schedule_expression import parse_schedule_expression
from fanstack.schedules.store import ScheduleState, ScheduleStore

from .test_cli import fanstack

LAUNCHED_AT = datetime(2020, 1, 1, tzinfo=UTC).timestamp()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Five schedules on a `ticks` queue: a rate, a cron in New York, a one-time one still to
    come, a one-time one that has fired (done), and a disabled rate."""
    monkeypatch.delenv("COLUMNS", raising=False)  # piped: the table is printed whole anyway
    app = App("cli-schedules", data_dir=tmp_path)
    ticks = app.queue("ticks")
    app.schedule("every-5-min", "rate(5 minutes)", ticks, input={"kind": "tick"})
    app.schedule("ny-morning", "cron(0 9 * * ? *)", ticks, timezone="America/New_York")
    app.schedule("launch", "at(2099-01-01T00:00:00)", ticks, timezone="Europe/Paris")
    app.schedule("launched", "at(2020-01-01T00:00:00)", ticks)
    app.schedule("paused", "rate(1 hour)", ticks, enabled=False)
    store = ScheduleStore(app.backend)
    created = store.state("launched").created  # as the scheduler leaves it once it has fired
    store.save_state(
        "launched", ScheduleState(created=created, last_fire=LAUNCHED_AT, fired=1, done=True)
    )
    app.close()
    return tmp_path


def listed(data_dir: Path) -> dict[str, dict[str, Any]]:
    result = fanstack(data_dir, "schedules", "--json")
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def expected_fires(name: str, data_dir: Path, expression: str, zone: str) -> list[str]:
    """The next three fire times `fanstack schedules` should show now, computed directly."""
    app = App("cli-schedules", data_dir=data_dir)
    created = ScheduleStore(app.backend).state(name).created
    app.close()
    fires = parse_schedule_expression(expression).fire_times(
        datetime.now(UTC), zone, 3, start=datetime.fromtimestamp(created, UTC)
    )
    return [iso_seconds(fire.timestamp()) for fire in fires]


def around(compute: Callable[[], list[str]], run: Callable[[], list[str]]) -> None:
    """`run()` shows what `compute()` gives just before or just after it (a fire may fall due
    while the command runs)."""
    before = compute()
    shown = run()
    assert shown in (before, compute())


def test_schedules_lists_every_schedule_with_its_next_fire_times(data_dir: Path) -> None:
    rows: dict[str, dict[str, Any]] = {}

    def run() -> list[str]:
        rows.update(listed(data_dir))
        return list(rows["every-5-min"]["next_fire_times"])

    around(lambda: expected_fires("every-5-min", data_dir, "rate(5 minutes)", "UTC"), run)
    assert sorted(rows) == ["every-5-min", "launch", "launched", "ny-morning", "paused"]
    rate = rows["every-5-min"]
    assert (rate["expression"], rate["timezone"], rate["state"], rate["target"]) == (
        "rate(5 minutes)", "UTC", "ENABLED", "queue:ticks",
    )  # fmt: skip
    moments = [datetime.fromisoformat(t) for t in rate["next_fire_times"]]
    assert moments == sorted(moments) and moments[0] > datetime.now(UTC).replace(microsecond=0)
    assert [(b - a).total_seconds() for a, b in pairwise(moments)] == [300, 300]

    morning = rows["ny-morning"]
    assert morning["timezone"] == "America/New_York"
    around(
        lambda: expected_fires("ny-morning", data_dir, "cron(0 9 * * ? *)", "America/New_York"),
        lambda: list(listed(data_dir)["ny-morning"]["next_fire_times"]),
    )
    new_york = ZoneInfo("America/New_York")
    local = [datetime.fromisoformat(t).astimezone(new_york) for t in morning["next_fire_times"]]
    assert [(t.hour, t.minute) for t in local] == [(9, 0)] * 3

    assert rows["launch"]["next_fire_times"] == ["2098-12-31T23:00:00Z"]  # midnight in Paris
    done = rows["launched"]
    assert (done["next_fire_times"], done["last_fire"], done["fired"], done["skipped"]) == (
        [], "2020-01-01T00:00:00Z", 1, 0,
    )  # fmt: skip
    assert (rows["paused"]["state"], rows["paused"]["next_fire_times"]) == ("DISABLED", [])


def test_the_table_shows_names_states_and_times_in_utc(data_dir: Path) -> None:
    result = fanstack(data_dir, "schedules")
    assert result.returncode == 0, result.stderr
    table = result.stdout
    assert "next fires (UTC)" in table and "last fire (UTC)" in table
    lines = {line.split("│")[1].strip(): line for line in table.splitlines() if "│" in line}
    assert {"every-5-min", "ny-morning", "launch", "launched", "paused"} <= set(lines)
    assert "America/New_York" in lines["ny-morning"] and "queue:ticks" in lines["ny-morning"]
    assert "2098-12-31T23:00:00Z" in lines["launch"] and "ENABLED" in lines["launch"]
    assert "DISABLED" in lines["paused"]
    assert "2020-01-01T00:00:00Z" in lines["launched"]


def test_disable_and_enable_change_the_state_and_it_persists(data_dir: Path) -> None:
    disabled = fanstack(data_dir, "schedule", "disable", "ny-morning")
    assert (disabled.returncode, disabled.stdout.strip()) == (0, "schedule ny-morning: DISABLED")
    enabled = fanstack(data_dir, "schedule", "enable", "paused")
    assert (enabled.returncode, enabled.stdout.strip()) == (0, "schedule paused: ENABLED")

    rows = listed(data_dir)
    assert (rows["ny-morning"]["state"], rows["ny-morning"]["next_fire_times"]) == ("DISABLED", [])
    assert rows["paused"]["state"] == "ENABLED" and len(rows["paused"]["next_fire_times"]) == 3
    assert "DISABLED" in next(
        line for line in fanstack(data_dir, "schedules").stdout.splitlines() if "ny-morning" in line
    )

    again = fanstack(data_dir, "schedule", "enable", "ny-morning")
    assert again.returncode == 0
    assert listed(data_dir)["ny-morning"]["state"] == "ENABLED"


def test_an_unknown_schedule_is_one_line_and_exit_one(data_dir: Path) -> None:
    for verb in ("enable", "disable"):
        missing = fanstack(data_dir, "schedule", verb, "nope")
        assert missing.returncode == 1
        assert missing.stderr.strip() == "error: ResourceNotFound: Schedule nope does not exist."
        assert missing.stdout == ""


def test_an_empty_data_dir_has_no_schedules(tmp_path: Path) -> None:
    assert fanstack(tmp_path, "schedules", "--json").stdout.strip() == "[]"
