"""The invocation a worker process is running: Lambda's context object, and claims it holds.

A handler receives `Context`. Code running inside an invocation (such as `@idempotent`) finds it
with `current_invocation()`, to bound what it does by the invocation's deadline and to tell the
dispatcher about claims it holds, so that a claim is released when the invocation times out or
its worker dies, instead of blocking retries until it expires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Context:
    """What Lambda's context object offers a handler: names, ids and the time left."""

    function_name: str
    aws_request_id: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    deadline: float  # time.monotonic()

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds before the invocation times out."""
        return max(0, int(self.remaining_seconds() * 1000))

    def remaining_seconds(self) -> float:
        """Seconds before the invocation times out."""
        return max(0.0, self.deadline - time.monotonic())


@dataclass(frozen=True, slots=True)
class Claim:
    """A conditional record an invocation holds in a table: released if the invocation dies."""

    store: str  # the backend's URL: a table of another app's store is released there
    table: str
    key: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        """The claim as a JSON object."""
        return {"store": self.store, "table": self.table, "key": self.key, "version": self.version}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Claim:
        """A claim from its JSON object."""
        return cls(
            str(value["store"]), str(value["table"]), str(value["key"]), int(value["version"])
        )


class Invocation:
    """The running invocation: its context, and a line to the dispatcher for its claims."""

    def __init__(self, context: Context, notify: Callable[[dict[str, Any]], None]) -> None:
        self.context = context
        self._notify = notify
        self._lock = threading.Lock()  # handler threads may claim concurrently

    def holds(self, claim: Claim) -> None:
        """Tell the dispatcher this invocation holds `claim` (released if it dies)."""
        with self._lock:
            self._notify({"claim": claim.to_dict()})

    def released(self, claim: Claim) -> None:
        """Tell the dispatcher `claim` is settled (finished or given up)."""
        with self._lock:
            self._notify({"release": claim.to_dict()})


_current: ContextVar[Invocation | None] = ContextVar("fanstack_invocation", default=None)


def current_invocation() -> Invocation | None:
    """The invocation this code runs in, or None outside a worker's invocation."""
    return _current.get()


@contextmanager
def running(invocation: Invocation) -> Iterator[Invocation]:
    """Make `invocation` current inside the block."""
    token = _current.set(invocation)
    try:
        yield invocation
    finally:
        _current.reset(token)
