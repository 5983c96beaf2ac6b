"""Serving an app: `fanstack run` (gateway + consumers), `fanstack gateway` (API only).

Prints the routes, resources and docs address, shows a live line of throughput and queue depths,
and on Ctrl-C / SIGTERM stops the server, then the consumers (with their grace period), and
exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import uvicorn
from rich.console import Console
from rich.table import Table
from starlette.types import ASGIApp

from fanstack.aws.context import AwsSettings, endpoint_settings
from fanstack.aws.endpoint import AwsEndpoint, AwsRouting
from fanstack.gateway.limits import ServerLimits
from fanstack.gateway.protocol import uvicorn_options
from fanstack.gateway.routing import Gateway, is_loopback
from fanstack.observability import tracing
from fanstack.observability.asgi import RequestMetrics, RequestTracing
from fanstack.observability.endpoint import metrics_route
from fanstack.observability.metrics import QueueCollector, metrics, share_while_serving
from fanstack.observability.metrics import enabled as metrics_enabled
from fanstack.runtime.heap import settle_heap
from fanstack.runtime.logs import live_status, status_line
from fanstack.runtime.shutdown import ShutdownSignals
from fanstack.schedules.metrics import ScheduleCollector
from fanstack.server_processes import (
    ServerProcesses,
    bind,
    child_command,
    inherited_socket,
    on_parent_stop,
)

if TYPE_CHECKING:
    from fanstack.app import App

log = logging.getLogger("fanstack.serve")
STATUS_INTERVAL = 2.0


def serve(
    app: App,
    *,
    host: str,
    port: int,
    consumers: bool,
    gateway: bool = True,
    grace: float = 30.0,
    admin_token: str | None = None,
    limits: ServerLimits | None = None,
    workers: int = 1,
    aws: AwsSettings | None = None,
) -> None:
    """Run until SIGTERM/SIGINT: the API on host:port and, if `consumers`, every consumer.

    The first signal stops accepting requests, lets requests in flight finish, then gives running
    invocations `grace` seconds; a second signal stops them at once (their messages go back).
    With `workers` > 1 (from the command line only: children rerun its command), that many
    server processes share the port (`server_processes.py`) and this one serves no requests.
    """
    observe(app)
    app.backend  # noqa: B018 - create every declared resource before serving

    def config(port: int) -> uvicorn.Config:
        return _config(
            app, host=host, port=port, admin_token=admin_token, limits=limits, grace=grace, aws=aws
        )

    inherited = inherited_socket()
    if inherited is not None:  # one of the parent's server processes
        _serve_socket(app, inherited, config)
        return
    server: _Server | None = None
    children: ServerProcesses | None = None
    listening: socket.socket | None = None
    if gateway:
        # Bound before anything is printed or started: a busy port is one line, and port 0
        # becomes the free port the banner shows.
        listening = bind(host, port)
        port = listening.getsockname()[1]
    if listening is not None and workers > 1:
        children = ServerProcesses(listening, workers, child_command())
    elif listening is not None:
        server = _Server(config(port))
    signals = ShutdownSignals(
        on_stop=_on_stop(server, children),
        on_force=lambda: _force(app, server, children, consumers),
    )
    signals.install()
    if children is not None:
        children.start()
    if consumers:
        app.runtime.start()
    _banner(app, host, port, gateway=gateway, consumers=consumers, workers=workers)
    stop = threading.Event()
    status = threading.Thread(target=_status_line, args=(app, stop, consumers), daemon=True)
    status.start()
    settle_heap()
    try:
        if server is not None:
            server.run(sockets=[listening] if listening is not None else None)
        elif children is not None:
            while not (signals.requested.wait(0.5) or children.failed.is_set()):
                pass
            children.stop(timeout=grace + 5)
        else:
            signals.wait()
    finally:
        stop.set()
        status_line.clear()
        if consumers:
            app.runtime.stop(grace=0 if signals.forced.is_set() else grace)
        app.close()
        log.info("stopped")
    if children is not None and children.failed.is_set():
        raise SystemExit(1)


def _config(
    app: App,
    *,
    host: str,
    port: int,
    admin_token: str | None,
    limits: ServerLimits | None,
    grace: float,
    aws: AwsSettings | None,
) -> uvicorn.Config:
    from fanstack.dashboard import dashboard_routes
    from fanstack.readiness import readiness_checks

    limits = limits or ServerLimits()
    gateway = Gateway(
        app.api,
        app.backend_provider,
        host=host,
        admin_token=admin_token,
        limits=limits,
        # Served behind the admin guard.
        admin_routes=[
            *dashboard_routes(app),
            *([metrics_route(metrics())] if metrics_enabled() else []),
        ],
        readiness=readiness_checks(app),
    )
    # Off loopback, with no settings given, the AWS endpoint admits no caller.
    aws = aws or endpoint_settings(host=host, credentials=None)
    asgi: ASGIApp = AwsRouting(gateway.asgi(), AwsEndpoint(app, aws))
    if metrics_enabled():
        asgi = RequestMetrics(asgi, metrics())
    return uvicorn.Config(
        RequestTracing(asgi),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        **uvicorn_options(limits),  # httptools with header timeout, connection limit
        timeout_graceful_shutdown=int(grace),
    )


def observe(app: App) -> None:
    """Make this serving process observable, before it counts anything: share its counts with
    the processes it starts, report the store's figures (queues, schedules) in `/metrics`,
    export traces if the OTEL_* variables ask for it."""
    share_while_serving()
    tracing.configure()
    if metrics_enabled():
        metrics().add_collector(QueueCollector(app.backend_provider))
        metrics().add_collector(ScheduleCollector(app.backend_provider))


def _serve_socket(
    app: App, sock: socket.socket, config: Callable[[int], uvicorn.Config]
) -> None:
    """A child server process: the API on the parent's socket until SIGTERM (exit 0)."""
    server = _Server(config(sock.getsockname()[1]))
    ShutdownSignals(
        on_stop=server.request_exit, on_force=lambda: _force(app, server, None, False)
    ).install()
    on_parent_stop(server.request_exit)
    settle_heap()
    try:
        server.run(sockets=[sock])
    finally:
        app.close()


