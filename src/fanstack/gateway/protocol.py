"""uvicorn's httptools protocol with a deadline for request headers, and JSON errors.

A connection whose request headers are not complete `header_timeout` seconds after it opened
(or after its next request began, when kept alive) gets 408 and is closed. A request on a
connection beyond uvicorn's `limit_concurrency` gets 503, and bytes that are not HTTP get 400,
in the gateway's JSON shape with a request id instead of uvicorn's plain text. See `limits`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from fanstack.gateway.limits import DEFAULT_HEADER_TIMEOUT, ServerLimits
from fanstack.gateway.request_id import HEADER, request_id_for
from fanstack.gateway.responses import error_response

log = logging.getLogger("fanstack.gateway")


def uvicorn_options(limits: ServerLimits) -> dict[str, Any]:
    """The `uvicorn.Config` keyword arguments that enforce `limits` (the body timeout is
    ASGI middleware, which `Gateway.asgi()` includes)."""
    return {
        "http": protocol_class(limits.header_timeout),
        "limit_concurrency": limits.max_connections,
    }


def protocol_class(header_timeout: float) -> type[BoundedHttpToolsProtocol]:
    """`BoundedHttpToolsProtocol` with this header timeout (uvicorn instantiates the class)."""

    class Protocol(BoundedHttpToolsProtocol):
        pass

    Protocol.header_timeout = header_timeout
    return Protocol


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline and a JSON 503 past the limit."""

    header_timeout: ClassVar[float] = DEFAULT_HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Checked in on_headers_complete instead of by uvicorn, whose 503 is plain text.
        self.max_connections, self.limit_concurrency = self.limit_concurrency, None
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:  # a kept-alive connection's next request
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            log.warning(
                "connection limit reached: answering 503",
                extra={"max_connections": self.max_connections},
            )
            self.app = _service_unavailable  # this connection closes after the 503
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """A request that is not HTTP: 400 in the gateway's JSON shape, then closed."""
        self.transport.write(_raw_response(400, f"Bad Request: {msg}", request_id_for({})))
        self.transport.close()

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A request is being served; the next one's headers get their time after it.
            self._arm_header_deadline()
            return
        log.info(
            "request headers not complete in time: closing the connection",
            extra={"client": self.client, "header_timeout_s": self.header_timeout},
        )
        message = (
            f"Request Timeout: the request headers did not arrive within {self.header_timeout:g} s"
        )
        scope = self.scope if self.scope is not None else {}
        self.transport.write(_raw_response(408, message, request_id_for(scope)))
        self.transport.close()


async def _service_unavailable(scope: Any, receive: Any, send: Any) -> None:
    request_id = request_id_for(scope)
    response = error_response(
        503,
        "Service Unavailable: the server has as many connections as it takes",
        request_id,
        headers={"connection": "close", HEADER: request_id, "retry-after": "1"},
    )
    await response(scope, receive, send)


def _raw_response(status: int, message: str, request_id: str) -> bytes:
    """A whole HTTP/1.1 error response, for a connection no ASGI app is serving."""
    body = json.dumps({"message": message, "request_id": request_id}).encode()
    head = (
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"{HEADER}: {request_id}\r\nconnection: close\r\n\r\n"
    )
    return STATUS_LINE[status] + head.encode() + body
