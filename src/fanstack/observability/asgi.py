"""ASGI middleware that measures and traces every HTTP request of the gateway.

Requests are labelled by their route's template (`/orders/{market}`), never by the raw path,
so the number of series stays that of the routes; a request that matched no route is
`unmatched`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from fanstack.observability import tracing
from fanstack.observability.metrics import Metrics, label_cache, observer
from fanstack.runtime.logs import log_context

UNMATCHED = "unmatched"


def route_of(scope: Any) -> str:
    """The template of the route that served a request (once it has been routed)."""
    route = scope.get("route")
    return str(getattr(route, "path", None) or UNMATCHED)


class RequestMetrics:
    """Counts requests by route, method and status, and times them to their response's start."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self._requests = label_cache(metrics.requests)
        self._duration = metrics.request_duration
        self._children: dict[
            tuple[str, str, int], tuple[Callable[[float], None], Callable[[float], None]]
        ] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        elapsed: float | None = None

        async def timed_send(message: Any) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status, elapsed = message["status"], time.perf_counter() - started
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            count, observe = self._series(route_of(scope), scope["method"], status)
            count(1.0)
            observe(elapsed if elapsed is not None else time.perf_counter() - started)

    def _series(
        self, route: str, method: str, status: int
    ) -> tuple[Callable[[float], None], Callable[[float], None]]:
        """What counts a request of a route, method and status, and what observes its
        duration (`label_cache`, `observer`: no checks per call)."""
        key = (route, method, status)
        series = self._children.get(key)
        if series is None:
            series = self._children[key] = (
                self._requests(route, method, str(status)),
                observer(self._duration.labels(route, method)),
            )
        return series


class RequestTracing:
    """A server span per request (continuing a caller's `traceparent`), its ids in the logs."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not tracing.active():
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        caller = {k: headers[k] for k in ("traceparent", "tracestate") if k in headers}
        method = scope["method"]
        with tracing.span(
            method,
            kind=SpanKind.SERVER,
            parent=caller or None,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        ) as span:
            status = 500

            async def seen_send(message: Any) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            with log_context(**tracing.current_ids()):
                try:
                    await self.app(scope, receive, seen_send)
                finally:
                    if span is not None:
                        _finish(span, scope, method, status)


def _finish(span: Any, scope: Any, method: str, status: int) -> None:
    route = route_of(scope)
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    request_id = (scope.get("state") or {}).get("request_id")
    if request_id:
        span.set_attribute("fanstack.request_id", request_id)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