def _on_stop(server: _Server | None, children: ServerProcesses | None) -> Callable[[], None] | None:
    if server is not None:
        return server.request_exit
    return None  # children are stopped by the main thread once it sees the request


class _Server(uvicorn.Server):
    """uvicorn, with the process's signals left to fanstack.

    uvicorn re-raises a captured SIGTERM once it has shut down, which would kill the process
    before the consumers stop and hand their messages back.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        """Stop accepting connections and finish the requests in flight."""
        self.should_exit = True


def _force(
    app: App, server: _Server | None, children: ServerProcesses | None, consumers: bool
) -> None:
    if server is not None:
        server.force_exit = True
    if children is not None:
        children.force()
    if consumers:
        app.runtime.force()


def _banner(
    app: App, host: str, port: int, *, gateway: bool, consumers: bool, workers: int = 1
) -> None:
    console = Console(stderr=True)
    base = f"http://{host}:{port}"
    console.print(
        f"[bold]fanstack[/bold] {app.name}  state: {app.backend_url or app.data_dir_path}"
    )
    if gateway and app.api.operations:
        # The auth each route really has here: all open when the API is open on loopback.
        open_here = app.api.open_on_loopback and is_loopback(host)
        routes = Table("method", "path", "integration", "auth", title="routes")
        for op in app.api.operations:
            integration = f"{op.integration.kind} -> {op.integration.target}"
            auth = "open (loopback)" if open_here and op.auth != "open" else op.auth
            routes.add_row(op.method.upper(), op.path, integration, auth)
        console.print(routes)
    resources = Table("kind", "name", "detail", title="resources")
    for topic in app.topics.values():
        resources.add_row("topic", topic.name, "fifo" if topic.spec.fifo else "")
    for queue in app.queues.values():
        if not queue.name.startswith("fanstack-async-"):
            detail = f"DLQ {queue.spec.dead_letter}" if queue.spec.dead_letter else ""
            resources.add_row("queue", queue.name, detail)
    if consumers:
        for consumer in app.consumers:
            resources.add_row("consumer", consumer.function, f"<- {consumer.queue}")
    for bus in app.buses.declared.values():
        resources.add_row("bus", bus.name, "routed here" if consumers else "")
        for rule in bus.declared_rules():
            targets = ", ".join(f"{t.kind}:{t.resource}" for t in rule.targets) or "no targets"
            resources.add_row("rule", f"{bus.name}/{rule.name}", f"-> {targets}")
        for archive in bus.declared_archives():
            resources.add_row("archive", archive.name, f"of {bus.name}")
    for workflow in app.workflows.declared.values():
        states = len(workflow.machine.states)
        detail = f"{workflow.type}, {states} states" + (", run here" if consumers else "")
        resources.add_row("workflow", workflow.name, detail)
    console.print(resources)
    if gateway:
        processes = f"  ({workers} server processes)" if workers > 1 else ""
        console.print(f"API on {base}  docs {base}/docs  spec {base}/openapi.json{processes}")


def _status_line(app: App, stop: threading.Event, consumers: bool) -> None:
    """Every few seconds: invocations/s and queue depths (kept below the log lines on a
    terminal showing text logs; a log record otherwise)."""
    interactive = live_status()
    last_count, last_time = 0, time.monotonic()
    while not stop.wait(STATUS_INTERVAL if interactive else 15 * STATUS_INTERVAL):
        try:
            pools = app.runtime.pools().values() if consumers else []
            count = sum(pool.stats.invocations for pool in pools)
            now = time.monotonic()
            rate = (count - last_count) / (now - last_time)
            last_count, last_time = count, now
            depths = {
                name: app.backend.stats(name).visible
                for name in app.queues
                if not name.startswith("fanstack-async-")
            }
        except Exception:
            log.debug("status line failed", exc_info=True)
            continue
        depth_text = " ".join(f"{name}={depth}" for name, depth in depths.items())
        if interactive:
            status_line.show(f"{rate:7.1f} invocations/s  depths: {depth_text}")
        else:
            log.info("status", extra={"invocations_per_s": round(rate, 1), "depths": depths})
