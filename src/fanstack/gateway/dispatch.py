"""The API's routes served in one coroutine: the hot path of a gateway.

Starlette serves a request through a stack of middleware (errors, the body deadline, exception
handlers), its router and its request wrappers, each one a coroutine and most of them a
wrapper around `send`. For the API's own routes, where a gateway spends its time, `ApiDispatch`
does what that stack did for them in one place: the request id (echoed in `x-request-id`, bound
to every log line, one access line per request), the body deadline (408, connection closed),
a JSON 500 for an error that escapes, and the scope a route leaves for metrics and traces
(`route`, `path_params`). The endpoint itself, with its body limit and authorizer, is the one
Starlette's route would run. Everything else (documents, probes, admin endpoints, 404 and 405,
CORS) goes to the Starlette app behind it, which sees the request as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fanstack.gateway.body_timeout import BodyDeadline, BodyReadTimeout, timed_out
from fanstack.gateway.request_id import Exchange, answer_identified


class ApiDispatch:
    """`routes` (the API's, in the order Starlette would try them) served here; any other
    request to `fallback`, the Starlette app that also holds `routes` first."""

    def __init__(self, routes: Sequence[Route], fallback: ASGIApp, *, body_timeout: float):
        self._routes = list(routes)
        self._fallback = fallback
        self._body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self._routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope["route"] = route
                    scope.update(child_scope)
                    await self._serve(route, scope, receive, send)
                    return
        # No route of the API takes it as it is (a 405 is Starlette's to give, after it has
        # tried its other routes).
        await self._fallback(scope, receive, send)

    async def _serve(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        body = BodyDeadline(scope, receive, self._body_timeout)
        exchange = Exchange(scope, send, decorate=body.closing)

        async def handle() -> None:
            try:
                response = await route.endpoint(Request(scope, body.receive))
                await response(scope, body.receive, exchange.send)
            except BodyReadTimeout:
                if not exchange.response_started:
                    body.pending = False  # the 408 closes the connection itself
                    await timed_out(scope, receive, exchange.send, self._body_timeout)

        try:
            await answer_identified(scope, receive, exchange, handle)
        finally:
            body.close()
