"""What a poller (a consumer, the asynchronous invoker) needs from the dispatcher that runs it.

A Protocol, so the pollers and the dispatcher that owns them do not import each other.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from fanstack.backends.base import Backend
from fanstack.runtime.functions import Function
from fanstack.runtime.pool import WorkerPool


class Host(Protocol):
    """The dispatcher, as its pollers see it."""

    stopping: threading.Event
    forced: threading.Event
    rng: random.Random

    @property
    def backend(self) -> Backend:
        """The backend."""
        ...

    def pool(self, function: Function) -> WorkerPool:
        """The worker pool of `function`."""
        ...

    def run_batch(self, run: Callable[[], None], release: threading.Semaphore) -> None:
        """Run `run()` on the batch executor, releasing the slot when done."""
        ...

    def keep_visible(
        self,
        queue: str,
        receipt_handles: Sequence[str],
        visibility_timeout: int,
        received_at: float,
    ) -> AbstractContextManager[None]:
        """Inside the block, the messages' visibility is extended while the batch runs."""
        ...
