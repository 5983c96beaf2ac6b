"""What a consumer and a poller (the asynchronous invoker) need from the dispatcher running them.

A Protocol, so the pollers and the dispatcher that owns them do not import each other.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Protocol

from fanstack.backends.base import Backend
from fanstack.runtime.functions import Function
from fanstack.runtime.heartbeat import Heartbeat
from fanstack.runtime.pool import WorkerPool


class Host(Protocol):
    """The dispatcher, as its pollers see it."""

    stopping: threading.Event
    forced: threading.Event
    rng: random.Random
    heartbeat: Heartbeat  # keeps a running batch's messages invisible

    @property
    def backend(self) -> Backend:
        """The backend."""
        ...

    def pool(self, function: Function) -> WorkerPool:
        """The worker pool of `function`."""
        ...

    def run_batch(self, run: Callable[[], None]) -> None:
        """Run a leased batch's `run()` on the calling (polling) thread, counted as running."""
        ...
