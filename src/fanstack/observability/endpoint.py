"""`/metrics`: every figure of the app in Prometheus' text format, for a scraper.

The gateway serves it on its own port; a process without one (`fanstack worker`) can serve it
on a port of its own (`serve_metrics`).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fanstack.observability.metrics import CONTENT_TYPE, Metrics

PATH = "/metrics"


def metrics_route(instruments: Metrics) -> Route:
    """The `/metrics` route (the gateway guards it like its admin endpoints)."""

    async def scrape(request: Request) -> Response:
        # Collectors read the store: off the event loop.
        body = await run_in_threadpool(instruments.exposition)
        return Response(body, media_type=CONTENT_TYPE)

    return Route(PATH, scrape, methods=["GET"], name="metrics")


def serve_metrics(host: str, port: int, instruments: Metrics) -> ThreadingHTTPServer:
    """Answer `GET /metrics` on host:port from a daemon thread until `shutdown()`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != PATH:
                self.send_error(404, "only /metrics is served here")
                return
            body = instruments.exposition()
            self.send_response(200)
            self.send_header("content-type", CONTENT_TYPE)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes are not worth a log line each

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
