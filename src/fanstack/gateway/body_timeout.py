"""A deadline for request bodies: 408, and the connection closed, when one arrives too slowly.

See `limits` for why.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fanstack.gateway.limits import DEFAULT_BODY_TIMEOUT
from fanstack.gateway.request_id import request_id_for
from fanstack.gateway.responses import error_response

log = logging.getLogger("fanstack.gateway")


class BodyReadTimeout(Exception):
    """The request body did not arrive within the body timeout."""


class BodyTimeoutMiddleware:
    """Answers 408 (and closes the connection) when a request body arrives too slowly.

    The deadline runs from when the request reaches the app (its headers are in) until the last
    body chunk. A response sent before the body was read in full closes the connection, so a
    client cannot keep a connection by trickling a body that no one reads.
    """

    def __init__(self, app: Any, *, body_timeout: float = DEFAULT_BODY_TIMEOUT) -> None:
        self.app = app
        self.body_timeout = body_timeout

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = BodyDeadline(scope, receive, self.body_timeout)
        response_started = False

        async def closing_send(message: Any) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message = body.closing(message)
            await send(message)

        try:
            await self.app(scope, body.receive, closing_send)
        except BodyReadTimeout:
            if response_started:
                raise
            await timed_out(scope, receive, send, self.body_timeout)


class BodyDeadline:
    """One request's body deadline: `receive` raises BodyReadTimeout once it has passed with
    the body not in yet; `closing` marks a response that leaves the body unread to close the
    connection."""

    def __init__(self, scope: Any, receive: Any, timeout: float) -> None:
        self._receive = receive
        self._deadline = asyncio.get_running_loop().time() + timeout
        self.pending = _declares_body(scope)

    async def receive(self) -> Any:
        if not self.pending:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            raise BodyReadTimeout from None
        self.pending = message["type"] == "http.request" and message.get("more_body", False)
        return message

    def closing(self, start: Any) -> Any:
        """The `http.response.start` message, asking to close if the body is still coming."""
        if not self.pending:
            return start
        return {**start, "headers": [*start.get("headers", ()), (b"connection", b"close")]}


async def timed_out(scope: Any, receive: Any, send: Any, timeout: float) -> None:
    """Answer 408 (closing the connection) to a request whose body did not arrive in time."""
    log.info("request body not complete in time", extra={"body_timeout_s": timeout})
    request_id = scope.get("state", {}).get("request_id") or request_id_for(scope)
    message = f"Request Timeout: the request body did not arrive within {timeout:g} s"
    response = error_response(408, message, request_id, headers={"connection": "close"})
    await response(scope, receive, send)


def _declares_body(scope: Any) -> bool:
    """Whether the request's headers announce a body (a non-zero length, or chunks)."""
    for name, value in scope.get("headers") or []:
        if name == b"content-length" and value.strip() not in (b"0", b""):
            return True
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            return True
    return False
