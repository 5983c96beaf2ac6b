"""Plain stand-ins for the gateway's unit tests: a clock the test sets, a table in memory, and
requests as an ASGI server would make them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fanstack.core.errors import ConditionalCheckFailed
from fanstack.gateway.responses import Endpoint

from ...support.clocks import FixedClock

NOON = datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()


def Clock() -> FixedClock:
    """A clock only the test moves, at noon UTC on a fixed day at first."""
    return FixedClock(NOON)


@dataclass
class Item:
    value: dict[str, Any]
    version: int


class MemoryTable:
    """The table operations the quota counter uses, in memory, conditions honoured."""

    def __init__(self) -> None:
        self.items: dict[str, Item] = {}

    def get_item(self, key: str) -> Item | None:
        return self.items.get(key)

    def put(
        self,
        key: str,
        value: dict[str, Any],
        *,
        ttl: float | None = None,
        if_absent: bool = False,
        if_version: int | None = None,
    ) -> None:
        old = self.items.get(key)
        if (if_absent and old is not None) or (
            if_version is not None and (old is None or old.version != if_version)
        ):
            raise ConditionalCheckFailed(key)
        self.items[key] = Item(dict(value), (old.version if old else 0) + 1)


def request(headers: dict[str, str] | None = None, request_id: str = "req-1") -> Request:
    """A POST / with `headers`, after RequestIdMiddleware gave it `request_id`."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "state": {"request_id": request_id},
    }
    return Request(scope)


def call(endpoint: Endpoint, given: Request) -> Response:
    """Run an endpoint on a request, as the server would."""
    return asyncio.run(endpoint(given))


async def reached(request: Request) -> Response:
    """An endpoint that says it was reached."""
    return JSONResponse({"reached": True})
