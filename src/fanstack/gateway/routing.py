"""The gateway as an ASGI app (Starlette): each route's endpoint behind its wrappers.

Each request gets a request id (echoed in `x-request-id` on every response, 404s and 500s
included, and in every log line) and a body deadline (408, `limits`). A route's endpoint is
wrapped, outermost first, in its body limit (413, `body_limit`) and its authorizer (401/403/429,
`auth`, chosen once per route when the app is built); the endpoint itself checks the media type
(415), validates against the route's OpenAPI operation (400 listing every invalid field), maps
the request and runs its integration (`integrations`). A message is acknowledged with a 2xx
only once the backend has stored it; a storage failure is a 503. Every error is JSON:
`{"message", "request_id"[, "errors"]}`.

Beside the API: `/openapi.json`, the `/docs` page (`docs`), the probes `/_fanstack/health` and
`/_fanstack/ready` (`probes`), the certificate SNS deliveries are signed with
(`/_fanstack/sns/signing-cert.pem`, `notifications.signing`), and the admin endpoints behind
the admin guard (`admin`): the gateway's own `/_fanstack/queues` and whatever routes the server
mounts as admin (the dashboard, metrics), matched after the API's routes.

Requests to the API's routes are served by `dispatch.ApiDispatch` in one coroutine, past
Starlette's middleware and router (which serve the rest), unless the API answers CORS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from fanstack.backends.base import Backend
from fanstack.gateway.admin import AdminGuard
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
    caller_of,
)
from fanstack.gateway.body_limit import body_of, read_body_first
from fanstack.gateway.body_timeout import BodyTimeoutMiddleware
from fanstack.gateway.dispatch import ApiDispatch
from fanstack.gateway.docs import docs_routes
from fanstack.gateway.examples import add_examples
from fanstack.gateway.expressions import RequestContext
from fanstack.gateway.integrations import STORING, integrate, integrate_async
from fanstack.gateway.limits import ServerLimits
from fanstack.gateway.media import UnsupportedMediaType
from fanstack.gateway.operations import Operation
from fanstack.gateway.probes import Probes, ReadinessCheck, storage_check
from fanstack.gateway.request_id import RequestIdMiddleware
from fanstack.gateway.responses import Endpoint, error_response
from fanstack.gateway.throttling import QUOTA_TABLE, DailyQuota, RateLimiter
from fanstack.notifications.signing import CERT_PATH, signer_for
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
    """Builds the Starlette app serving an API: its routes, docs, probes and admin endpoints.

    `admin_routes` (Routes or Mounts with full paths, e.g. the dashboard at `/_fanstack/` or
    metrics at `/metrics`) are served behind the admin guard; `readiness` adds checks to
    `/_fanstack/ready` after the store's own.
    """

    def __init__(
        self,
        api: Api,
        backend: Callable[[], Backend],
        *,
        host: str = "127.0.0.1",
        admin_token: str | None = None,
        limits: ServerLimits | None = None,
        rate_limiter: RateLimiter | None = None,
        admin_routes: Sequence[BaseRoute] = (),
        readiness: Sequence[ReadinessCheck] = (),
    ):
        self.api = api
        self._backend = backend
        self._quota = DailyQuota(Table(backend, QUOTA_TABLE))
        self._rate_limiter = rate_limiter or RateLimiter()
        self.loopback = is_loopback(host)
        self.admin_token = admin_token or self.api.admin_token
        self.limits = limits or ServerLimits()
        self.admin = AdminGuard(loopback=self.loopback, token=self.admin_token)
        self._admin_routes = list(admin_routes)
        self.probes = Probes([storage_check(backend), *readiness])

    @property
    def auth_enforced(self) -> bool:
        """Whether routes' API-key and JWT auth apply (not when open on loopback)."""
        return not (self.api.open_on_loopback and self.loopback)

    def asgi(self) -> ASGIApp:
        """The ASGI application."""
        authorizers = self.authorizers()
        api_routes = [self._route(op, authorizers[op.auth]) for op in self.api.operations]
        routes: list[BaseRoute] = [*api_routes]
        routes += [
            Route("/openapi.json", self._openapi, methods=["GET"]),
            *docs_routes(self.api.title),
            Route(f"{ADMIN_PREFIX}/health", self.probes.health, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/ready", self.probes.ready, methods=["GET"]),
            Route(CERT_PATH, self._signing_certificate, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/queues", self.admin.protect(self._queues), methods=["GET"]),
            *[self.admin.protect_route(route) for route in self._admin_routes],
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
        starlette = RequestIdMiddleware(
            Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
        )
        if self.api.cors_origins:  # CORS answers and decorates every route: Starlette's
            return starlette
        return ApiDispatch(api_routes, starlette, body_timeout=self.limits.body_timeout)

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
            scope = request.scope
            request_id: str = scope["state"]["request_id"]
            headers = {}  # the last of a repeated header wins; the first Content-Type
            content_type: str | None = None
            for raw_name, raw_value in scope["headers"]:
                name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
                headers[name] = value
                if content_type is None and name == "content-type":
                    content_type = value
            query = request.query_params if scope.get("query_string") else None
            try:
                values, body, errors = operation.validator.validate(
                    scope.get("path_params", {}),
                    {k: query.getlist(k) for k in query} if query is not None else {},
                    headers,
                    body_of(request),
                    content_type,
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
            if operation.integration.kind in STORING:
                return await integrate_async(operation.integration, self.api.targets, context)
            return await run_in_threadpool(
                integrate, operation.integration, self.api.targets, context
            )

        return endpoint

    # -- documents and admin -------------------------------------------------------------

    async def _signing_certificate(self, request: Request) -> Response:
        """The certificate SNS deliveries are signed with (open: receivers fetch it)."""
        signer = await run_in_threadpool(signer_for, self._backend())
        return Response(signer.certificate_pem, media_type="application/x-pem-file")

    async def _openapi(self, request: Request) -> Response:
        return JSONResponse(add_examples(self.api.document(auth_enforced=self.auth_enforced)))

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

    async def _queues(self, request: Request) -> Response:
        def collect() -> list[dict[str, object]]:
            backend = self._backend()
            return [backend.stats(spec.name).to_dict() for spec in backend.list_queues()]

        return JSONResponse({"queues": await run_in_threadpool(collect)})

