"""A deadline for request bodies: 408, and the connection closed, when one arrives too slowly.

See `limits` for why.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fanstack.gateway.limits import DEFAULT_BODY_TIMEOUT
from fanstack.gateway.request_id import request_id_for
from fanstack.gateway.responses import error_response

log = logging.getLogger("fanstack.gateway")


class BodyReadTimeout(Exception):
    """The request body did not arrive within the body timeout."""


class BodyTimeoutMiddleware:
    """Answers 408 (and closes the connection) when a request body arrives too slowly.

    The deadline runs from when the request reaches the app (its headers are in) until the last
    body chunk. A response sent before the body was read in full closes the connection, so a
    client cannot keep a connection by trickling a body that no one reads.
    """

    def __init__(self, app: Any, *, body_timeout: float = DEFAULT_BODY_TIMEOUT) -> None:
        self.app = app
        self.body_timeout = body_timeout

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = BodyDeadline(scope, receive, self.body_timeout)
        response_started = False

        async def closing_send(message: Any) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message = body.closing(message)
            await send(message)

        try:
            await self.app(scope, body.receive, closing_send)
        except BodyReadTimeout:
            if response_started:
                raise
            await timed_out(scope, receive, send, self.body_timeout)
        finally:
            body.close()


class BodyDeadline:
    """One request's body deadline: `receive` raises BodyReadTimeout once it has passed with
    the body not in yet; `closing` marks a response that leaves the body unread to close the
    connection; `close` ends it with the request.

    A request with a body is watched by its loop's `_Watch` from when it reaches the app until
    its body is in (or the request ends), instead of by a timeout of its own: `asyncio.timeout`
    costs a busy gateway a timer, a context manager and a task lookup per request (about a
    twentieth of its CPU), where most bodies are in with the headers.
    """

    __slots__ = ("_cancelling", "_receive", "_watch", "deadline", "expired", "pending", "task")

    def __init__(self, scope: Any, receive: Any, timeout: float) -> None:
        self._receive = receive
        self.pending = _declares_body(scope)
        self.task: asyncio.Task[Any] | None = None  # while it waits for the body
        self._cancelling = 0  # the task's pending cancellations when it began to wait
        self.expired = False
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + timeout
        self._watch: _Watch | None = None
        if self.pending:
            self._watch = _Watch.of(loop, timeout)
            self._watch.add(self)

    async def receive(self) -> Any:
        if not self.pending:
            return await self._receive()
        if self.expired:
            raise BodyReadTimeout
        task = self.task = asyncio.current_task()
        self._cancelling = task.cancelling() if task is not None else 0
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            # Ours only if no other cancellation came with it (as `asyncio.timeout` decides).
            if self.expired and task is not None and task.uncancel() <= self._cancelling:
                raise BodyReadTimeout from None
            raise
        finally:
            self.task = None
        self.pending = message["type"] == "http.request" and message.get("more_body", False)
        if not self.pending:
            self.close()
        return message

    def close(self) -> None:
        """The body is in, or the request ended: stop watching its deadline."""
        if self._watch is not None:
            self._watch.remove(self)
            self._watch = None

    def closing(self, start: Any) -> Any:
        """The `http.response.start` message, asking to close if the body is still coming."""
        if not self.pending:
            return start
        return {**start, "headers": [*start.get("headers", ()), (b"connection", b"close")]}


class _Watch:
    """The requests of one event loop and timeout whose bodies are still coming, in the order
    they reached the app, which is the order of their deadlines, and one timer at the first
    one's deadline: past its deadline, a request waiting for its body has that wait
    cancelled, and one that is not waiting fails its next read.
    """

    _watches: dict[tuple[asyncio.AbstractEventLoop, float], _Watch] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: dict[BodyDeadline, None] = {}  # in order of deadline
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, timeout: float) -> _Watch:
        """The watch of `loop` for requests given `timeout`."""
        key = (loop, timeout)
        watch = cls._watches.get(key)
        if watch is None:
            watch = cls._watches[key] = cls(loop)
            # A closed loop's watches are no use. (Loops of other threads add theirs meanwhile:
            # `list` copies the keys in one step.)
            for other in list(cls._watches):
                if other[0].is_closed():
                    cls._watches.pop(other, None)
        return watch

    def add(self, deadline: BodyDeadline) -> None:
        self._waiting[deadline] = None
        if self._timer is None:
            self._timer = self._loop.call_at(deadline.deadline, self._expire)

    def remove(self, deadline: BodyDeadline) -> None:
        self._waiting.pop(deadline, None)
        if not self._waiting and self._timer is not None:
            self._timer.cancel()  # nothing left to watch: hold no request for the timeout
            self._timer = None

    def _expire(self) -> None:
        """Act on the deadlines that have passed; set the timer for the next one."""
        self._timer = None
        now = self._loop.time()
        while self._waiting:
            deadline = next(iter(self._waiting))
            if deadline.deadline > now:
                self._timer = self._loop.call_at(deadline.deadline, self._expire)
                return
            del self._waiting[deadline]
            deadline.expired = True
            if deadline.task is not None:
                deadline.task.cancel()


async def timed_out(scope: Any, receive: Any, send: Any, timeout: float) -> None:
    """Answer 408 (closing the connection) to a request whose body did not arrive in time."""
    log.info("request body not complete in time", extra={"body_timeout_s": timeout})
    request_id = scope.get("state", {}).get("request_id") or request_id_for(scope)
    message = f"Request Timeout: the request body did not arrive within {timeout:g} s"
    response = error_response(408, message, request_id, headers={"connection": "close"})
    await response(scope, receive, send)


def _declares_body(scope: Any) -> bool:
    """Whether the request's headers announce a body (a non-zero length, or chunks)."""
    for name, value in scope.get("headers") or []:
        if name == b"content-length" and value.strip() not in (b"0", b""):
            return True
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            return True
    return False
