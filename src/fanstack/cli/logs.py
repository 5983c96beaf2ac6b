"""`fanstack logs`: read (and follow) the log lines run/gateway/worker keep in their log file.

The file holds JSON lines (`runtime.logs`); shown on a terminal they read as text, piped they
stay JSON. `--function` and `--queue` keep the lines of one function or one queue.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import click

from fanstack.cli.base import console, log_file_of, main, state_of
from fanstack.core.errors import InvalidParameterValue
from fanstack.runtime.logs import render_text

FOLLOW_INTERVAL = 0.25  # seconds between looks for new lines


@main.command()
@click.option("--function", "function_name", default=None, help="Only this function's lines.")
@click.option("--queue", default=None, help="Only the lines about this queue.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing lines as they are written.")
@click.option(
    "--lines",
    "-n",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Show the last N matching lines first (0: all of them).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines even on a terminal.")
@click.pass_context
def logs(
    ctx: click.Context,
    function_name: str | None,
    queue: str | None,
    follow: bool,
    lines: int,
    as_json: bool,
) -> None:
    """Show the log lines of run/gateway/worker, filtered by function or queue."""
    path = _log_file(ctx)
    pretty = console.is_terminal and not as_json

    def show(line: str) -> None:
        if pretty:
            click.echo(render_text(_parsed(line), color=True))
        else:
            click.echo(line.rstrip("\n"))

    with path.open(encoding="utf-8", errors="replace") as stream:
        matching = [
            line for line in _complete_lines(stream) if _matches(line, function_name, queue)
        ]
        for line in matching[-lines:] if lines else matching:
            show(line)
        if not follow:
            return
        try:
            for line in _follow(path, stream):
                if _matches(line, function_name, queue):
                    show(line)
        except KeyboardInterrupt:
            return


def _log_file(ctx: click.Context) -> Path:
    state = state_of(ctx)
    remote = state.store_path() is None
    if remote and not state.log_file and not state.given_data_dir:
        raise InvalidParameterValue(
            "with a NATS backend, run/gateway/worker keep no log file unless started with "
            "--log-file PATH (their lines go to their stderr); pass the same --log-file here"
        )
    path = log_file_of(state, state.data_dir)
    assert path is not None
    if not path.is_file():
        raise InvalidParameterValue(
            f"no log file at {str(path)!r}: fanstack run/gateway/worker write it when started "
            "with this --data-dir (or --log-file)"
        )
    return path


def _complete_lines(stream: TextIO) -> Iterator[str]:
    """The lines written so far (a last line still being written waits for its end)."""
    for line in stream:
        if line.endswith("\n"):
            yield line


def _follow(path: Path, stream: TextIO) -> Iterator[str]:
    """Lines appended from here on, across rotations (the file renamed and started anew)."""
    inode = os.fstat(stream.fileno()).st_ino
    partial = ""
    while True:
        chunk = stream.readline()
        if chunk:
            partial += chunk
            if partial.endswith("\n"):
                yield partial
                partial = ""
            continue
        try:
            current = path.stat()
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_ino != inode or current.st_size < stream.tell()):
            stream = path.open(encoding="utf-8", errors="replace")  # rotated: the new file
            inode = os.fstat(stream.fileno()).st_ino
            continue
        time.sleep(FOLLOW_INTERVAL)


def _parsed(line: str) -> dict[str, Any]:
    """A log line's fields (a line that is not JSON is all message)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        record = None
    return record if isinstance(record, dict) else {"message": line.rstrip("\n")}


def _matches(line: str, function_name: str | None, queue: str | None) -> bool:
    """Whether a line is about the function and the queue asked for (if any)."""
    if function_name is None and queue is None:
        return True
    record = _parsed(line)
    if function_name is not None and record.get("function") != function_name:
        return False
    return queue is None or record.get("queue") == queue
