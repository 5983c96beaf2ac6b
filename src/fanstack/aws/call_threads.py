"""Threads that run AWS calls off the event loop, with as little hand-off as Python allows.

A call that may wait (a long poll may wait 20 s) must not hold the event loop, so it runs on a
thread. A general-purpose executor costs about 100 us of CPU per call in hand-offs (a
concurrent future with its condition, a work item, and an asyncio future chained to it); here
a call is one entry on a queue the threads block on, and its result goes straight to the
caller's asyncio future. Threads are started as calls need them, up to `limit`, and wait for
the next call when idle.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Call = tuple[
    contextvars.Context,
    Callable[..., Any],
    tuple[Any, ...],
    "asyncio.Future[Any]",
    asyncio.AbstractEventLoop,
]


class CallThreads:
    """Run blocking calls on up to `limit` threads and await their results on the loop."""

    def __init__(self, limit: int, name: str) -> None:
        self._limit = limit
        self._name = name
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on a thread, in a copy of the caller's context."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # that thread takes this call
            elif self._threads < self._limit:
                self._threads += 1
                threading.Thread(
                    target=self._serve, name=f"{self._name}-{self._threads}", daemon=True
                ).start()
        self._calls.put((contextvars.copy_context(), function, args, future, loop))
        return await future

    def _serve(self) -> None:
        while True:
            context, function, args, future, loop = self._calls.get()
            try:
                result = context.run(function, *args)
            except BaseException as error:  # handed to the caller, whatever it is
                loop.call_soon_threadsafe(_fail, future, error)
            else:
                loop.call_soon_threadsafe(_succeed, future, result)
            del context, function, args, future, loop
            with self._lock:
                self._idle += 1


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # the caller may have gone (its request was cancelled)
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
