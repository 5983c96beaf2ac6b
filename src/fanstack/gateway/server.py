"""The gateway as an ASGI app (Starlette): auth, validation, mapping, integration, responses.

Each request gets a request id (echoed in `x-request-id` and in every log line), a body limit of
256 KiB (413), the route's auth (401/403/429), validation against its OpenAPI operation (400
listing every invalid field), then its integration. A message is acknowledged with a 2xx only
once the backend has stored it; a storage failure is a 503.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from fanstack.core.errors import (
    BackendUnavailable,
    FanstackError,
    FunctionError,
    MessageTooLarge,
    TooManyRequests,
)
from fanstack.core.message import TOPIC_MAX_MESSAGE_BYTES
from fanstack.gateway.api import API_KEY, JWT, Operation
from fanstack.gateway.auth import QUOTA_TABLE, AuthFailure
from fanstack.gateway.examples import add_examples
from fanstack.gateway.expressions import RequestContext, render
from fanstack.runtime.logs import log_context

if TYPE_CHECKING:
    from fanstack.app import App

log = logging.getLogger("fanstack.gateway")

MAX_BODY_BYTES = TOPIC_MAX_MESSAGE_BYTES
ADMIN_PREFIX = "/_fanstack"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

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
    """Builds the Starlette app serving an `App`'s API."""

    def __init__(self, app: App, *, host: str = "127.0.0.1", admin_token: str | None = None):
        self.app = app
        self.api = app.api
        self.loopback = is_loopback(host)
        self.admin_token = admin_token or self.api.admin_token

    def asgi(self) -> Starlette:
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
        middleware = []
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
        middleware.append(Middleware(RequestIdMiddleware))
        return Starlette(routes=routes, middleware=middleware)

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
                    request.headers.get("content-type", ""),
                )
                if errors:
                    return _error(
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
                return _error(failure.status, failure.message, request_id, headers=failure.headers)
            except BodyTooLarge as exc:
                return _error(413, str(exc), request_id)

        return endpoint

    async def _admit(
        self, request: Request, operation: Operation, request_id: str
    ) -> RequestContext:
        auth = operation.auth
        if auth not in (API_KEY, JWT) or (self.api.open_on_loopback and self.loopback):
            return RequestContext(request_id=request_id)
        if auth == API_KEY:
            key = request.headers.get("x-api-key")
            table = self.app.table(QUOTA_TABLE)
            await run_in_threadpool(self.api.api_keys.admit, key, table)
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
            outcome = self._call(
                integration.kind, integration.target, message, attributes, group_id, dedup_id
            )
        except FunctionError as exc:
            return JSONResponse(exc.to_dict(), status_code=502)
        except TooManyRequests as exc:
            return _error(429, str(exc), request_id, headers={"Retry-After": "1"})
        except MessageTooLarge as exc:
            return _error(413, str(exc), request_id)
        except BackendUnavailable as exc:
            return _error(503, f"Service Unavailable: {exc}", request_id)
        except FanstackError as exc:
            if exc.sender_fault:
                return _error(400, str(exc), request_id, code=exc.code)
            log.exception("integration failed")
            return _error(503, "Service Unavailable: the message was not stored", request_id)
        except Exception:
            log.exception("integration failed")
            return _error(503, "Service Unavailable: the message was not stored", request_id)
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
        app = self.app
        if kind == "publish":
            return app.topics[target].publish(
                message, attributes=attributes, group_id=group_id, deduplication_id=dedup_id
            )
        if kind == "send":
            return app.queues[target].send(
                message, attributes=attributes, group_id=group_id, deduplication_id=dedup_id
            )
        if kind == "invoke":
            return app.functions[target].invoke(message)
        return app.functions[target].invoke_async(message)

    # -- documents and admin -------------------------------------------------------------

    async def _openapi(self, request: Request) -> Response:
        return JSONResponse(add_examples(self.api.document()))

    async def _docs(self, request: Request) -> Response:
        return HTMLResponse(_DOCS_PAGE.replace("{title}", self.api.title))

    def _admin(self, handler: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            if not self.loopback:
                expected = self.admin_token
                given = request.headers.get("authorization", "")
                if expected is None or given != f"Bearer {expected}":
                    return _error(
                        403,
                        "Forbidden: admin endpoints need the admin token off loopback",
                        request.state.request_id,
                    )
            return await handler(request)

        return guarded

    async def _health(self, request: Request) -> Response:
        try:
            await run_in_threadpool(self.app.backend.list_topics)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "app": self.app.name})

    async def _queues(self, request: Request) -> Response:
        def collect() -> list[dict[str, object]]:
            backend = self.app.backend
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


def _error(
    status: int,
    message: str,
    request_id: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    code: str | None = None,
) -> JSONResponse:
    payload: dict[str, Any] = {"message": message, "request_id": request_id}
    if errors is not None:
        payload["errors"] = errors
    if code is not None:
        payload["code"] = code
    return JSONResponse(payload, status_code=status, headers=headers)


class RequestIdMiddleware:
    """Gives every request an id, echoes it as `x-request-id`, and logs one line per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                log.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )


_DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title} API docs</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head><body><div id="docs"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#docs"});</script>
</body></html>
"""
