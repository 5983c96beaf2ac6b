"""`fanstack schedules | schedule enable | schedule disable`: schedules from the command line.

Times are shown in UTC (ISO 8601, `Z`), whatever the schedule's own time zone, so one column
reads the same for every row; the zone a cron or at expression is read in has its own column.
"""

from __future__ import annotations

from typing import Any

import click

from fanstack.backends.base import Backend
from fanstack.cli.base import emit_json, main, open_store, plain_table, print_table
from fanstack.core.events import iso_seconds
from fanstack.core.schedules import ScheduleSpec
from fanstack.schedules import Schedule
from fanstack.schedules.store import ScheduleState, ScheduleStore

NEXT_FIRE_COUNT = 3


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def schedules(ctx: click.Context, as_json: bool) -> None:
    """List schedules: expression, time zone, state, target, next fires and what has fired."""
    with open_store(ctx) as backend:
        store = ScheduleStore(backend)
        states = store.states()
        rows = [
            _row(backend, spec, states.get(spec.name) or store.state(spec.name))
            for spec in sorted(store.schedules(), key=lambda spec: spec.name)
        ]
    if as_json:
        emit_json(rows)
        return
    table = plain_table(
        "schedule", "expression", "time zone", "state", "target", "next fires (UTC)",
        "last fire (UTC)", "fired", "skipped",
    )  # fmt: skip
    for row in rows:
        table.add_row(
            row["name"],
            row["expression"],
            row["timezone"],
            row["state"],
            row["target"],
            "\n".join(row["next_fire_times"]) or "-",
            row["last_fire"] or "-",
            str(row["fired"]),
            str(row["skipped"]),
        )
    print_table(table)


def _row(backend: Backend, spec: ScheduleSpec, state: ScheduleState) -> dict[str, Any]:
    """One schedule as the table and `--json` show it (times as ISO 8601 in UTC)."""
    return {
        "name": spec.name,
        "expression": spec.expression,
        "timezone": spec.timezone,
        "state": spec.state,
        "target": f"{spec.target.kind}:{spec.target.resource}",
        "next_fire_times": _next_fires(backend, spec, state),
        "last_fire": None if state.last_fire is None else iso_seconds(state.last_fire),
        "fired": state.fired,
        "skipped": state.skipped,
    }


def _next_fires(backend: Backend, spec: ScheduleSpec, state: ScheduleState) -> list[str]:
    """When it fires next: nothing if disabled (it does not fire) or done (it never will)."""
    if not spec.enabled or state.done:
        return []
    fires = Schedule(spec.name, lambda: backend).next_fire_times(NEXT_FIRE_COUNT)
    return [iso_seconds(fire.timestamp()) for fire in fires]


@main.group()
def schedule() -> None:
    """One schedule: enable or disable it."""


@schedule.command("enable")
@click.argument("name")
@click.pass_context
def schedule_enable(ctx: click.Context, name: str) -> None:
    """Let schedule NAME fire again, from now on (what fell due while disabled is not owed)."""
    _switch(ctx, name, enabled=True)


@schedule.command("disable")
@click.argument("name")
@click.pass_context
def schedule_disable(ctx: click.Context, name: str) -> None:
    """Stop schedule NAME firing until it is enabled (it keeps its counts)."""
    _switch(ctx, name, enabled=False)


def _switch(ctx: click.Context, name: str, *, enabled: bool) -> None:
    """Enable or disable a schedule (ResourceNotFound, exit 1, if there is none) and say so."""
    with open_store(ctx) as backend:
        handle = Schedule(name, lambda: backend)
        if enabled:
            handle.enable()
        else:
            handle.disable()
        state = handle.describe().state
    click.echo(f"schedule {name}: {state}")
