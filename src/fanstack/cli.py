"""The `fanstack` command: inspect and drive topics and queues in a data dir or backend.

Every command opens the backend named by `--backend` (default: the embedded SQLite store in
`--data-dir`). A `FanstackError` becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fanstack.app import DEFAULT_DATA_DIR, App
from fanstack.backends import open_backend
from fanstack.backends.base import Backend, PublishRequest, QueueStats, new_message_id
from fanstack.core.errors import FanstackError, InvalidAttributeValue
from fanstack.core.message import MessageAttribute, OutgoingMessage, ReceivedMessage, to_attributes
from fanstack.gateway.limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    ServerLimits,
)
from fanstack.loader import load_app
from fanstack.runtime.logs import configure_logging
from fanstack.runtime.shutdown import ShutdownSignals

F = TypeVar("F", bound=Callable[..., Any])

_console = Console()
log = logging.getLogger("fanstack.cli")


class _State:
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
    ctx.obj = _State(data_dir, backend_url)


@contextmanager
def _backend(ctx: click.Context) -> Iterator[Backend]:
    """Open the chosen backend; turn fanstack errors into one line and exit status 1."""
    state: _State = ctx.find_object(_State)  # type: ignore[assignment]
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


def _table(*headers: str) -> Table:
    """A table whose cells never wrap, so names stay whole (and greppable) at any width."""
    table = Table()
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="ignore")
    return table


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(value, separators=(",", ":"), default=str))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def topics(ctx: click.Context, as_json: bool) -> None:
    """List topics and their subscriptions."""
    with _backend(ctx) as backend:
        rows: list[dict[str, Any]] = []
        for topic in backend.list_topics():
            subscriptions = backend.list_subscriptions(topic.name)
            rows.append(
                {
                    "name": topic.name,
                    "fifo": topic.fifo,
                    "subscriptions": [
                        {
                            "queue": s.queue,
                            "raw": s.raw,
                            "filter_scope": s.filter_scope,
                            "filter_policy": json.loads(s.filter_policy)
                            if s.filter_policy
                            else None,
                        }
                        for s in subscriptions
                    ],
                }
            )
    if as_json:
        _emit_json(rows)
        return
    table = _table("topic", "fifo", "subscription", "delivery", "filter policy")
    for row in rows:
        entries: list[dict[str, Any] | None] = row["subscriptions"] or [None]
        for index, sub in enumerate(entries):
            table.add_row(
                row["name"] if index == 0 else "",
                ("yes" if row["fifo"] else "no") if index == 0 else "",
                sub["queue"] if sub else "-",
                ("raw" if sub["raw"] else "enveloped") if sub else "",
                _policy_text(sub) if sub else "",
            )
    _console.print(table)


def _policy_text(subscription: dict[str, Any]) -> str:
    policy = subscription["filter_policy"]
    if policy is None:
        return "(everything)"
    scope = "body " if subscription["filter_scope"] == "MessageBody" else ""
    return scope + json.dumps(policy, separators=(",", ":"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def queues(ctx: click.Context, as_json: bool) -> None:
    """List queues with their depths, in-flight counts, oldest age and DLQ depth."""
    with _backend(ctx) as backend:
        stats = [(spec, backend.stats(spec.name)) for spec in backend.list_queues()]
    if as_json:
        _emit_json(
            [
                {**s.to_dict(), "fifo": spec.fifo, "dead_letter": spec.dead_letter}
                for spec, s in stats
            ]
        )
        return
    table = _table("queue", "visible", "in flight", "delayed", "oldest", "dead letter", "DLQ depth")
    for spec, s in stats:
        table.add_row(
            spec.name,
            str(s.visible),
            str(s.in_flight),
            str(s.delayed),
            _age(s),
            spec.dead_letter or "-",
            "-" if s.dead_letter_depth is None else str(s.dead_letter_depth),
        )
    _console.print(table)


def _age(stats: QueueStats) -> str:
    return "-" if stats.oldest_age is None else f"{stats.oldest_age:.1f}s"


def _parse_attributes(values: Sequence[str]) -> dict[str, MessageAttribute]:
    """`k=v` (String), `k:Number=5`, `k:String.Array=["a","b"]`, `k:Binary=<base64>`."""
    raw: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidAttributeValue(f"--attr {item!r}: expected NAME=VALUE or NAME:TYPE=VALUE")
        name, _, data_type = key.partition(":")
        data_type = data_type or "String"
        if data_type.split(".", 1)[0] == "Binary":
            raw[name] = {"DataType": data_type, "BinaryValue": value}
        else:
            raw[name] = {"DataType": data_type, "StringValue": value}
    return to_attributes(raw)


_attr_option = click.option(
    "--attr",
    "attrs",
    multiple=True,
    metavar="NAME[:TYPE]=VALUE",
    help="A message attribute; TYPE is String (default), Number, String.Array or Binary.",
)


@main.command()
@click.argument("topic")
@click.argument("body")
@_attr_option
@click.option("--subject", default=None, help="The envelope's Subject.")
@click.option("--group-id", default=None, help="Message group id (FIFO topics).")
@click.option("--deduplication-id", default=None, help="Deduplication id (FIFO topics).")
@click.pass_context
def publish(
    ctx: click.Context,
    topic: str,
    body: str,
    attrs: tuple[str, ...],
    subject: str | None,
    group_id: str | None,
    deduplication_id: str | None,
) -> None:
    """Publish BODY (`-` reads standard input) to TOPIC; prints the message id."""
    with _backend(ctx) as backend:
        request = PublishRequest(
            body=_body(body),
            attributes=_parse_attributes(attrs),
            subject=subject,
            group_id=group_id,
            deduplication_id=deduplication_id,
        )
        click.echo(_single(backend.publish(topic, [request])))


@main.command()
@click.argument("queue")
@click.argument("body")
@_attr_option
@click.option("--delay", type=int, default=None, help="Delay in seconds (0-900).")
@click.option("--group-id", default=None, help="Message group id (FIFO queues).")
@click.option("--deduplication-id", default=None, help="Deduplication id (FIFO queues).")
@click.pass_context
def send(
    ctx: click.Context,
    queue: str,
    body: str,
    attrs: tuple[str, ...],
    delay: int | None,
    group_id: str | None,
    deduplication_id: str | None,
) -> None:
    """Send BODY (`-` reads standard input) to QUEUE; prints the message id."""
    with _backend(ctx) as backend:
        message = OutgoingMessage(
            id=new_message_id(),
            body=_body(body),
            attributes=_parse_attributes(attrs),
            delay_seconds=delay,
            group_id=group_id,
            deduplication_id=deduplication_id,
        )
        click.echo(_single(backend.send(queue, [message])))


def _body(body: str) -> str:
    """BODY as given, or standard input when it is `-`."""
    return sys.stdin.read() if body == "-" else body


def _single(results: Sequence[str | FanstackError | None]) -> str:
    (result,) = results
    if isinstance(result, FanstackError):
        raise result
    return result or ""


@main.command()
@click.argument("queue")
@click.option("--max", "max_messages", type=int, default=1, show_default=True)
@click.option("--wait", "wait_seconds", type=float, default=0, show_default=True)
@click.option("--visibility-timeout", type=int, default=None)
@click.option("--delete", is_flag=True, help="Delete each message once printed.")
@click.pass_context
def receive(
    ctx: click.Context,
    queue: str,
    max_messages: int,
    wait_seconds: float,
    visibility_timeout: int | None,
    delete: bool,
) -> None:
    """Receive messages from QUEUE and print one JSON line each."""
    with _backend(ctx) as backend:
        messages = backend.receive(
            queue,
            max_messages=max_messages,
            wait_seconds=wait_seconds,
            visibility_timeout=visibility_timeout,
        )
        for message in messages:
            _emit_json(_message_record(message))
        if delete and messages:
            for outcome in backend.delete_messages(queue, [m.receipt_handle for m in messages]):
                if isinstance(outcome, FanstackError):
                    raise outcome


def _message_record(message: ReceivedMessage) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": message.id,
        "body": message.body,
        "attributes": {k: v.to_dict() for k, v in message.message_attributes.items()},
        "receipt_handle": message.receipt_handle,
        "receive_count": message.receive_count,
        "sent_timestamp": message.sent_timestamp,
    }
    for name in ("group_id", "sequence_number", "failure", "source_queue"):
        value = getattr(message, name)
        if value is not None:
            record[name] = value
    if message.lost_receives is not None:  # dead-lettered: receives that failed, and lost ones
        record["failed_receives"] = message.failed_receives
        record["lost_receives"] = message.lost_receives
    return record


@main.command()
@click.argument("queue")
@click.pass_context
def purge(ctx: click.Context, queue: str) -> None:
    """Delete every message in QUEUE (once per 60 seconds)."""
    with _backend(ctx) as backend:
        backend.purge(queue)
        click.echo(f"purged {queue}")


@main.group()
def dlq() -> None:
    """Dead-letter queues: see what failed and send it back."""


@dlq.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def dlq_list(ctx: click.Context, as_json: bool) -> None:
    """List queues that have a dead-letter queue, with its depth."""
    with _backend(ctx) as backend:
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
        _emit_json(rows)
        return
    table = _table("queue", "dead letter", "max receives", "DLQ depth")
    for row in rows:
        table.add_row(
            str(row["queue"]),
            str(row["dead_letter"]),
            str(row["max_receive_count"]),
            str(row["depth"]),
        )
    _console.print(table)


@dlq.command("redrive")
@click.argument("queue")
@click.pass_context
def dlq_redrive(ctx: click.Context, queue: str) -> None:
    """Move the messages QUEUE dead-lettered back to QUEUE, in order."""
    with _backend(ctx) as backend:
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


def _serve_options(function: F) -> F:
    options = [
        click.option(
            "--host",
            default="127.0.0.1",
            show_default=True,
            help="Interface to listen on (admin endpoints need a token off loopback).",
        ),
        click.option("--port", type=int, default=8000, show_default=True),
        click.option(
            "--grace",
            type=float,
            default=30.0,
            show_default=True,
            help="Seconds running invocations get to finish on shutdown.",
        ),
        click.option(
            "--admin-token",
            envvar="FANSTACK_ADMIN_TOKEN",
            default=None,
            help="Bearer token for /_fanstack/* when not bound to loopback.",
        ),
        click.option(
            "--header-timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=DEFAULT_HEADER_TIMEOUT,
            show_default=True,
            help="Seconds a client has to send a request's headers (then 408, closed).",
        ),
        click.option(
            "--body-timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=DEFAULT_BODY_TIMEOUT,
            show_default=True,
            help="Seconds a client has to send a request's body (then 408, closed).",
        ),
        click.option(
            "--max-connections",
            type=click.IntRange(min=1),
            default=DEFAULT_MAX_CONNECTIONS,
            show_default=True,
            help="Open connections served at once; requests beyond get 503.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _load(ctx: click.Context, app_reference: str) -> App:
    state: _State = ctx.find_object(_State)  # type: ignore[assignment]
    try:
        app = load_app(app_reference)
        app.configure(data_dir=state.given_data_dir, backend=state.backend_url)
        app.backend  # noqa: B018 - surface storage errors here, as one line
    except FanstackError as exc:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(1)
    return app


@main.command()
@click.argument("app_reference", metavar="APP")
@_serve_options
@click.option("--reload", is_flag=True, help="Restart when a source file changes (development).")
@click.pass_context
def run(
    ctx: click.Context,
    app_reference: str,
    host: str,
    port: int,
    grace: float,
    admin_token: str | None,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
    reload: bool,
) -> None:
    """Run APP's API gateway, consumers and worker pools in one process (APP is app.py)."""
    if reload:
        _run_reloading()
        return
    from fanstack.serve import serve

    configure_logging()
    app = _load(ctx, app_reference)
    limits = ServerLimits(
        header_timeout=header_timeout, body_timeout=body_timeout, max_connections=max_connections
    )
    serve(
        app,
        host=host,
        port=port,
        consumers=True,
        grace=grace,
        admin_token=admin_token,
        limits=limits,
    )


