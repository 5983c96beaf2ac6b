"""The gateway's error responses: one JSON shape for every status, naming the request."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


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
