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
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        body_pending = _declares_body(scope)
        response_started = False

        async def timed_receive() -> Any:
            nonlocal body_pending
            if not body_pending:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyReadTimeout from None
            body_pending = message["type"] == "http.request" and message.get("more_body", False)
            return message

        async def closing_send(message: Any) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                if body_pending:
                    headers = [*message.get("headers", []), (b"connection", b"close")]
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, timed_receive, closing_send)
        except BodyReadTimeout:
            if response_started:
                raise
            log.info(
                "request body not complete in time", extra={"body_timeout_s": self.body_timeout}
            )
            request_id = scope.get("state", {}).get("request_id") or request_id_for(scope)
            message = (
                f"Request Timeout: the request body did not arrive within {self.body_timeout:g} s"
            )
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
