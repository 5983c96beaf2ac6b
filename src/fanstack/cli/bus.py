"""`fanstack buses | rules | put-events | test-event-pattern | archives | replay | replays |
cancel-replay`: the event bus from the command line."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from fanstack.backends.base import Backend
from fanstack.bus import Bus
from fanstack.bus.catalog import Catalog
from fanstack.bus.delivery import retry_queue
from fanstack.bus.replay import cancel_replay, start_replay
from fanstack.cli.base import emit_json, main, open_store, plain_table, print_table
from fanstack.core.archives import ReplaySpec
from fanstack.core.errors import ValidationException
from fanstack.core.event_pattern import test_event_pattern as matches
from fanstack.core.events import ingress_queue, iso_seconds


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def buses(ctx: click.Context, as_json: bool) -> None:
    """List event buses: rules, archives, events waiting to be routed or retried."""
    with open_store(ctx) as backend:
        catalog = Catalog(backend)
        rows: list[dict[str, Any]] = [
            {
                "name": name,
                "rules": len(catalog.rules(name)),
                "archives": [a.name for a in catalog.archives(name)],
                "to_route": _depth(backend, ingress_queue(name)),
                "to_retry": _depth(backend, retry_queue(name)),
            }
            for name in catalog.buses()
        ]
    if as_json:
        emit_json(rows)
        return
    table = plain_table("bus", "rules", "archives", "to route", "to retry")
    for row in rows:
        table.add_row(
            row["name"],
            str(row["rules"]),
            ", ".join(row["archives"]) or "-",
            str(row["to_route"]),
            str(row["to_retry"]),
        )
    print_table(table)


def _depth(backend: Backend, queue: str) -> int:
    stats = backend.stats(queue)
    return stats.visible + stats.in_flight + stats.delayed


@main.command()
@click.argument("bus", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def rules(ctx: click.Context, bus: str | None, as_json: bool) -> None:
    """List the rules of BUS (default: every bus), with their patterns and targets."""
    with open_store(ctx) as backend:
        catalog = Catalog(backend)
        if bus is not None:
            catalog.require_bus(bus)
        names = [bus] if bus is not None else catalog.buses()
        specs = [rule for name in names for rule in catalog.rules(name)]
    if as_json:
        emit_json([rule.to_dict() for rule in specs])
        return
    table = plain_table("bus", "rule", "state", "event pattern", "targets")
    for rule in specs:
        targets = ", ".join(f"{t.kind}:{t.resource}" for t in rule.targets) or "-"
        state = "ENABLED" if rule.enabled else "DISABLED"
        table.add_row(rule.bus, rule.name, state, rule.event_pattern, targets)
    print_table(table)


@main.command("put-events")
@click.argument("bus")
@click.option("--source", required=True, help="The event's source (not starting with 'aws.').")
@click.option("--detail-type", required=True, help="The event's detail-type.")
@click.option("--detail", required=True, help="The event's detail: a JSON object.")
@click.option("--resource", "resources", multiple=True, help="A resource ARN (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def put_events(
    ctx: click.Context,
    bus: str,
    source: str,
    detail_type: str,
    detail: str,
    resources: tuple[str, ...],
    as_json: bool,
) -> None:
    """Put one event on BUS (durably stored when this returns; routed by a worker)."""
    with open_store(ctx) as backend:
        Catalog(backend).require_bus(bus)
        entry = {
            "source": source,
            "detail_type": detail_type,
            "detail": detail,
            "resources": list(resources),
        }
        result = Bus(bus, lambda: backend).put_events([entry])
    [outcome] = result.entries
    if as_json:
        emit_json(
            {
                "failed_entry_count": result.failed_entry_count,
                "entries": [_entry(outcome)],
            }
        )
    elif outcome.event_id is not None:
        click.echo(outcome.event_id)
    if outcome.event_id is None:
        if not as_json:
            click.echo(f"error: {outcome.error_code}: {outcome.error_message}", err=True)
        ctx.exit(1)


def _entry(outcome: Any) -> dict[str, Any]:
    return {
        "event_id": outcome.event_id,
        "error_code": outcome.error_code,
        "error_message": outcome.error_message,
    }


@main.command("test-event-pattern")
@click.option("--event-pattern", required=True, help="The pattern: a JSON object.")
@click.option("--event", required=True, help="The event: a JSON object.")
@click.pass_context
def test_event_pattern(ctx: click.Context, event_pattern: str, event: str) -> None:
    """Say whether EVENT matches EVENT_PATTERN (exit 0 if it does, 1 if not, 2 if invalid)."""
    try:
        result = matches(event_pattern, event)
    except ValidationException as exc:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(2)
    click.echo(json.dumps({"Result": result}))
    ctx.exit(0 if result else 1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def archives(ctx: click.Context, as_json: bool) -> None:
    """List archives: their bus, pattern, retention and what they hold."""
    with open_store(ctx) as backend:
        catalog = Catalog(backend)
        rows = []
        for spec in catalog.archives():
            count, size = catalog.archive_stats(spec.name)
            rows.append({**spec.to_dict(), "event_count": count, "size_bytes": size})
    if as_json:
        emit_json(rows)
        return
    table = plain_table("archive", "bus", "event pattern", "retention", "events", "bytes")
    for row in rows:
        retention = f"{row['retention_days']} days" if row["retention_days"] else "for ever"
        table.add_row(
            row["name"],
            row["bus"],
            row["event_pattern"] or "(all events)",
            retention,
            str(row["event_count"]),
            str(row["size_bytes"]),
        )
    print_table(table)


@main.command()
@click.argument("archive")
@click.option("--name", required=True, help="A name for the replay (unique).")
@click.option("--start", required=True, help="Start of the window of event times (ISO 8601).")
@click.option("--end", required=True, help="End of the window (ISO 8601, not in the future).")
@click.option("--rule", "rule_names", multiple=True, help="Only to this rule (repeatable).")
@click.option("--no-wait", is_flag=True, help="Start it and return; a worker runs it.")
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Stop waiting after this many seconds (the replay goes on); exit status 1.",
)
@click.pass_context
def replay(
    ctx: click.Context,
    archive: str,
    name: str,
    start: str,
    end: str,
    rule_names: tuple[str, ...],
    no_wait: bool,
    timeout: float | None,
) -> None:
    """Re-send ARCHIVE's events of a time window to its bus.

    A worker replays them (`fanstack run` or `fanstack worker` with the app that declares the
    bus); this command starts the replay and shows its progress until it ends.
    """
    with open_store(ctx) as backend:
        spec = start_replay(
            backend, name, archive, _when(start), _when(end), list(rule_names) or None
        )
        if no_wait:
            click.echo(f"replay {name} started")
            return
        final = _follow(Catalog(backend), spec, timeout)
    click.echo(f"replay {name}: {final.state}, {final.replayed} event(s) re-sent")
    if final.state != "COMPLETED":
        ctx.exit(1)


def _follow(catalog: Catalog, spec: ReplaySpec, timeout: float | None) -> ReplaySpec:
    """Show the replay's progress until it ends (or `timeout` seconds pass)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    progress = Progress(
        TextColumn(f"replay {spec.name}"),
        BarColumn(),
        TextColumn("{task.fields[state]} {task.fields[replayed]} events"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=not sys.stderr.isatty(),
    )
    with progress:
        task = progress.add_task("replay", total=1.0, state=spec.state, replayed=0)
        while True:
            current, _ = catalog.replay_item(spec.name)
            progress.update(
                task,
                completed=current.progress(),
                state=current.state,
                replayed=current.replayed,
            )
            if current.done or (deadline is not None and time.monotonic() > deadline):
                return current
            time.sleep(0.2)


@main.command("cancel-replay")
@click.argument("name")
@click.pass_context
def cancel_replay_command(ctx: click.Context, name: str) -> None:
    """Stop the replay NAME (CANCELLING until its worker stops, then CANCELLED)."""
    with open_store(ctx) as backend:
        replay = cancel_replay(backend, name)
    click.echo(f"replay {name}: {replay.state}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def replays(ctx: click.Context, as_json: bool) -> None:
    """List replays: state, window and progress."""
    with open_store(ctx) as backend:
        specs = Catalog(backend).replays()
    if as_json:
        emit_json([spec.to_dict() for spec in specs])
        return
    table = plain_table("replay", "archive", "state", "window", "replayed", "progress")
    for spec in specs:
        window = f"{iso_seconds(spec.start)} .. {iso_seconds(spec.end)}"
        table.add_row(
            spec.name,
            spec.archive,
            spec.state,
            window,
            str(spec.replayed),
            f"{spec.progress():.0%}",
        )
    print_table(table)


def _when(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()