def _run_reloading() -> None:
    """Re-run this very command without --reload, restarting it whenever a file changes."""
    import shlex

    import watchfiles

    arguments = [a for a in sys.argv[1:] if a != "--reload"]
    command = [sys.executable, "-m", "fanstack.cli", *arguments]

    def relevant(change: watchfiles.Change, path: str) -> bool:
        ignored = ("/.fanstack/", "/.venv/", "/.git/")
        return path.endswith((".py", ".yaml", ".yml", ".json")) and not any(
            part in path for part in ignored
        )

    watchfiles.run_process(
        ".",
        target=" ".join(shlex.quote(part) for part in command),
        target_type="command",
        watch_filter=relevant,
    )


@main.command()
@click.argument("app_reference", metavar="APP")
@_serve_options
@click.pass_context
def gateway(
    ctx: click.Context,
    app_reference: str,
    host: str,
    port: int,
    grace: float,
    admin_token: str | None,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
) -> None:
    """Serve only APP's HTTP API (consumers run in `fanstack worker` processes)."""
    from fanstack.serve import serve

    configure_logging()
    app = _load(ctx, app_reference)
    limits = ServerLimits(
        header_timeout=header_timeout, body_timeout=body_timeout, max_connections=max_connections
    )
    serve(
        app,
        host=host,
        port=port,
        consumers=False,
        grace=grace,
        admin_token=admin_token,
        limits=limits,
    )


@main.command()
@click.argument("app_reference", metavar="APP")
@click.option(
    "--grace",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds running invocations get to finish on shutdown.",
)
@click.pass_context
def worker(ctx: click.Context, app_reference: str, grace: float) -> None:
    """Run APP's consumers and functions (APP is app.py or module[:attr]) until stopped.

    SIGTERM or Ctrl-C stops receiving, lets running invocations finish within --grace, and
    hands unstarted messages back to their queues.
    """
    state: _State = ctx.find_object(_State)  # type: ignore[assignment]
    configure_logging()
    try:
        app = load_app(app_reference)
        app.configure(data_dir=state.given_data_dir, backend=state.backend_url)
        signals = ShutdownSignals(on_force=lambda: app.runtime.force())
        signals.install()
        app.runtime.start()
    except FanstackError as exc:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(1)
    log.info(
        "worker started",
        extra={
            "app": app.name,
            "functions": sorted(app.functions),
            "consumers": [c.queue for c in app.consumers],
        },
    )
    signals.wait()
    log.info("shutting down", extra={"grace_seconds": grace})
    app.runtime.stop(grace=0 if signals.forced.is_set() else grace)
    app.close()
    log.info("worker stopped")


if __name__ == "__main__":
    main()
