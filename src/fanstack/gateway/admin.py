"""The guard of the admin endpoints (`/_fanstack/*`, and what else is mounted as admin).

Open when the server listens on loopback only. Off loopback a request needs the admin token:
as `Authorization: Bearer <token>` (scripts, probes with headers, Prometheus), or as the
password of HTTP Basic auth (any user name), which is what a browser sends after asking its
user — so the dashboard works in a browser without a login page. Pages answer a missing token
with 401 and a Basic challenge; the JSON endpoints keep answering 403.

A browser sends Basic credentials with any request to the server, a cross-site one included, so
an unsafe method (a POST from a dashboard button) must come from the same origin: its `Origin`
(sent by browsers on every POST) must name the host the request was sent to.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fanstack.gateway.auth import bearer_matches
from fanstack.gateway.responses import Endpoint, error_response

REALM = "fanstack admin"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORBIDDEN = "Forbidden: admin endpoints need the admin token off loopback"


class AdminGuard:
    """Lets a request through to an admin endpoint, or answers 401/403."""

    def __init__(self, *, loopback: bool, token: str | None) -> None:
        self.loopback = loopback
        self.token = token

    def admits(self, request: Request) -> bool:
        """Whether the request may reach an admin endpoint."""
        if self.loopback:
            return True
        authorization = request.headers.get("authorization")
        return bearer_matches(authorization, self.token) or basic_matches(authorization, self.token)

    def protect(self, endpoint: Endpoint) -> Endpoint:
        """`endpoint` behind the guard, refusing with the gateway's JSON 403."""

        async def guarded(request: Request) -> Response:
            if not self.admits(request):
                return error_response(403, FORBIDDEN, request.state.request_id)
            return await endpoint(request)

        return guarded

    def protect_route(self, route: BaseRoute) -> BaseRoute:
        """A `Route` or `Mount` served behind the guard (pages: 401 with a Basic challenge)."""
        if isinstance(route, Mount):
            return Mount(route.path, app=_Guarded(self, route.app), name=route.name)
        if isinstance(route, Route):
            return Route(
                route.path, _Guarded(self, route.app), methods=route.methods, name=route.name
            )
        raise TypeError(f"an admin route must be a Route or a Mount, not {type(route).__name__}")


class _Guarded:
    """An ASGI app that only admitted requests reach (a class: Starlette routes call it raw)."""

    def __init__(self, guard: AdminGuard, app: ASGIApp) -> None:
        self.guard = guard
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        refusal = self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, request: Request) -> Response | None:
        if not self.guard.admits(request):
            return PlainTextResponse(
                "The fanstack dashboard needs the admin token (as the password) off loopback.\n",
                status_code=401,
                headers={"www-authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
            )
        if request.method not in SAFE_METHODS and not same_origin(request):
            return PlainTextResponse("Forbidden: a cross-origin request\n", status_code=403)
        return None


def basic_matches(authorization: str | None, token: str | None) -> bool:
    """Whether an Authorization header is HTTP Basic with `token` as the password."""
    if token is None or authorization is None:
        return False
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    _user, _, password = decoded.partition(b":")
    return hmac.compare_digest(password, token.encode())


def same_origin(request: Request) -> bool:
    """Whether a request's `Origin`, if it has one, names the host it was sent to."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not from a browser page: no ambient credentials to abuse
    return urlsplit(origin).netloc == request.headers.get("host", "")
