"""The gateway as an ASGI app (Starlette): auth, validation, mapping, integration, responses.

Each request gets a request id (echoed in `x-request-id` on every response, 404s and 500s
included, and in every log line), a body limit of 256 KiB (413) and a body deadline (408,
`limits`), the route's auth (401/403/429), a media type check (415), validation against its
OpenAPI operation (400 listing every invalid field), then its integration. A message is
acknowledged with a 2xx only once the backend has stored it; a storage failure is a 503. Every
error is JSON: `{"message", "request_id"[, "errors"]}`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from fanstack.backends.base import Backend
from fanstack.core.errors import (
    BackendUnavailable,
    FanstackError,
    FunctionError,
    MessageTooLarge,
    TooManyRequests,
)
from fanstack.core.message import TOPIC_MAX_MESSAGE_BYTES
from fanstack.gateway import strict_json
from fanstack.gateway.api import API_KEY, JWT, Api, Operation
from fanstack.gateway.auth import QUOTA_TABLE, AuthFailure, bearer_matches
from fanstack.gateway.body_timeout import BodyTimeoutMiddleware
from fanstack.gateway.examples import add_examples
from fanstack.gateway.expressions import RequestContext, render
from fanstack.gateway.limits import ServerLimits
from fanstack.gateway.media import UnsupportedMediaType
from fanstack.gateway.request_id import RequestIdMiddleware
from fanstack.gateway.responses import error_response
from fanstack.table import Table

log = logging.getLogger("fanstack.gateway")

MAX_BODY_BYTES = TOPIC_MAX_MESSAGE_BYTES
ADMIN_PREFIX = "/_fanstack"

Endpoint = Callable[[Request], Awaitable[Response]]


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
    ):
        self.api = api
        self._backend = backend
        self._quotas = Table(backend, QUOTA_TABLE)
        self.loopback = is_loopback(host)
        self.admin_token = admin_token or self.api.admin_token
        self.limits = limits or ServerLimits()

    @property
    def auth_enforced(self) -> bool:
        """Whether routes' API-key and JWT auth apply (not when open on loopback)."""
        return not (self.api.open_on_loopback and self.loopback)

    def asgi(self) -> ASGIApp:
        """The ASGI application."""
        routes = [
            Route(op.path, self._endpoint(op), methods=[op.method.upper()], name=op.operation_id)
            for op in self.api.operations
        ]
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

    # -- API routes ----------------------------------------------------------------------

    def _endpoint(self, operation: Operation) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            request_id: str = request.state.request_id
            try:
                raw_body = await _read_body(request)
                context = await self._admit(request, operation, request_id)
                values, body, errors = operation.validator.validate(
                    request.path_params,
                    {k: request.query_params.getlist(k) for k in request.query_params},
                    {k.lower(): v for k, v in request.headers.items()},
                    raw_body,
                    request.headers.get("content-type"),
                )
                if errors:
                    return error_response(
                        400,
                        "Invalid request",
                        request_id,
                        errors=[e.to_dict() for e in errors],
                    )
                context = RequestContext(
                    path=values["path"],
                    query=values["query"],
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                    request_id=request_id,
                    api_key=context.api_key,
                    claims=context.claims,
                )
                return await run_in_threadpool(self._integrate, operation, context)
            except AuthFailure as failure:
                return error_response(
                    failure.status, failure.message, request_id, headers=failure.headers
                )
            except BodyTooLarge as exc:
                return error_response(413, str(exc), request_id)
            except UnsupportedMediaType as exc:
                field = {"in": "header", "name": "content-type", "message": str(exc)}
                return error_response(415, "Unsupported Media Type", request_id, errors=[field])
            except ClientDisconnect:
                return error_response(
                    400, "the client closed the connection mid-request", request_id
                )

        return endpoint

    async def _admit(
        self, request: Request, operation: Operation, request_id: str
    ) -> RequestContext:
        auth = operation.auth
        if auth not in (API_KEY, JWT) or not self.auth_enforced:
            return RequestContext(request_id=request_id)
        if auth == API_KEY:
            key = request.headers.get("x-api-key")
            await run_in_threadpool(self.api.api_keys.admit, key, self._quotas)
            return RequestContext(request_id=request_id, api_key=key)
        if self.api.jwt is None:
            raise AuthFailure(401, "Unauthorized: no JWT verification is configured")
        claims = self.api.jwt.verify(request.headers.get("authorization"))
        return RequestContext(request_id=request_id, claims=claims)

    def _integrate(self, operation: Operation, context: RequestContext) -> Response:
        integration = operation.integration
        request_id = context.request_id
        message = render(integration.body, context)
        if isinstance(message, dict):
            for key, template in integration.defaults.items():
                if message.get(key) is None:
                    message[key] = render(template, context)
        attributes = {
            name: value
            for name, value in render(dict(integration.attributes), context).items()
            if value not in (None, "")
        }
        group_id = render(integration.group_id, context) if integration.group_id else None
        dedup_id = (
            render(integration.deduplication_id, context) if integration.deduplication_id else None
        )
        try:
            strict_json.check(message)  # never publish a body other readers cannot parse
        except strict_json.InvalidJson as exc:
            problem = {"in": "message", "name": exc.pointer, "message": exc.reason}
            return error_response(
                400, "The message would not be JSON", request_id, errors=[problem]
            )
        try:
            outcome = self._call(
                integration.kind, integration.target, message, attributes, group_id, dedup_id
            )
        except FunctionError as exc:
            return JSONResponse(exc.to_dict(), status_code=502)
        except TooManyRequests as exc:
            return error_response(429, str(exc), request_id, headers={"Retry-After": "1"})
        except MessageTooLarge as exc:
            return error_response(413, str(exc), request_id)
        except BackendUnavailable as exc:
            return error_response(503, f"Service Unavailable: {exc}", request_id)
        except FanstackError as exc:
            if exc.sender_fault:
                return error_response(400, str(exc), request_id, code=exc.code)
            log.exception("integration failed")
            return error_response(
                503, "Service Unavailable: the message was not stored", request_id
            )
        except Exception:
            log.exception("integration failed")
            return error_response(
                503, "Service Unavailable: the message was not stored", request_id
            )
        if integration.kind == "invoke":
            return _function_response(outcome, integration.success_status)
        key = "request_id" if integration.kind == "invoke_async" else "message_id"
        if integration.response is None:
            payload: Any = {key: outcome}
        else:
            scoped = RequestContext(
                path=context.path,
                query=context.query,
                headers=context.headers,
                body=context.body,
                request_id=request_id,
                api_key=context.api_key,
                claims=context.claims,
                message={"id": outcome, "body": message},
            )
            payload = render(integration.response, scoped)
        return JSONResponse(payload, status_code=integration.success_status)

    def _call(
        self,
        kind: str,
        target: str,
        message: Any,
        attributes: dict[str, Any],
        group_id: str | None,
        dedup_id: str | None,
    ) -> Any:
        targets = self.api.targets
        if kind == "publish":
            return targets.topics[target].publish(
                message, attributes=attributes, group_id=group_id, deduplication_id=dedup_id
            )
        if kind == "send":
            return targets.queues[target].send(
                message, attributes=attributes, group_id=group_id, deduplication_id=dedup_id
            )
        if kind == "invoke":
            return targets.functions[target].invoke(message)
        return targets.functions[target].invoke_async(message)

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


class BodyTooLarge(Exception):
    """The request body exceeds the 256 KiB limit."""


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge(
            f"Payload Too Large: body is {declared} bytes; the limit is {MAX_BODY_BYTES} bytes"
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(
                f"Payload Too Large: body exceeds the limit of {MAX_BODY_BYTES} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _function_response(result: Any, status: int) -> Response:
    """A function's result as the response; API Gateway's proxy shape is honoured."""
    if isinstance(result, dict) and isinstance(result.get("statusCode"), int):
        body = result.get("body", "")
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        if not isinstance(body, str):
            body = json.dumps(body)
            headers.setdefault("content-type", "application/json")
        return Response(body, status_code=result["statusCode"], headers=headers)
    return JSONResponse(result, status_code=status)


_DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title} API docs</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head><body><div id="docs"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#docs"});</script>
</body></html>
"""
