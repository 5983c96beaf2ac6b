"""The visibility heartbeat: a running batch's messages stay invisible for as long as it runs.

`keep_visible` wraps an invocation; while inside it, `beat` (called every fraction of a second
by the dispatcher's heartbeat thread) extends the batch's visibility timeout at half-time, so a
slow handler is not raced by a second consumer of the same messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from fanstack.backends.base import Backend
from fanstack.core.errors import FanstackError

log = logging.getLogger("fanstack.dispatcher")

MIN_EXTENSION_INTERVAL = 0.5


@dataclass
class HeldBatch:
    """Messages a running batch holds, and when their visibility was last extended."""

    queue: str
    receipt_handles: Sequence[str]
    visibility_timeout: int
    extended_at: float

    def keep_only(self, receipt_handles: Sequence[str]) -> None:
        """Extend these from now on, no others (a new sequence: `beat` reads it on a thread
        of its own)."""
        self.receipt_handles = receipt_handles

    def cover(self, since: float, visibility_timeout: int) -> None:
        """Messages joined whose visibility runs from `since` for `visibility_timeout`:
        extend as the earliest of them needs."""
        self.extended_at = min(self.extended_at, since)
        self.visibility_timeout = min(self.visibility_timeout, visibility_timeout)


class Heartbeat:
    """The batches running now, whose visibility is extended until they finish."""

    def __init__(self) -> None:
        self._held: dict[int, HeldBatch] = {}
        self._lock = threading.Lock()

    @contextmanager
    def keep_visible(
        self,
        queue: str,
        receipt_handles: Sequence[str],
        visibility_timeout: int,
        received_at: float,
    ) -> Iterator[HeldBatch]:
        """Inside the block, the messages' visibility is extended at half-time. The block gets
        the record the heartbeat reads (`HeldBatch.keep_only`, `HeldBatch.cover`)."""
        held = HeldBatch(queue, receipt_handles, visibility_timeout, received_at)
        with self._lock:
            self._held[id(held)] = held
        try:
            yield held
        finally:
            with self._lock:
                self._held.pop(id(held), None)

    def beat(self, backend: Backend) -> None:
        """Extend the visibility of every held batch that is half-way through it."""
        now = time.monotonic()
        with self._lock:
            due = [
                held
                for held in self._held.values()
                if now - held.extended_at
                >= max(held.visibility_timeout / 2, MIN_EXTENSION_INTERVAL)
            ]
        for held in due:
            changes = [(handle, held.visibility_timeout) for handle in held.receipt_handles]
            try:
                backend.set_visibility(held.queue, changes)
            except FanstackError:
                log.exception("could not extend visibility", extra={"queue": held.queue})
            held.extended_at = now
