"""Request ids: every request gets one, every response carries it, every log line names it.

This middleware wraps the whole application, so responses made anywhere inside (routes,
Starlette's 404/405 and its 500 handler) pass through it and get `x-request-id`. An error that
escapes everything is logged with the request's id and answered with a JSON 500.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fanstack.core.records import new_id
from fanstack.gateway.responses import error_response
from fanstack.runtime.logs import log_context, log_fields

log = logging.getLogger("fanstack.gateway")

HEADER = "x-request-id"
_HEADER_BYTES = HEADER.encode()
_GIVEN = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def request_id_for(scope: Any) -> str:
    """The id a request gave in `x-request-id` if it is well-formed, else a new UUID."""
    given = b""
    for name, value in scope.get("headers") or ():  # the last one given, as a dict keeps
        if name == _HEADER_BYTES:
            given = value
    text = given.decode("latin-1")
    return text if _GIVEN.match(text) else new_id()


class RequestIdMiddleware:
    """Gives every request an id, echoes it as `x-request-id`, and logs one line per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange(scope, send)
        await answer_identified(
            scope, receive, exchange, lambda: self.app(scope, receive, exchange.send)
        )


class Exchange:
    """One request's id (kept in `scope["state"]`) and what its response said so far, as
    `send` passes the response on with `x-request-id` added (and whatever `decorate` adds to
    its start)."""

    def __init__(
        self, scope: Any, send: Any, decorate: Callable[[Any], Any] | None = None
    ) -> None:
        self.request_id = request_id_for(scope)
        scope.setdefault("state", {})["request_id"] = self.request_id
        self.status = 500
        self.response_started = False
        self._send = send
        self._decorate = decorate

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.status, self.response_started = message["status"], True
            if self._decorate is not None:
                message = self._decorate(message)
            message = with_header(message, HEADER, self.request_id)
        await self._send(message)


async def answer_identified(
    scope: Any, receive: Any, exchange: Exchange, handle: Callable[[], Awaitable[None]]
) -> None:
    """Run `handle` (which answers through `exchange.send`) with the request id on every log
    line: an error that escapes it is logged and, if nothing was answered yet, answered with a
    JSON 500; the access line is written however it ends."""
    started = time.perf_counter()
    with log_context(request_id=exchange.request_id):
        try:
            await handle()
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if not exchange.response_started:
                response = error_response(500, "Internal Server Error", exchange.request_id)
                await response(scope, receive, exchange.send)
        finally:
            log_request(scope, exchange.status, started)


def with_header(message: Any, name: str, value: str) -> Any:
    """An `http.response.start` message with one more header."""
    headers = [*message.get("headers", ()), (name.encode("latin-1"), value.encode("latin-1"))]
    return {**message, "headers": headers}


def log_request(scope: Any, status: int, started: float) -> None:
    """The request's access line: method, path, status and duration since `started`
    (a `time.perf_counter()`)."""
    if log.isEnabledFor(logging.INFO):
        method, path = scope["method"], scope["path"]
        fields = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        log_fields(log, logging.INFO, fields, "%s %s %d", method, path, status)
