"""One NATS connection on its own event loop thread, opened with retries.

User threads call into the loop with `run`; opening (connect, then whatever `prepare` makes
ready) is retried with exponential backoff and jitter for the URL's `connect_timeout`
(`startup.py`). Once open, the client reconnects forever. The loop is uvloop's: every delivery,
acknowledgement and call from a user thread passes through it, and its scheduling, sockets and
thread-safe calls cost a fraction of the standard loop's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

import uvloop
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoServersError

from fanstack.backends.nats.options import NatsOptions
from fanstack.backends.nats.startup import ATTEMPT_TIMEOUT, is_transient, retry_until_ready
from fanstack.core.errors import BackendUnavailable, FanstackError

log = logging.getLogger("fanstack.nats")

T = TypeVar("T")
REQUEST_TIMEOUT = 10.0
# What a call on the loop may fail with that means NATS cannot be reached or answer now.
_FAILURES = (NatsError, OSError, TimeoutError)
SERVER_CONNECT_TIMEOUT = 5  # one TCP connection and handshake, within one opening attempt
RECONNECT_HOOK_TIMEOUT = 30.0  # seconds a reconnect hook is retried while it fails


class Connection:
    """A NATS client, its event loop thread, and the calls into it."""

    def __init__(
        self, options: NatsOptions, prepare: Callable[[Client], Awaitable[None]]
    ) -> None:
        self.id = uuid.uuid4().hex
        self._prepare = prepare
        self._ready = False
        self._connect_error: BaseException | None = None
        # Run after every reconnect (on the loop), retried while the server is not ready yet.
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []
        self._hooks: set[asyncio.Task[None]] = set()
        self.nc = Client()
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fanstack-nats")
        self._thread.daemon = True
        self._thread.start()
        opening = retry_until_ready(
            lambda: self._connect(list(options.servers)),
            self._discard_connection,
            target=options.hosts,
            connect_timeout=options.connect_timeout,
        )
        try:
            self.run(opening, timeout=options.connect_timeout + 2 * ATTEMPT_TIMEOUT)
        except BackendUnavailable:
            self._stop_loop()
            raise
        self._ready = True

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = REQUEST_TIMEOUT) -> T:
        """Run a coroutine on the loop and wait for it; NATS failures are BackendUnavailable.

        Every call of the sync API crosses threads here, twice: the task is started by one
        callback and its end releases a lock the caller sleeps on (`_Call`), with none of
        `run_coroutine_threadsafe`'s chained futures and condition variable (a fifth of the
        crossing's CPU).
        """
        call = _Call(coroutine)
        try:
            self.loop.call_soon_threadsafe(call.start, self.loop)
        except RuntimeError:  # the loop is closed
            coroutine.close()
            raise
        if not call.finished.acquire(timeout=timeout):
            self.loop.call_soon_threadsafe(call.cancel)
            raise _unavailable(TimeoutError(f"no answer within {timeout} s"))
        try:
            if call.task is None:  # it could not start
                raise call.error or RuntimeError("the call did not start")
            if call.task.cancelled():  # the connection is closing
                raise BackendUnavailable("NATS: the call was cancelled: the connection closed")
            return call.task.result()
        except FanstackError:
            raise
        except _FAILURES as exc:
            raise _unavailable(exc) from exc

    def submit(
        self, coroutine: Coroutine[Any, Any, T], timeout: float = REQUEST_TIMEOUT
    ) -> Future[T]:
        """`run` without waiting: the future resolves as `run` would return or raise."""

        async def bounded() -> T:
            try:
                return await asyncio.wait_for(coroutine, timeout)
            except FanstackError:
                raise
            except _FAILURES as exc:
                raise _unavailable(exc) from exc

        return asyncio.run_coroutine_threadsafe(bounded(), self.loop)

    async def _connect(self, servers: list[str]) -> None:
        """One opening attempt: connect, then prepare the namespace."""
        self.nc, self._connect_error = Client(), None
        try:
            await self.nc.connect(
                servers=servers,
                name=f"fanstack-{self.id[:8]}",
                connect_timeout=SERVER_CONNECT_TIMEOUT,
                max_reconnect_attempts=1,  # each server twice; retry_until_ready does the waiting
                reconnect_time_wait=0.5,  # type: ignore[arg-type]  # seconds; floats work
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        except NoServersError:
            # Say why: refused, timed out, or an authorization violation (which is final).
            if self._connect_error is None:
                raise
            raise self._connect_error from None
        self.nc.options["max_reconnect_attempts"] = -1  # connected once: never give up
        await self._prepare(self.nc)

    async def _discard_connection(self) -> None:
        """Drop what a failed opening attempt left, so the next one starts clean."""
        client = self.nc
        if client.is_connected or client.is_connecting or client.is_reconnecting:
            with contextlib.suppress(*_FAILURES):
                await asyncio.wait_for(client.close(), REQUEST_TIMEOUT)

    async def _on_error(self, error: Exception) -> None:
        if not self._ready:
            # While opening, retry_until_ready logs each failed attempt: no need to shout.
            # Keep a final error (an authorization violation) over the reset that follows it.
            if self._connect_error is None or is_transient(self._connect_error):
                self._connect_error = error
            log.debug("NATS connection error: %s: %s", type(error).__name__, error)
            return
        log.warning("NATS connection error: %s: %s", type(error).__name__, error)

    async def _on_disconnected(self) -> None:
        if self._ready:
            log.warning("NATS disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        log.info(
            "NATS reconnected to %s",
            self.nc.connected_url.netloc if self.nc.connected_url else "?",
        )
        for hook in self.on_reconnect:
            self._hooks.add(task := asyncio.get_running_loop().create_task(_retried(hook)))
            task.add_done_callback(self._hooks.discard)

    def close(self, before: Callable[[], Awaitable[None]] | None = None) -> None:
        """Drain the connection (after `before`, on the loop) and stop the loop thread."""
        if self.loop.is_closed():
            return
        self._ready = False  # a disconnect from here on is ours, not news

        async def shutdown() -> None:
            if before is not None:
                with contextlib.suppress(*_FAILURES):
                    await before()
            await self.nc.drain()

        try:
            self.run(shutdown(), timeout=10)
        except BackendUnavailable:
            log.warning("NATS connection did not drain cleanly")
        self._stop_loop()

    def _stop_loop(self) -> None:
        async def cancel_all() -> None:
            current = asyncio.current_task()
            pending = [task for task in asyncio.all_tasks() if task is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(5)
        except (TimeoutError, RuntimeError) as exc:
            log.warning("NATS client tasks did not stop cleanly: %s", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self.loop.is_running():
            self.loop.close()


class _Call(Generic[T]):
    """One coroutine a user thread runs on the loop: `finished` is released once it ended."""

    __slots__ = ("coroutine", "error", "finished", "task")

    def __init__(self, coroutine: Coroutine[Any, Any, T]) -> None:
        self.coroutine = coroutine
        self.finished = threading.Lock()
        self.finished.acquire()
        self.task: asyncio.Task[T] | None = None
        self.error: Exception | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop: start the task (a coroutine that cannot start ends the call)."""
        try:
            self.task = loop.create_task(self.coroutine)
        except Exception as error:
            self.coroutine.close()
            self.error = error
            self.finished.release()
            return
        self.task.add_done_callback(self._end)

    def _end(self, _task: asyncio.Task[T]) -> None:
        self.finished.release()

    def cancel(self) -> None:
        """On the loop: the caller stopped waiting."""
        if self.task is not None:
            self.task.cancel()


async def _retried(hook: Callable[[], Awaitable[None]]) -> None:
    """Run a reconnect hook, again every half second while it fails (a restarted server takes
    a moment to serve JetStream), for up to RECONNECT_HOOK_TIMEOUT seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECONNECT_HOOK_TIMEOUT
    while True:
        try:
            await hook()
            return
        except Exception as error:
            if loop.time() >= deadline:
                log.warning("after reconnecting, %s kept failing: %s", hook, error)
                return
            await asyncio.sleep(0.5)


def _unavailable(exc: BaseException) -> BackendUnavailable:
    """A failure of the connection as fanstack reports it."""
    return BackendUnavailable(f"NATS: {type(exc).__name__}: {exc}")
