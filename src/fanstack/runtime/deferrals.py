"""Retry-later, bounded: how long a message may ask to come back without its receive counting.

A handler that raises `RetryLater` (or meets an idempotency key held by another invocation) hands
its message back without burning a receive. Unbounded, a message stuck that way would neither
progress nor dead-letter; past the limit, asking again counts as a failed receive.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence


class Deferrals:
    """When each message first asked to be retried later, so that asking is bounded in time.

    A retry-later does not count as a receive; past `limit` seconds it does, and the message
    moves on towards its dead-letter queue like any failure.
    """

    def __init__(self, limit: float, capacity: int = 100_000) -> None:
        self.limit = limit
        self.capacity = capacity
        self._first: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, message_id: str, now: float) -> bool:
        """Whether `message_id` may be retried later without the receive counting."""
        with self._lock:
            first = self._first.setdefault(message_id, now)
            if len(self._first) > self.capacity:
                self._first = {k: v for k, v in self._first.items() if now - v <= self.limit}
            return now - first <= self.limit

    def forget(self, message_ids: Sequence[str]) -> None:
        """The messages were settled (deleted, or failed for real)."""
        with self._lock:
            for message_id in message_ids:
                self._first.pop(message_id, None)
