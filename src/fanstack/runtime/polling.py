"""The poll loop of a function's asynchronous invocations (queue consumers run on the driver,
runtime/driver.py).

Each of a poller's `max_concurrency` threads runs it: take a permit (a worker can take a batch
now), lease a batch, run and settle it on the same thread, and poll again; a poller that is
paused (an open circuit breaker) waits instead. Whatever is leased while stopping goes straight
back, uncounted.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Protocol

from fanstack.core.errors import FanstackError
from fanstack.core.message import ReceivedMessage
from fanstack.runtime.functions import Function
from fanstack.runtime.host import Host
from fanstack.runtime.pool import Permit

log = logging.getLogger("fanstack.dispatcher")

POLL_WAIT = 1.0  # seconds a poll waits; bounds how long `stop` takes to stop polling


class Poller(Protocol):
    """One queue polled for one function."""

    name: str
    queue_name: str
    function: Function
    max_concurrency: int  # threads polling at once, each running one batch at a time

    def pause(self) -> float:
        """Seconds to wait before polling again (0: poll now)."""
        ...

    def gather(self) -> list[ReceivedMessage]:
        """Lease the next batch (empty after a poll's wait)."""
        ...

    def settle(self, batch: list[ReceivedMessage], received_at: float, permit: Permit) -> None:
        """Run a leased batch and settle its messages."""
        ...


def poll(host: Host, poller: Poller) -> None:
    """Poll until the host stops."""
    stopping = host.stopping
    pool = host.pool(poller.function)
    while not stopping.is_set():
        pause = poller.pause()
        if pause > 0:
            stopping.wait(min(pause, POLL_WAIT))
            continue
        # Lease only what a worker can take now: a warm one, or one batch on a cold start.
        permit = pool.permit(poller.name, timeout=POLL_WAIT)
        if permit is None:
            continue
        received_at = time.monotonic()
        try:
            batch = poller.gather()
        except FanstackError:
            log.exception("receive failed", extra={"queue": poller.queue_name})
            batch = []
            stopping.wait(POLL_WAIT)
        if not batch or stopping.is_set():
            permit.cancel()
            if batch:
                handles = [(m.receipt_handle, 0) for m in batch]
                host.backend.set_visibility(poller.queue_name, handles, uncount=True)
            continue
        host.run_batch(functools.partial(poller.settle, batch, received_at, permit))
