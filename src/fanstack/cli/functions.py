"""`fanstack functions | invoke`: an app's functions, and running one of them once."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from fanstack.app import App
from fanstack.cli.base import emit_json, main, plain_table, print_table, state_of
from fanstack.cli.serving import load, start_logging
from fanstack.core.errors import FunctionDoesNotExist, FunctionError, InvalidParameterValue


@main.command()
@click.argument("app_reference", metavar="APP")
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def functions(ctx: click.Context, app_reference: str, as_json: bool) -> None:
    """List APP's functions: timeout, memory, concurrency and the queues that feed them."""
    app = load(ctx, app_reference, open_store=False)
    rows = _rows(app)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(f"{app_reference} declares no functions", err=True)
        return
    table = plain_table("function", "timeout", "memory", "concurrency", "fed by")
    for row in rows:
        table.add_row(
            row["name"],
            f"{row['timeout']:g}s",
            "-" if row["memory_mb"] is None else f"{row['memory_mb']} MB",
            str(row["concurrency"]),
            ", ".join(f"{c['queue']} (batch {c['batch_size']})" for c in row["consumers"]) or "-",
        )
    print_table(table)


def _rows(app: App) -> list[dict[str, Any]]:
    rows = []
    for name, function in sorted(app.functions.items()):
        spec = function.spec
        rows.append(
            {
                "name": name,
                "timeout": spec.timeout,
                "memory_mb": spec.memory_mb,
                "concurrency": spec.concurrency,
                "retry_attempts": spec.retry_attempts,
                "async_queue": spec.async_queue,
                "consumers": [
                    {"queue": c.queue, "batch_size": c.batch_size, "batch_window": c.batch_window}
                    for c in app.consumers
                    if c.function == name
                ],
            }
        )
    return rows


@main.command()
@click.argument("app_reference", metavar="APP")
@click.argument("function_name", metavar="FUNCTION")
@click.option(
    "--payload",
    default="{}",
    show_default=True,
    help="The event, as JSON (`-` reads standard input).",
)
@click.pass_context
def invoke(ctx: click.Context, app_reference: str, function_name: str, payload: str) -> None:
    """Run APP's FUNCTION once on --payload in a worker, and print its result as JSON.

    A function that fails prints its error as one line and exits 1 (--debug: its traceback).
    """
    state = state_of(ctx)
    event = _payload(sys.stdin.read() if payload == "-" else payload)
    start_logging(state)
    app = load(ctx, app_reference)
    start_logging(state, app)
    try:
        function = app.functions.get(function_name)
        if function is None:
            declared = ", ".join(sorted(app.functions)) or "none"
            raise FunctionDoesNotExist(
                f"function {function_name!r} is not declared in {app_reference} "
                f"(declared: {declared})"
            )
        try:
            result = function.invoke(event)
        except FunctionError as error:
            if state.debug and error.stack_trace:
                click.echo("".join(error.stack_trace).rstrip(), err=True)
            raise
    finally:
        app.close()
    emit_json(result)


def _payload(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidParameterValue(f"--payload is not JSON: {exc}") from exc
