"""Bounds on what one client can hold: the time to send headers and body, and connections.

uvicorn closes idle keep-alive connections but sets no deadline on a request that arrives
slowly, so a client sending a header line or a body byte every few seconds holds its connection
for ever, and a few hundred such clients hold the server (slowloris). `ServerLimits` bounds:

- `header_timeout`: a connection whose request headers are not complete this many seconds after
  it opened (or after its next request began, when kept alive) gets 408 and is closed
  (`protocol.BoundedHttpToolsProtocol`: no ASGI code runs before the headers are in);
- `body_timeout`: a request whose body has not fully arrived this many seconds after its
  headers gets 408 and its connection is closed (`body_timeout.BodyTimeoutMiddleware`);
- `max_connections`: a request on a connection beyond this many open ones gets 503 and the
  connection is closed (uvicorn's `limit_concurrency`, answered by the protocol in the
  gateway's JSON shape).
"""

from __future__ import annotations

from dataclasses import dataclass

from fanstack.core.errors import InvalidParameterValue

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLimits:
    """How long a client may take to send a request, and how many connections may be open."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout"):
            if not getattr(self, name) > 0:
                raise InvalidParameterValue(f"{name} must be > 0 seconds")
        if self.max_connections < 1:
            raise InvalidParameterValue("max_connections must be >= 1")
