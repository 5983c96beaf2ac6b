"""Live updates: server-sent events carrying the app's cumulative counts every second.

Each event (`throughput`) holds counts since this process started (invocations, errors, per
function) and every queue's depths; the page turns consecutive events into rates for its chart
and refreshes its tables in place. A stream ends after `STREAM_SECONDS` and the browser's
EventSource reconnects on its own (`retry`), so a server that is stopping gracefully never
waits on an open dashboard for longer than that.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from fanstack.dashboard.rows import throughput

if TYPE_CHECKING:
    from fanstack.app import App

log = logging.getLogger("fanstack.dashboard")

STREAM_INTERVAL = 1.0  # seconds between two events
STREAM_SECONDS = 10.0  # a stream's lifetime before the browser reconnects
RECONNECT_MS = 500


class ThroughputStream:
    """The endpoint of the server-sent events of one app."""

    def __init__(self, app: App, *, interval: float = STREAM_INTERVAL) -> None:
        self.app = app
        self.interval = interval

    async def endpoint(self, request: Request) -> Response:
        """A `text/event-stream` of `throughput` events."""
        return StreamingResponse(
            self.events(request),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def events(self, request: Request) -> AsyncIterator[str]:
        """The stream's text: a reconnect delay, then one event a second until it ends."""
        yield f"retry: {RECONNECT_MS}\n\n"
        deadline = time.monotonic() + STREAM_SECONDS
        while time.monotonic() < deadline and not await request.is_disconnected():
            try:
                snapshot = await run_in_threadpool(throughput, self.app)
            except Exception:
                log.exception("dashboard stream: reading the counts failed")
                yield "event: unavailable\ndata: {}\n\n"
            else:
                yield f"event: throughput\ndata: {json.dumps(snapshot)}\n\n"
            await asyncio.sleep(self.interval)
