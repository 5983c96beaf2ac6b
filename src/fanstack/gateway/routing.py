"""The gateway as an ASGI app (Starlette): each route's endpoint behind its wrappers.

Each request gets a request id (echoed in `x-request-id` on every response, 404s and 500s
included, and in every log line) and a body deadline (408, `limits`). A route's endpoint is
wrapped, outermost first, in its body limit (413, `body_limit`) and its authorizer (401/403/429,
`auth`, chosen once per route when the app is built); the endpoint itself checks the media type
(415), validates against the route's OpenAPI operation (400 listing every invalid field), maps
the request and runs its integration (`integrations`). A message is acknowledged with a 2xx
only once the backend has stored it; a storage failure is a 503. Every error is JSON:
`{"message", "request_id"[, "errors"]}`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from fanstack.backends.base import Backend
from fanstack.gateway.api import Api
from fanstack.gateway.auth import (
    API_KEY,
    AUTH_MODES,
    JWT,
    OPEN,
    ApiKeyAuthorizer,
    Authorizer,
    JwtAuthorizer,
    OpenAccess,
    bearer_matches,
    caller_of,
)
from fanstack.gateway.body_limit import body_of, read_body_first
from fanstack.gateway.body_timeout import BodyTimeoutMiddleware
from fanstack.gateway.examples import add_examples
from fanstack.gateway.expressions import RequestContext
from fanstack.gateway.integrations import integrate
from fanstack.gateway.limits import ServerLimits
from fanstack.gateway.media import UnsupportedMediaType
from fanstack.gateway.operations import Operation
from fanstack.gateway.request_id import RequestIdMiddleware
from fanstack.gateway.responses import Endpoint, error_response
from fanstack.gateway.throttling import QUOTA_TABLE, DailyQuota, RateLimiter
from fanstack.table import Table

ADMIN_PREFIX = "/_fanstack"


def is_loopback(host: str) -> bool:
    """Whether the server listens on loopback only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Gateway:
    """Builds the Starlette app serving an API: its routes, docs and admin endpoints."""

    def __init__(
        self,
        api: Api,
        backend: Callable[[], Backend],
        *,
        host: str = "127.0.0.1",
        admin_token: str | None = None,
        limits: ServerLimits | None = None,
        rate_limiter: RateLimiter | None = None,
    ):
        self.api = api
        self._backend = backend
        self._quota = DailyQuota(Table(backend, QUOTA_TABLE))
        self._rate_limiter = rate_limiter or RateLimiter()
        self.loopback = is_loopback(host)
        self.admin_token = admin_token or self.api.admin_token
        self.limits = limits or ServerLimits()

    @property
    def auth_enforced(self) -> bool:
        """Whether routes' API-key and JWT auth apply (not when open on loopback)."""
        return not (self.api.open_on_loopback and self.loopback)

    def asgi(self) -> ASGIApp:
        """The ASGI application."""
        authorizers = self.authorizers()
        routes = [self._route(op, authorizers[op.auth]) for op in self.api.operations]
        routes += [
            Route("/openapi.json", self._openapi, methods=["GET"]),
            Route("/docs", self._docs, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/health", self._admin(self._health), methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/queues", self._admin(self._queues), methods=["GET"]),
        ]
        middleware = [Middleware(BodyTimeoutMiddleware, body_timeout=self.limits.body_timeout)]
        if self.api.cors_origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=self.api.cors_origins,
                    allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                    allow_headers=["content-type", "x-api-key", "authorization", "x-request-id"],
                    expose_headers=["x-request-id", "retry-after"],
                )
            )
        handlers = {HTTPException: self._http_error, Exception: self._internal_error}
        return RequestIdMiddleware(
            Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
        )

    def authorizers(self) -> dict[str, Authorizer]:
        """The authorizer of each auth mode: every one open when the API is open on loopback."""
        if not self.auth_enforced:
            return dict.fromkeys(AUTH_MODES, OpenAccess())
        return {
            OPEN: OpenAccess(),
            API_KEY: ApiKeyAuthorizer(self.api.api_keys, self._rate_limiter, self._quota),
            JWT: JwtAuthorizer(self.api.jwt),
        }

    # -- API routes ----------------------------------------------------------------------

    def _route(self, operation: Operation, authorizer: Authorizer) -> Route:
        """The route of an operation: its endpoint behind the body limit and its authorizer."""
        endpoint = read_body_first(authorizer.protect(self._endpoint(operation)))
        return Route(
            operation.path,
            endpoint,
            methods=[operation.method.upper()],
            name=operation.operation_id,
        )

    def _endpoint(self, operation: Operation) -> Endpoint:
        """What a route does with an admitted request: validate, map and integrate."""

        async def endpoint(request: Request) -> Response:
            request_id: str = request.state.request_id
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                values, body, errors = operation.validator.validate(
                    request.path_params,
                    {k: request.query_params.getlist(k) for k in request.query_params},
                    headers,
                    body_of(request),
                    request.headers.get("content-type"),
                )
            except UnsupportedMediaType as exc:
                field = {"in": "header", "name": "content-type", "message": str(exc)}
                return error_response(415, "Unsupported Media Type", request_id, errors=[field])
            if errors:
                return error_response(
                    400, "Invalid request", request_id, errors=[e.to_dict() for e in errors]
                )
            caller = caller_of(request)
            context = RequestContext(
                path=values["path"],
                query=values["query"],
                headers=headers,
                body=body,
                request_id=request_id,
                api_key=caller.api_key,
                claims=caller.claims,
            )
            return await run_in_threadpool(
                integrate, operation.integration, self.api.targets, context
            )

        return endpoint

    # -- documents and admin -------------------------------------------------------------

    async def _openapi(self, request: Request) -> Response:
        return JSONResponse(add_examples(self.api.document(auth_enforced=self.auth_enforced)))

    async def _docs(self, request: Request) -> Response:
        return HTMLResponse(_DOCS_PAGE.replace("{title}", self.api.title))

    def _admin(self, handler: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            if not self.loopback:
                given = request.headers.get("authorization")
                if not bearer_matches(given, self.admin_token):
                    return error_response(
                        403,
                        "Forbidden: admin endpoints need the admin token off loopback",
                        request.state.request_id,
                    )
            return await handler(request)

        return guarded

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's own errors (404, 405, ...) in the gateway's JSON shape."""
        assert isinstance(exc, HTTPException)
        return error_response(
            exc.status_code,
            str(exc.detail),
            request.state.request_id,
            headers=dict(exc.headers or {}),
        )

    async def _internal_error(self, request: Request, exc: Exception) -> Response:
        """A 500 in the gateway's JSON shape; RequestIdMiddleware logs the error."""
        return error_response(500, "Internal Server Error", request.state.request_id)

    async def _health(self, request: Request) -> Response:
        try:
            await run_in_threadpool(lambda: self._backend().list_topics())
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "app": self.api.title})

    async def _queues(self, request: Request) -> Response:
        def collect() -> list[dict[str, object]]:
            backend = self._backend()
            return [backend.stats(spec.name).to_dict() for spec in backend.list_queues()]

        return JSONResponse({"queues": await run_in_threadpool(collect)})


_DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title} API docs</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head><body><div id="docs"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#docs"});</script>
</body></html>
"""
