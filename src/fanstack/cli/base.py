"""The `fanstack` command group: its options, and what every command shares.

Every command opens the backend named by `--backend` (default: the embedded SQLite store in
`--data-dir`). A `FanstackError` becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from fanstack.app import DEFAULT_DATA_DIR
from fanstack.backends import open_backend
from fanstack.backends.base import Backend
from fanstack.core.errors import FanstackError

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
log = logging.getLogger("fanstack.cli")


class State:
    """What the group's options chose, handed to every command."""

    def __init__(self, data_dir: str | None, backend_url: str | None) -> None:
        self.given_data_dir = data_dir  # None: the app's own choice (or the default) stands
        self.data_dir = data_dir or DEFAULT_DATA_DIR
        self.backend_url = backend_url


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--data-dir",
    default=None,
    envvar="FANSTACK_DATA_DIR",
    help=f"Where the embedded store keeps its database (default: {DEFAULT_DATA_DIR}, or the "
    "data_dir the app declares).",
)
@click.option(
    "--backend",
    "backend_url",
    default=None,
    envvar="FANSTACK_BACKEND",
    help="Backend URL (default: the embedded SQLite store in --data-dir).",
)
@click.version_option(package_name="fanstack")
@click.pass_context
def main(ctx: click.Context, data_dir: str | None, backend_url: str | None) -> None:
    """fanstack: topics, queues and functions you run yourself."""
    ctx.obj = State(data_dir, backend_url)


@contextmanager
def open_store(ctx: click.Context) -> Iterator[Backend]:
    """Open the chosen backend; turn fanstack errors into one line and exit status 1."""
    state: State = ctx.find_object(State)  # type: ignore[assignment]
    backend: Backend | None = None
    try:
        backend = open_backend(state.backend_url, data_dir=state.data_dir)
        yield backend
    except FanstackError as exc:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(1)
    finally:
        if backend is not None:
            backend.close()


def plain_table(*headers: str) -> Table:
    """A table whose cells never wrap, so names stay whole (and greppable) at any width."""
    table = Table()
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="ignore")
    return table


def print_table(table: Table) -> None:
    """Print a table; piped (no terminal to fit), at its full width rather than rich's 80
    columns, so no cell is cut short for `grep` or a file."""
    if not console.is_terminal:
        measured = Measurement.get(console, console.options.update(max_width=10_000), table)
        table.width = measured.maximum
        console.print(table, crop=False, width=measured.maximum)
        return
    console.print(table)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, separators=(",", ":"), default=str))
