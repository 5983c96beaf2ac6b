"""A circuit breaker for calls to a flaky dependency, shared by every process through a table.

Closed: calls pass; `failure_threshold` consecutive failures open it. Open: calls fail fast with
CircuitOpen (a signal, so a consumer leaves its messages in the queue without burning their
receive counts, and stops polling until the cool-down ends). Half-open after `reset_timeout`: one
trial call; success closes the breaker, failure opens it again.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from fanstack.core.errors import (
    CircuitOpen,
    ConditionalCheckFailed,
    FanstackSignal,
    InvalidParameterValue,
)
from fanstack.table import Table

F = TypeVar("F", bound=Callable[..., Any])
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
TRIAL_WAIT = 0.5  # seconds a caller waits while another runs the half-open trial
UPDATE_ATTEMPTS = 50  # compare-and-set rounds before a contended update gives up


class CircuitBreaker:
    """Opens after `failure_threshold` failures in a row; half-opens after `reset_timeout` s."""

    def __init__(
        self,
        table: Table,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if failure_threshold < 1:
            raise InvalidParameterValue(
                f"circuit breaker {name!r}: failure_threshold is {failure_threshold}; need >= 1"
            )
        if reset_timeout <= 0:
            raise InvalidParameterValue(
                f"circuit breaker {name!r}: reset_timeout is {reset_timeout}; need > 0"
            )
        self.table = table
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.clock = clock
        self._key = f"breaker#{name}"

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state()!r})"

    def _record(self) -> tuple[dict[str, Any], int | None]:
        item = self.table.get_item(self._key)
        if item is None:
            return {"failures": 0, "opened_at": None, "trial_at": None}, None
        return dict(item.value), item.version

    def _update(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        for _ in range(UPDATE_ATTEMPTS):
            record, version = self._record()
            new = change(dict(record))
            if new is None:
                return
            try:
                self.table.put(self._key, new, if_absent=version is None, if_version=version)
                return
            except ConditionalCheckFailed:
                continue  # another process changed it; apply the change to the fresh state
        raise ConditionalCheckFailed(
            f"circuit breaker {self.name!r}: its state changed under every one of "
            f"{UPDATE_ATTEMPTS} compare-and-set attempts"
        )

    def _wait(self, record: dict[str, Any]) -> tuple[float, str] | None:
        """(delay, reason) if a call may not go ahead now; None if it may (closed, or a trial)."""
        opened_at = record.get("opened_at")
        if opened_at is None:
            return None
        now = self.clock()
        if now - opened_at < self.reset_timeout:
            delay = opened_at + self.reset_timeout - now
            return delay, f"circuit {self.name!r} is open; retry in {delay:.1f} s"
        trial_at = record.get("trial_at")
        if trial_at is not None and now - trial_at < self.reset_timeout:
            delay = max(TRIAL_WAIT, trial_at + self.reset_timeout - now)
            return delay, f"circuit {self.name!r} is half-open and its trial call is running"
        return None

    def state(self) -> str:
        """`closed`, `open` or `half-open`."""
        record, _ = self._record()
        opened_at = record.get("opened_at")
        if opened_at is None:
            return CLOSED
        return HALF_OPEN if self.clock() - opened_at >= self.reset_timeout else OPEN

    def retry_after(self) -> float:
        """Seconds until an open breaker half-opens; 0 when it is not open."""
        record, _ = self._record()
        opened_at = record.get("opened_at")
        if opened_at is None:
            return 0.0
        return max(0.0, float(opened_at) + self.reset_timeout - self.clock())

    def allows(self) -> bool:
        """Whether a call may go ahead now: closed, or half-open with no trial call running."""
        record, _ = self._record()
        return self._wait(record) is None

    def record_success(self) -> None:
        """A call succeeded: close the breaker."""
        self._update(
            lambda r: (
                None
                if r["failures"] == 0 and r["opened_at"] is None
                else {"failures": 0, "opened_at": None, "trial_at": None}
            )
        )

    def record_failure(self) -> None:
        """A call failed: count it; open at the threshold, or again after a failed trial."""
        now = self.clock()

        def change(record: dict[str, Any]) -> dict[str, Any]:
            failures = int(record["failures"]) + 1
            opened_at = record.get("opened_at")
            if opened_at is not None or failures >= self.failure_threshold:
                opened_at = now  # (re)open: the threshold is reached, or a trial failed
            return {"failures": failures, "opened_at": opened_at, "trial_at": None}

        self._update(change)

    def check(self) -> None:
        """Raise CircuitOpen unless a call may go ahead: closed, or the one half-open trial."""
        record, version = self._record()
        if record.get("opened_at") is None:
            return
        wait = self._wait(record)
        if wait is not None:
            raise CircuitOpen(*wait)
        now = self.clock()
        try:
            self.table.put(self._key, {**record, "trial_at": now}, if_version=version)
        except ConditionalCheckFailed:
            raise CircuitOpen(
                TRIAL_WAIT, f"circuit {self.name!r}: another caller took the trial call"
            ) from None

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call `function` through the breaker."""
        with self:
            return function(*args, **kwargs)

    def __call__(self, function: F) -> F:
        """Use as a decorator: every call goes through the breaker."""

        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return self.call(function, *args, **kwargs)

        return guarded  # type: ignore[return-value]

    def __enter__(self) -> CircuitBreaker:
        self.check()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            self.record_success()
        elif issubclass(kind, Exception) and not issubclass(kind, FanstackSignal):
            self.record_failure()  # a signal (retry later, an inner open circuit) is no failure
