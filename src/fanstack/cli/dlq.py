"""`fanstack dlq list | peek | redrive`: see what failed, look at it, and send it back."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fanstack.cli.base import emit_json, main, nothing_to_show, open_store, plain_table, print_table
from fanstack.cli.messages import message_record
from fanstack.resources import MAX_PEEK


@main.group()
def dlq() -> None:
    """Dead-letter queues: see what failed and send it back."""


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def dlq_list(ctx: click.Context, as_json: bool) -> None:
    """List queues that have a dead-letter queue, with its depth."""
    with open_store(ctx) as backend:
        rows = [
            {
                "queue": spec.name,
                "dead_letter": spec.dead_letter,
                "max_receive_count": spec.max_receive_count,
                "depth": backend.stats(spec.name).dead_letter_depth,
            }
            for spec in backend.list_queues()
            if spec.dead_letter is not None
        ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        nothing_to_show("queues with a dead-letter queue", backend)
        return
    table = plain_table("queue", "dead letter", "max receives", "DLQ depth")
    for row in rows:
        table.add_row(
            str(row["queue"]),
            str(row["dead_letter"]),
            str(row["max_receive_count"]),
            str(row["depth"]),
        )
    print_table(table)


@dlq.command("peek")
@click.argument("queue")
@click.option(
    "--max",
    "max_messages",
    type=click.IntRange(1, MAX_PEEK),
    default=10,
    show_default=True,
    help="Messages shown at most, oldest first.",
)
@click.pass_context
def dlq_peek(ctx: click.Context, queue: str, max_messages: int) -> None:
    """Print the messages QUEUE dead-lettered (one JSON line each), leaving them as they are.

    QUEUE is the source queue, or the dead-letter queue itself. Nothing changes: no receive
    count, no visibility, so a redrive or a consumer of the DLQ finds them as before.
    """
    with open_store(ctx) as backend:
        spec = backend.get_queue(queue)
        target = spec.dead_letter or queue
        messages = backend.peek(target, max_messages)
    for message in messages:
        record = message_record(message)
        record.pop("receipt_handle", None)
        emit_json(record)
    if not messages:
        click.echo(f"no messages in {target}", err=True)


@dlq.command("redrive")
@click.argument("queue")
@click.pass_context
def dlq_redrive(ctx: click.Context, queue: str) -> None:
    """Move the messages QUEUE dead-lettered back to QUEUE, in order."""
    with open_store(ctx) as backend:
        total = backend.stats(queue).dead_letter_depth
        if total is None:
            backend.redrive_dead_letters(queue)  # raises: the queue has no DLQ
            return
        progress = Progress(
            TextColumn(f"redrive {queue}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=not sys.stderr.isatty(),
        )
        with progress:
            task = progress.add_task("redrive", total=total)
            moved = backend.redrive_dead_letters(
                queue, on_moved=lambda count: progress.advance(task, count)
            )
        click.echo(f"moved {moved} message(s) back to {queue}")
