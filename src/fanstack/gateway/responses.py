"""The gateway's endpoints and their error responses: one JSON shape for every status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Endpoint = Callable[[Request], Awaitable[Response]]


def error_response(
    status: int,
    message: str,
    request_id: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    code: str | None = None,
) -> JSONResponse:
    """`{"message", "request_id"[, "errors"][, "code"]}` with `status`."""
    payload: dict[str, Any] = {"message": message, "request_id": request_id}
    if errors is not None:
        payload["errors"] = errors
    if code is not None:
        payload["code"] = code
    return JSONResponse(payload, status_code=status, headers=headers)
