"""The threads AWS calls run on: results, errors and the caller's context come back to the
awaiting request; calls run side by side up to the limit, and past it they wait their turn."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from fanstack.aws.call_threads import CallThreads

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def test_a_call_returns_its_result_and_sees_the_callers_context() -> None:
    threads = CallThreads(4, "test")

    async def main() -> tuple[str, str]:
        request_id.set("req-1")
        return await threads.run(lambda: ("done", request_id.get()))

    assert asyncio.run(main()) == ("done", "req-1")


def test_an_error_is_raised_in_the_caller() -> None:
    threads = CallThreads(2, "test")

    def fails() -> None:
        raise KeyError("no such queue")

    async def main() -> None:
        await threads.run(fails)

    with pytest.raises(KeyError, match="no such queue"):
        asyncio.run(main())


def test_calls_run_side_by_side_up_to_the_limit_and_the_rest_wait_their_turn() -> None:
    limit = 4
    threads = CallThreads(limit, "test")
    together = threading.Barrier(limit, timeout=10)  # breaks unless `limit` run at once
    running = 0
    most = 0
    lock = threading.Lock()

    def blocking(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        if n < limit:
            together.wait()
        with lock:
            running -= 1
        return n

    async def main() -> list[int]:
        return await asyncio.gather(*(threads.run(blocking, n) for n in range(3 * limit)))

    assert asyncio.run(main()) == list(range(3 * limit))
    assert most == limit  # never more threads than the limit


def test_a_cancelled_caller_does_not_break_the_thread_that_ran_its_call() -> None:
    threads = CallThreads(1, "test")
    release = threading.Event()

    async def main() -> str:
        slow = asyncio.ensure_future(threads.run(release.wait, 10))
        await asyncio.sleep(0.05)
        slow.cancel()
        release.set()
        return await threads.run(lambda: "next call answered")

    assert asyncio.run(main()) == "next call answered"
