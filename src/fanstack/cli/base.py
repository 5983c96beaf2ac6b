"""The `fanstack` command group: its options, and what every command shares.

Every command opens the backend named by `--backend` (default: the embedded SQLite store in
`--data-dir`). The global options (`--data-dir`, `--backend`, `--log-format`, `--log-level`,
`--log-file`, `--debug`) are accepted before or after the subcommand. Any error becomes one
line on stderr and exit status 1 (`--debug` adds the traceback).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from fanstack.app import DEFAULT_DATA_DIR
from fanstack.backends import open_backend
from fanstack.backends.base import Backend
from fanstack.core.errors import FanstackError, InvalidParameterValue
from fanstack.runtime.logs import LOG_FORMATS, LOG_LEVELS

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
log = logging.getLogger("fanstack.cli")
LOG_FILE = Path("logs") / "fanstack.log"  # the log file of run/gateway/worker, in the data dir


class State:
    """What the global options chose, handed to every command."""

    def __init__(self) -> None:
        self.given_data_dir: str | None = None  # None: the app's own choice (or the default)
        self.backend_url: str | None = None
        self.log_format: str | None = None  # None: text on a terminal, JSON otherwise
        self.log_level: str = "info"
        self.log_file: str | None = None
        self.debug = False

    @property
    def data_dir(self) -> str:
        """The data dir named on the command line, or the default."""
        return self.given_data_dir or DEFAULT_DATA_DIR

    def store_path(self) -> Path | None:
        """The SQLite data dir the options name (None for another backend)."""
        url = self.backend_url
        if url is None or url in ("sqlite", "sqlite://"):
            return Path(self.data_dir)
        if url.startswith("sqlite://"):
            return Path(url[len("sqlite://") :].split("?", 1)[0] or self.data_dir)
        return None


def _remember(attribute: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            setattr(ctx.ensure_object(State), attribute, value)

    return callback


def _global_options(*, envvars: bool) -> list[click.Parameter]:
    """The options every command takes; the group's read the environment too."""

    def env(name: str) -> str | None:
        return name if envvars else None

    return [
        click.Option(
            ["--data-dir"],
            envvar=env("FANSTACK_DATA_DIR"),
            expose_value=False,
            callback=_remember("given_data_dir"),
            help=f"Where the embedded store keeps its database (default: {DEFAULT_DATA_DIR}, "
            "or the data_dir the app declares).",
        ),
        click.Option(
            ["--backend", "backend_url"],
            envvar=env("FANSTACK_BACKEND"),
            expose_value=False,
            callback=_remember("backend_url"),
            help="Backend URL (default: the embedded SQLite store in --data-dir).",
        ),
        click.Option(
            ["--log-format"],
            type=click.Choice(LOG_FORMATS),
            envvar=env("FANSTACK_LOG_FORMAT"),
            expose_value=False,
            callback=_remember("log_format"),
            help="Log lines as text or JSON (default: text on a terminal, JSON otherwise).",
        ),
        click.Option(
            ["--log-level"],
            type=click.Choice(LOG_LEVELS, case_sensitive=False),
            envvar=env("FANSTACK_LOG_LEVEL"),
            expose_value=False,
            callback=_remember("log_level"),
            help="The least severe log lines shown (default: info).",
        ),
        click.Option(
            ["--log-file"],
            expose_value=False,
            callback=_remember("log_file"),
            help="Where run/gateway/worker keep their JSON log lines for `fanstack logs` "
            f"(default: DATA_DIR/{LOG_FILE}; none for a NATS backend unless given).",
        ),
        click.Option(
            ["--debug"],
            is_flag=True,
            default=None,
            expose_value=False,
            callback=_remember("debug"),
            help="Show the full traceback of an error.",
        ),
    ]


class FanstackCommand(click.Command):
    """A command that also takes the global options after its name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_options(envvars=False))


class FanstackGroup(click.Group):
    """A group whose commands and subgroups take the global options; the top one reports any
    error as one line."""

    command_class = FanstackCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_options(envvars=False))

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.parent is not None:
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as exc:
            report(exc, debug=ctx.ensure_object(State).debug)
            ctx.exit(1)


class _TopGroup(FanstackGroup):
    """The `fanstack` group itself: its global options read the environment too."""

    group_class = FanstackGroup

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        click.Group.__init__(self, *args, **kwargs)
        self.params.extend(_global_options(envvars=True))


def report(exc: BaseException, *, debug: bool) -> None:
    """An error as one line on stderr (with the traceback before it under `--debug`)."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    message = " ".join(str(exc).split()) or "(no message)"
    hint = "" if debug or isinstance(exc, FanstackError) else " (--debug shows the traceback)"
    click.echo(f"error: {type(exc).__name__}: {message}{hint}", err=True)


@click.group(cls=_TopGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fanstack")
@click.pass_context
def main(ctx: click.Context) -> None:
    """fanstack: topics, queues and functions you run yourself."""
    ctx.ensure_object(State)


def state_of(ctx: click.Context) -> State:
    """The global options' choices."""
    return ctx.ensure_object(State)


@contextmanager
def open_store(ctx: click.Context) -> Iterator[Backend]:
    """Open the chosen backend (an SQLite one only if its data dir exists: a mistyped
    --data-dir is an error, not a new empty store)."""
    state = state_of(ctx)
    path = state.store_path()
    if path is not None and not path.is_dir():
        raise InvalidParameterValue(
            f"no data dir {str(path)!r}: check --data-dir, or start the app once "
            "(fanstack run app.py) to create its store"
        )
    backend = open_backend(state.backend_url, data_dir=state.data_dir)
    try:
        yield backend
    finally:
        backend.close()


def nothing_to_show(what: str, backend: Backend, hint: str = "") -> None:
    """Say that the store holds none of `what`, rather than print an empty table."""
    click.echo(f"no {what} in {backend.url}{hint}", err=True)


def plain_table(*headers: str) -> Table:
    """A table whose cells never wrap, so names stay whole (and greppable)."""
    table = Table(pad_edge=False)
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="ignore")
    return table


def print_table(table: Table) -> None:
    """Print a table at the terminal's width if it fits, else (and when piped) at its full
    width: a cell is never cut short, for the eye, `grep` or a file."""
    measured = Measurement.get(console, console.options.update(max_width=10_000), table)
    if console.is_terminal and measured.maximum <= console.width:
        console.print(table)
        return
    table.width = measured.maximum
    console.print(table, crop=False, width=measured.maximum, soft_wrap=True)


def emit_json(value: Any) -> None:
    """One compact JSON document on stdout."""
    click.echo(json.dumps(value, separators=(",", ":"), default=str))


def log_file_of(state: State, data_dir: str | os.PathLike[str] | None) -> Path | None:
    """Where this process keeps its log lines: `--log-file`, else the data dir's (when the
    state lives there: not for a NATS backend without an explicit --data-dir)."""
    if state.log_file:
        return Path(state.log_file)
    if data_dir is None:
        return None
    return Path(data_dir) / LOG_FILE
