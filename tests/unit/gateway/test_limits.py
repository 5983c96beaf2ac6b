"""Limits on slow clients and connections, as plain values and one ASGI app driven by hand."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fanstack.core.errors import InvalidParameterValue
from fanstack.gateway.body_timeout import BodyTimeoutMiddleware
from fanstack.gateway.limits import ServerLimits
from fanstack.gateway.protocol import BoundedHttpToolsProtocol, uvicorn_options
from fanstack.gateway.responses import error_response

Message = dict[str, Any]


def test_limits_have_sane_defaults_and_refuse_nonsense() -> None:
    limits = ServerLimits()
    assert (limits.header_timeout, limits.body_timeout, limits.max_connections) == (10, 30, 1000)
    for bad in ({"header_timeout": 0}, {"body_timeout": -1}, {"max_connections": 0}):
        with pytest.raises(InvalidParameterValue):
            ServerLimits(**bad)


def test_uvicorn_options_carry_the_protocol_and_the_connection_limit() -> None:
    options = uvicorn_options(ServerLimits(header_timeout=2.5, max_connections=7))
    assert options["limit_concurrency"] == 7
    assert issubclass(options["http"], BoundedHttpToolsProtocol)
    assert options["http"].header_timeout == 2.5
    assert BoundedHttpToolsProtocol.header_timeout == 10  # the base keeps the default


async def echo_body(scope: Any, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
    """An app that reads the whole body, then answers with its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await error_response(200, str(size), "id")(scope, receive, send)


async def answer_at_once(scope: Any, receive: Any, send: Any) -> None:
    await error_response(200, "no body read", "id")(scope, receive, send)


def run(app: Any, chunks: list[tuple[float, bytes, bool]], length: int) -> list[Message]:
    """Drive `app` behind the middleware (0.2 s body timeout); the messages it sent."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-length", str(length).encode())],
        "state": {"request_id": "req-1"},
    }
    pending = list(chunks)
    sent: list[Message] = []

    async def receive() -> Message:
        if not pending:
            await asyncio.sleep(3600)  # no more from the client: wait for a disconnect
        delay, body, more = pending.pop(0)
        await asyncio.sleep(delay)
        return {"type": "http.request", "body": body, "more_body": more}

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = BodyTimeoutMiddleware(app, body_timeout=0.2)
    asyncio.run(asyncio.wait_for(middleware(scope, receive, send), timeout=5))
    return sent


def status_headers_body(sent: list[Message]) -> tuple[int, dict[bytes, bytes], Any]:
    start, body = sent[0], sent[1]
    return start["status"], dict(start["headers"]), json.loads(body["body"])


def test_a_body_in_time_passes_through() -> None:
    sent = run(echo_body, [(0.01, b"ab", True), (0.01, b"c", False)], 3)
    status, headers, payload = status_headers_body(sent)
    assert (status, payload["message"]) == (200, "3")
    assert b"connection" not in headers


def test_a_slow_body_gets_408_and_closes_the_connection() -> None:
    sent = run(echo_body, [(0.05, b"a", True), (0.1, b"b", True), (0.1, b"c", False)], 3)
    status, headers, payload = status_headers_body(sent)
    assert status == 408
    assert headers[b"connection"] == b"close"
    assert payload["request_id"] == "req-1"
    assert "body" in payload["message"]


def test_a_response_before_the_body_is_read_closes_the_connection() -> None:
    sent = run(answer_at_once, [(1.0, b"a", False)], 1)
    status, headers, _ = status_headers_body(sent)
    assert status == 200
    assert headers[b"connection"] == b"close"


def test_among_many_requests_only_the_slow_ones_get_408() -> None:
    """Requests of one loop share the deadline watch: those whose bodies come in time pass,
    each slow one gets its 408 near its own deadline, whichever order they end in, and the
    watch keeps nothing of them afterwards, not even a timer."""
    from fanstack.gateway import body_timeout

    slow = {5, 17, 33}
    middleware = BodyTimeoutMiddleware(echo_body, body_timeout=0.3)

    async def one(n: int) -> tuple[int, int, float]:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "headers": [(b"content-length", b"2")],
            "state": {"request_id": f"req-{n}"},
        }
        # Fast bodies arrive in two chunks at staggered moments; slow ones stop after one.
        pending = [(0.001 * (n % 7), b"a", True), (0.001 * (n % 5), b"b", False)]
        sent: list[Message] = []

        async def receive() -> Message:
            if n in slow and len(pending) == 1:
                await asyncio.sleep(3600)
            delay, body, more = pending.pop(0)
            await asyncio.sleep(delay)
            return {"type": "http.request", "body": body, "more_body": more}

        async def send(message: Message) -> None:
            sent.append(message)

        started = asyncio.get_running_loop().time()
        await middleware(scope, receive, send)
        return n, sent[0]["status"], asyncio.get_running_loop().time() - started

    async def everyone() -> tuple[list[tuple[int, int, float]], int]:
        results = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(40))), 5)
        loop = asyncio.get_running_loop()
        left = sum(
            len(w._waiting) for (lp, _), w in body_timeout._Watch._watches.items() if lp is loop
        )
        return results, left

    results, left = asyncio.run(everyone())
    assert {n for n, status, _ in results if status == 408} == slow
    assert all(status == 200 for n, status, _ in results if n not in slow)
    assert all(0.3 <= took < 0.6 for n, _, took in results if n in slow)
    assert left == 0


def test_a_cancellation_that_comes_with_the_deadline_is_not_taken_for_it() -> None:
    """A server stopping at the moment a body's deadline passes: the request is cancelled,
    not answered 408 (the deadline takes only its own cancellation)."""
    from fanstack.gateway import body_timeout

    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.sleep(3600)  # the body never comes
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    async def scenario() -> None:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "headers": [(b"content-length", b"5")],
            "state": {"request_id": "req-1"},
        }
        middleware = BodyTimeoutMiddleware(echo_body, body_timeout=0.2)
        task = asyncio.ensure_future(middleware(scope, receive, send))
        await asyncio.sleep(0)  # the request reaches the app: its deadline is set
        loop = asyncio.get_running_loop()
        (deadline,) = body_timeout._Watch._watches[(loop, 0.2)]._waiting
        loop.call_at(deadline.deadline, task.cancel)  # the same moment, after the watch's timer
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(scenario(), timeout=5))
    assert sent == []
