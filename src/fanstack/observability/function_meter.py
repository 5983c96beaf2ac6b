"""The Prometheus figures of one function: invocations, errors by type, durations, cold starts."""

from __future__ import annotations

from fanstack.core.outcome import Outcome
from fanstack.observability.metrics import Metrics, enabled, metrics


class FunctionMeter:
    """Counts one function's invocations in the process's metrics (nothing when they are off)."""

    def __init__(self, function: str, instruments: Metrics | None = None) -> None:
        self.function = function
        self._metrics = instruments if instruments is not None else (
            metrics() if enabled() else None
        )
        if self._metrics is not None:
            self._invocations = self._metrics.invocations.labels(function)
            self._duration = self._metrics.duration.labels(function)
            self._running = self._metrics.concurrency.labels(function)

    def started(self) -> None:
        """An invocation begins (it holds one unit of the function's concurrency)."""
        if self._metrics is not None:
            self._running.inc()

    def finished(self, outcome: Outcome) -> None:
        """An invocation ended: count it, its duration and, if it failed, its error type."""
        if self._metrics is None:
            return
        self._running.dec()
        self._invocations.inc()
        self._duration.observe(outcome.duration)
        if not outcome.ok and outcome.signal is None and outcome.error is not None:
            error_type = str(outcome.error.get("errorType") or "Error")
            self._metrics.errors.labels(self.function, error_type).inc()

    def throttled(self) -> None:
        """An invocation was refused at the concurrency limit."""
        if self._metrics is not None:
            self._metrics.throttles.labels(self.function).inc()

    def cold_start(self, seconds: float) -> None:
        """A worker process was started for the function, taking `seconds`."""
        if self._metrics is not None:
            self._metrics.cold_starts.labels(self.function).observe(seconds)
