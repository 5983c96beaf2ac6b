"""The gateway's endpoints and their error responses: one JSON shape for every status."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Endpoint = Callable[[Request], Awaitable[Response]]

# Starlette's JSONResponse rendering (UTF-8, strict, compact), with an encoder made once:
# `json.dumps` with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class JsonResponse(JSONResponse):
    """A JSON response, rendered as Starlette's JSONResponse renders it."""

    def render(self, content: Any) -> bytes:
        return _ENCODER.encode(content).encode("utf-8")


def error_response(
    status: int,
    message: str,
    request_id: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    code: str | None = None,
) -> JsonResponse:
    """`{"message", "request_id"[, "errors"][, "code"]}` with `status`."""
    payload: dict[str, Any] = {"message": message, "request_id": request_id}
    if errors is not None:
        payload["errors"] = errors
    if code is not None:
        payload["code"] = code
    return JsonResponse(payload, status_code=status, headers=headers)
