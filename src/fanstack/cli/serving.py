"""`fanstack run | gateway | worker`: run an app's API, consumers and worker pools."""

from __future__ import annotations

import sys
from typing import Any

import click

from fanstack.app import App
from fanstack.cli.base import F, State, log, main
from fanstack.core.errors import FanstackError
from fanstack.gateway.limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    ServerLimits,
)
from fanstack.loader import load_app
from fanstack.runtime.logs import configure_logging
from fanstack.runtime.shutdown import ShutdownSignals


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
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Server processes sharing the port (one per core takes the most requests).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _load(ctx: click.Context, app_reference: str) -> App:
    state: State = ctx.find_object(State)  # type: ignore[assignment]
    try:
        app = load_app(app_reference)
        app.configure(data_dir=state.given_data_dir, backend=state.backend_url)
        app.backend  # noqa: B018 - surface storage errors here, as one line
    except FanstackError as exc:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(1)
    return app


def _serve(ctx: click.Context, app: App, **options: Any) -> None:
    """Serve the app; a port that cannot be bound is one line, not a traceback."""
    from fanstack.serve import serve

    try:
        serve(app, **options)
    except FanstackError as exc:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(1)


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
    workers: int,
    reload: bool,
) -> None:
    """Run APP's API gateway, consumers and worker pools in one process (APP is app.py)."""
    if reload:
        _run_reloading()
        return
    configure_logging()
    app = _load(ctx, app_reference)
    limits = ServerLimits(
        header_timeout=header_timeout, body_timeout=body_timeout, max_connections=max_connections
    )
    _serve(
        ctx,
        app,
        host=host,
        port=port,
        consumers=True,
        grace=grace,
        admin_token=admin_token,
        limits=limits,
        workers=workers,
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
    workers: int,
) -> None:
    """Serve only APP's HTTP API (consumers run in `fanstack worker` processes)."""
    configure_logging()
    app = _load(ctx, app_reference)
    limits = ServerLimits(
        header_timeout=header_timeout, body_timeout=body_timeout, max_connections=max_connections
    )
    _serve(
        ctx,
        app,
        host=host,
        port=port,
        consumers=False,
        grace=grace,
        admin_token=admin_token,
        limits=limits,
        workers=workers,
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
    state: State = ctx.find_object(State)  # type: ignore[assignment]
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
