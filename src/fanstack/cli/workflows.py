"""`fanstack workflows | start | executions | execution | validate-workflow |
send-task-success | send-task-failure | send-task-heartbeat`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from fanstack.cli.base import emit_json, main, open_store, plain_table, print_table
from fanstack.core.asl.definition import parse_definition
from fanstack.core.errors import InvalidDefinition
from fanstack.core.events import iso_seconds
from fanstack.workflows import callbacks
from fanstack.workflows.store import WORKFLOWS_TABLE, ExecutionRecord, Store, execution_key
from fanstack.workflows.workflow import Execution, Workflow


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def workflows(ctx: click.Context, as_json: bool) -> None:
    """List workflows and how many of their executions are in each status."""
    with open_store(ctx) as backend:
        store = Store(backend)
        rows = []
        for item in backend.table_scan(WORKFLOWS_TABLE, limit=10_000):
            counts: dict[str, int] = {}
            for record in store.executions(item.key):
                counts[record.status] = counts.get(record.status, 0) + 1
            rows.append({"name": item.key, "type": item.value["type"], "executions": counts})
    if as_json:
        emit_json(rows)
        return
    table = plain_table("workflow", "type", "executions")
    for row in rows:
        counts_text = " ".join(f"{k.lower()}={v}" for k, v in sorted(row["executions"].items()))
        table.add_row(row["name"], row["type"], counts_text or "-")
    print_table(table)


@main.command()
@click.argument("workflow")
@click.option("--input", "input_text", default="{}", help="The execution's input: JSON.")
@click.option("--name", default=None, help="The execution's name (unique per workflow).")
@click.pass_context
def start(ctx: click.Context, workflow: str, input_text: str, name: str | None) -> None:
    """Start an execution of WORKFLOW; prints its ARN (a worker runs it)."""
    try:
        value = json.loads(input_text)
    except ValueError as exc:
        raise click.BadParameter(f"--input is not JSON: {exc}") from None
    with open_store(ctx) as backend:
        item = backend.table_get(WORKFLOWS_TABLE, workflow)
        if item is None:
            click.echo(f"error: StateMachineDoesNotExist: no workflow {workflow!r}", err=True)
            ctx.exit(1)
        machine = parse_definition(item.value["definition"])
        execution = Workflow(workflow, machine, item.value["type"], lambda: backend).start(
            value, name=name
        )
        click.echo(execution.arn)


@main.command()
@click.argument("workflow")
@click.option("--status", default=None, help="Only executions in this status (e.g. FAILED).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def executions(ctx: click.Context, workflow: str, status: str | None, as_json: bool) -> None:
    """List the executions of WORKFLOW."""
    with open_store(ctx) as backend:
        records = [
            r for r in Store(backend).executions(workflow) if status is None or r.status == status
        ]
    if as_json:
        emit_json([{**r.to_dict(), "arn": r.arn} for r in records])
        return
    table = plain_table("execution", "status", "started", "took", "error")
    for record in records:
        took = f"{record.stop - record.start:.2f}s" if record.stop is not None else "-"
        started = iso_seconds(record.start)
        table.add_row(record.name, record.status, started, took, record.error or "")
    print_table(table)


@main.command()
@click.argument("arn")
@click.option("--json", "as_json", is_flag=True, help="The raw history, as JSON.")
@click.pass_context
def execution(ctx: click.Context, arn: str, as_json: bool) -> None:
    """Show an execution (its ARN, or WORKFLOW:NAME): a tree of its states with timings."""
    key = arn if arn.count(":") == 1 else execution_key(arn)
    with open_store(ctx) as backend:
        run = Execution(backend, key)
        record = run.describe()
        history = run.history()
    if as_json:
        emit_json({"execution": {**record.to_dict(), "arn": record.arn}, "events": history})
        return
    click.echo(_summary(record))
    for line in tree_lines(history):
        click.echo(line)


def _summary(record: ExecutionRecord) -> str:
    took = f" in {record.stop - record.start:.3f}s" if record.stop is not None else ""
    text = f"{record.arn}\n{record.status}{took}"
    if record.error:
        text += f": {record.error}: {record.cause}"
    return text


def tree_lines(history: list[dict[str, Any]]) -> list[str]:
    """Each state entered, indented by branch and item, with its time and any error."""
    lines: list[str] = []
    entered: dict[tuple[str, str], float] = {}
    for event in history:
        kind, step = event["type"], str(event.get("step", ""))
        frame = step.rpartition("#")[0]
        depth = frame.count("/")
        label = _frame_label(frame)
        if kind.endswith("StateEntered"):
            entered[(frame, event["name"])] = event["timestamp"]
        elif kind.endswith("StateExited"):
            began = entered.pop((frame, event["name"]), event["timestamp"])
            took = (event["timestamp"] - began) * 1000
            state_type = kind.removesuffix("StateExited")
            lines.append(f"{'  ' * depth}{label}{event['name']} ({state_type}) {took:.0f} ms")
        elif kind in ("TaskFailed", "ExecutionFailed"):
            lines.append(
                f"{'  ' * depth}{label}! {kind}: {event.get('error')}: {event.get('cause')}"
            )
    return lines


def _frame_label(frame: str) -> str:
    last = frame.rsplit("/", 1)[-1]
    if last.startswith("b") and "/" in frame:
        return f"[branch {last[1:]}] "
    if last.startswith("m") and "/" in frame:
        return f"[item {last[1:]}] "
    return ""


@main.command("send-task-success")
@click.option("--task-token", required=True, help="The token the task handed out.")
@click.option("--task-output", required=True, help="The task's output: JSON.")
@click.pass_context
def send_task_success(ctx: click.Context, task_token: str, task_output: str) -> None:
    """Answer a task waiting for its token: it succeeded with TASK_OUTPUT."""
    try:
        output = json.loads(task_output)
    except ValueError as exc:
        raise click.BadParameter(f"--task-output is not JSON: {exc}") from None
    with open_store(ctx) as backend:
        callbacks.send_task_success(backend, task_token, output)


@main.command("send-task-failure")
@click.option("--task-token", required=True, help="The token the task handed out.")
@click.option("--error", default=None, help="The error name.")
@click.option("--cause", default=None, help="What went wrong.")
@click.pass_context
def send_task_failure(
    ctx: click.Context, task_token: str, error: str | None, cause: str | None
) -> None:
    """Answer a task waiting for its token: it failed."""
    with open_store(ctx) as backend:
        callbacks.send_task_failure(backend, task_token, error, cause)


@main.command("send-task-heartbeat")
@click.option("--task-token", required=True, help="The token the task handed out.")
@click.pass_context
def send_task_heartbeat(ctx: click.Context, task_token: str) -> None:
    """Tell a task waiting for its token that its work goes on (resets HeartbeatSeconds)."""
    with open_store(ctx) as backend:
        callbacks.send_task_heartbeat(backend, task_token)


@main.command("validate-workflow")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def validate_workflow(path: Path) -> None:
    """Check an Amazon States Language definition (JSON); exit 1 naming what is wrong."""
    try:
        machine = parse_definition(path.read_text())
    except InvalidDefinition as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(f"valid: {len(machine.definition['States'])} state(s), starts at {machine.start_at}")

