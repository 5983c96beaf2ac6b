"""`fanstack run | gateway | worker`: run an app's API, consumers and worker pools."""

from __future__ import annotations

import sys
from typing import Any

import click

from fanstack.app import App
from fanstack.cli.base import F, State, log, log_file_of, main, state_of
from fanstack.core.arns import DEFAULT_ACCOUNT, DEFAULT_REGION
from fanstack.core.arns import configure as configure_arns
from fanstack.gateway.limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    ServerLimits,
)
from fanstack.loader import load_app
from fanstack.runtime.heap import settle_heap
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
        click.option(
            "--port",
            type=click.IntRange(min=0, max=65535),
            default=8000,
            show_default=True,
            help="Port to listen on; 0 takes a free one (the banner shows which).",
        ),
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
        click.option(
            "--aws-credentials",
            envvar="FANSTACK_AWS_CREDENTIALS",
            default=None,
            help="Access keys of the AWS API off loopback: KEY:SECRET[,KEY:SECRET] or a file "
            "of such lines (on loopback any credentials are accepted).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return _arn_options(function)


def _arn_options(function: F) -> F:
    options = [
        click.option(
            "--aws-account",
            envvar="FANSTACK_AWS_ACCOUNT",
            default=DEFAULT_ACCOUNT,
            show_default=True,
            help="Account id in ARNs (the AWS API's, envelopes', events') and queue URLs.",
        ),
        click.option(
            "--aws-region",
            envvar="FANSTACK_AWS_REGION",
            default=DEFAULT_REGION,
            show_default=True,
            help="Region in ARNs (the AWS API's, envelopes', events') and records.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def load(ctx: click.Context, app_reference: str, *, open_store: bool = True) -> App:
    """Load APP with the global options' store; errors (the app's own too) are one line."""
    state = state_of(ctx)
    app = load_app(app_reference)
    app.configure(data_dir=state.given_data_dir, backend=state.backend_url)
    if open_store:
        app.backend  # noqa: B018 - surface storage errors here, as one line
    return app


def start_logging(state: State, app: App | None = None) -> None:
    """Log as the options say; with an app, keep the lines in its log file as well."""
    configure_logging(level=state.log_level, log_format=state.log_format)
    if app is None:
        return
    remote = app.backend_url is not None and not app.backend_url.startswith("sqlite")
    data_dir = app.data_dir_path if state.given_data_dir or not remote else None
    path = log_file_of(state, data_dir)
    if path is None:
        log.info("log lines go to stderr only; --log-file PATH keeps them for `fanstack logs`")
        return
    configure_logging(level=state.log_level, log_format=state.log_format, log_file=path)
    log.debug("log lines kept", extra={"log_file": str(path)})


def _aws(host: str, credentials: str | None) -> Any:
    """The AWS endpoint's settings (who may call it)."""
    from fanstack.aws.context import endpoint_settings

    return endpoint_settings(host=host, credentials=credentials)


def _serve(app: App, **options: Any) -> None:
    from fanstack.serve import serve

    serve(app, **options)


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
    aws_credentials: str | None,
    aws_account: str,
    aws_region: str,
    reload: bool,
) -> None:
    """Run APP's API gateway, consumers and worker pools in one process (APP is app.py)."""
    if reload:
        _run_reloading()
        return
    state = state_of(ctx)
    start_logging(state)
    configure_arns(account=aws_account, region=aws_region)
    app = load(ctx, app_reference)
    start_logging(state, app)
    limits = ServerLimits(
        header_timeout=header_timeout, body_timeout=body_timeout, max_connections=max_connections
    )
    _serve(
        app,
        host=host,
        port=port,
        consumers=True,
        grace=grace,
        admin_token=admin_token,
        limits=limits,
        workers=workers,
        aws=_aws(host, aws_credentials),
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
    aws_credentials: str | None,
    aws_account: str,
    aws_region: str,
) -> None:
    """Serve only APP's HTTP API (consumers run in `fanstack worker` processes)."""
    state = state_of(ctx)
    start_logging(state)
    configure_arns(account=aws_account, region=aws_region)
    app = load(ctx, app_reference)
    start_logging(state, app)
    limits = ServerLimits(
        header_timeout=header_timeout, body_timeout=body_timeout, max_connections=max_connections
    )
    _serve(
        app,
        host=host,
        port=port,
        consumers=False,
        grace=grace,
        admin_token=admin_token,
        limits=limits,
        workers=workers,
        aws=_aws(host, aws_credentials),
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
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (HOST: --metrics-host).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Interface of --metrics-port.",
)
@_arn_options
@click.pass_context
def worker(
    ctx: click.Context,
    app_reference: str,
    grace: float,
    metrics_port: int | None,
    metrics_host: str,
    aws_account: str,
    aws_region: str,
) -> None:
    """Run APP's consumers and functions (APP is app.py or module[:attr]) until stopped.

    SIGTERM or Ctrl-C stops receiving, lets running invocations finish within --grace, and
    hands unstarted messages back to their queues.
    """
    state = state_of(ctx)
    start_logging(state)
    configure_arns(account=aws_account, region=aws_region)
    app = load(ctx, app_reference, open_store=False)
    start_logging(state, app)
    from fanstack.observability.endpoint import serve_metrics
    from fanstack.observability.metrics import enabled as metrics_enabled
    from fanstack.observability.metrics import metrics
    from fanstack.serve import observe

    observe(app)
    if metrics_port is not None and metrics_enabled():
        scraped = serve_metrics(metrics_host, metrics_port, metrics())
        log.info("metrics", extra={"url": f"http://{metrics_host}:{scraped.server_port}/metrics"})
    signals = ShutdownSignals(on_force=lambda: app.runtime.force())
    signals.install()
    app.runtime.start()
    settle_heap()
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
