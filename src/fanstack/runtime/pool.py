"""Pools of worker processes, one pool per function: start on demand, reuse warm, stop idle.

A handler never runs in the dispatcher. An invocation borrows a warm worker, or starts one (a
cold start, timed) while the pool is under the function's concurrency; a timeout kills the worker,
and a worker that dies (segfault, `os._exit`, memory cap) fails only the invocation it held.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from fanstack.core.errors import TooManyRequests
from fanstack.core.outcome import Outcome
from fanstack.core.records import new_id
from fanstack.observability import tracing
from fanstack.observability.function_meter import FunctionMeter
from fanstack.runtime.context import Claim
from fanstack.runtime.process import Worker, WorkerCrashed, WorkerSpec
from fanstack.runtime.protocol import ChannelTimeout
from fanstack.runtime.records import PackedSqsEvent

log = logging.getLogger("fanstack.pool")

DEFAULT_IDLE_TIMEOUT = 60.0


RECENT = 1000  # invocation durations kept for percentiles
RECENT_FAILURES = 20


@dataclass
class PoolStats:
    """Counters of one pool, for logs, the CLI, the dashboard and benchmarks.

    `durations` holds the last invocations' durations (seconds), `recent_failures` the last
    failures (time, invocation id, error type and message), newest last.
    """

    invocations: int = 0
    errors: int = 0
    timeouts: int = 0
    crashes: int = 0
    throttles: int = 0
    cold_starts: int = 0
    cold_start_seconds: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT)
    )
    durations: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT)
    )
    recent_failures: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT_FAILURES)
    )

    def record(self, outcome: Outcome) -> None:
        """Count an ended invocation (a RetryLater signal is not a failure)."""
        self.invocations += 1
        self.durations.append(outcome.duration)
        if outcome.ok or outcome.signal is not None:
            return
        self.errors += 1
        error = outcome.error or {}
        self.recent_failures.append(
            {
                "time": time.time(),
                "invocation_id": outcome.invocation_id,
                "error_type": str(error.get("errorType") or "Error"),
                "error_message": str(error.get("errorMessage") or ""),
            }
        )


ClaimReleaser = Callable[[Collection[Claim]], None]


class WorkerPool:
    """Worker processes of one function, at most `concurrency` at a time.

    `invoke` runs an event now (starting a worker if none is warm). A poller (a consumer, the
    async invoker) `reserve`s first and leases messages only then: a warm worker, or its one
    pending cold start, so a dispatcher that dies while workers start has leased one batch per
    poller, not one per slot.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        concurrency: int,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        release_claims: ClaimReleaser | None = None,
    ) -> None:
        self.spec = spec
        self.concurrency = concurrency
        self.idle_timeout = idle_timeout
        self.stats = PoolStats()
        self.meter = FunctionMeter(spec.function)
        self._release_claims = release_claims
        self._idle: list[Worker] = []
        self._running: set[Worker] = set()
        self._busy = 0
        self._cold_pending: set[str] = set()  # pollers waiting on a cold start
        # Per poller: leased batches waiting for a warm worker.
        self._waiting_for_warm: collections.Counter[str] = collections.Counter()
        self._closed = False
        self._changed = threading.Condition()
        self.listeners: list[Callable[[], None]] = []  # told whenever a slot may have freed

    @property
    def size(self) -> int:
        """Worker processes alive now (busy and idle)."""
        with self._changed:
            return self._busy + len(self._idle)

    def invoke(
        self,
        event: Any,
        *,
        block: bool = True,
        log_fields: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Run the handler on `event` in a worker; throttled (TooManyRequests) if not `block`."""
        worker = self.acquire(block)
        return self.run_on(worker, event, log_fields)

    def permit(self, poller: str, timeout: float) -> Permit | None:
        """Permission for `poller` to lease messages now, or None after `timeout`.

        Granted to each poller for one batch per warm worker (the next batch of a busy worker
        waits for it, so the worker never waits for a receive), or for one batch per poller that
        will wait on a cold start: messages are leased only as fast as workers become ready.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._closed:
                if self._waiting_for_warm[poller] < self._warm_workers():
                    self._waiting_for_warm[poller] += 1
                    return Permit(self, poller, cold=False)
                if poller not in self._cold_pending and self._busy < self.concurrency:
                    self._cold_pending.add(poller)
                    return Permit(self, poller, cold=True)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        return None

    def start_worker(self) -> Worker:
        """Start a worker in a reserved slot (a cold start, timed and logged)."""
        worker = Worker(self.spec)
        self.stats.cold_starts += 1
        self.stats.cold_start_seconds.append(worker.cold_start_seconds)
        self.meter.cold_start(worker.cold_start_seconds)
        log.info(
            "cold start",
            extra={
                "function": self.spec.function,
                "worker_pid": worker.pid,
                "cold_start_ms": round(worker.cold_start_seconds * 1000, 1),
            },
        )
        return worker

    def _warm_workers(self) -> int:
        """Workers ready now: invoking, or idle and not due to stop (the caller holds the lock)."""
        cutoff = time.monotonic() - self.idle_timeout
        # `exited` is what is known without a system call: a worker that died unseen is found
        # when a batch takes it (`acquire`), which then starts another.
        fresh = sum(1 for w in self._idle if w.last_used >= cutoff and not w.exited)
        return fresh + len(self._running)

    def warm_permit_done(self, poller: str) -> None:
        """A warm permit's batch has a worker (or was never leased)."""
        with self._changed:
            self._waiting_for_warm[poller] -= 1
            self._changed.notify_all()
        for listener in self.listeners:
            listener()

    def cold_start_done(self, poller: str) -> None:
        """`poller`'s cold start is under way (or not needed): it may lease on one again."""
        with self._changed:
            self._cold_pending.discard(poller)
            self._changed.notify_all()
        for listener in self.listeners:
            listener()

    def run_on(
        self,
        worker: Worker | None,
        event: Any,
        log_fields: Mapping[str, Any] | None,
        on_started: Callable[[], None] | None = None,
    ) -> Outcome:
        """Run one invocation in `worker` (or one started now in its reserved slot, then
        `on_started`), as a span of the current trace."""
        with self.invocation_span(cold=worker is None) as span:
            outcome = self._run(worker, self.request(event, log_fields), on_started)
            ended(span, outcome)
            return outcome

    def invocation_span(self, *, cold: bool) -> AbstractContextManager[trace.Span | None]:
        """The span of one invocation (`ended` marks how it ended)."""
        return tracing.span(
            f"invoke {self.spec.function}",
            attributes={"faas.invoked_name": self.spec.function, "faas.coldstart": cold},
        )

    def request(self, event: Any, log_fields: Mapping[str, Any] | None) -> dict[str, Any]:
        """What a worker is sent to run `event` (a new invocation id; the current trace)."""
        request = {
            "invocation_id": new_id(),
            "timeout": self.spec.timeout,
            "memory_mb": self.spec.memory_mb,
            "log_fields": dict(log_fields or {}),
            "trace_context": tracing.context_of_current(),
        }
        if isinstance(event, PackedSqsEvent):  # the worker builds the records
            request["sqs_event"] = event.payload
        else:
            request["event"] = event
        return request

    def _run(
        self,
        worker: Worker | None,
        request: dict[str, Any],
        on_started: Callable[[], None] | None,
    ) -> Outcome:
        started = time.monotonic()
        cold = worker is None
        self.meter.started()
        answer: dict[str, Any] | ChannelTimeout | WorkerCrashed | None = None
        try:
            if worker is None:
                try:
                    worker = self.start_worker()
                finally:
                    if on_started is not None:
                        on_started()
            self.running(worker)
            answer = worker.invoke(request, self.spec.timeout)
        except (ChannelTimeout, WorkerCrashed) as exc:
            answer = exc
        finally:  # None: the dispatcher's own failure (it is logged where caught)
            outcome = self.end(worker, answer, started, request["invocation_id"], cold)
        return outcome

    def running(self, worker: Worker) -> None:
        """`worker` runs an invocation now (`kill_running` would stop it); `meter.started()`
        was called when the invocation began."""
        with self._changed:
            self._running.add(worker)

    def end(
        self,
        worker: Worker | None,
        answer: dict[str, Any] | ChannelTimeout | WorkerCrashed | None,
        started: float,
        invocation_id: str,
        cold: bool,
    ) -> Outcome:
        """The outcome of an invocation begun at `started`, counted, its worker let go: `answer`
        is the worker's answer, the timeout (worker killed) or crash it ended with (a crash
        with no worker: it failed to start), or None for the dispatcher's own failure."""
        healthy = True
        if isinstance(answer, ChannelTimeout):
            healthy = False
            self.stats.timeouts += 1
            if worker is not None:
                self._abandon_claims(worker)
            message = f"Task timed out after {self.spec.timeout:.2f} seconds"
            outcome = self._failed("Runtime.Timeout", message, started, invocation_id, cold)
        elif isinstance(answer, WorkerCrashed):
            healthy = False
            if worker is None:  # it did not start
                outcome = self._failed("Runtime.InitError", str(answer), started, invocation_id)
            else:
                self.stats.crashes += 1
                self._abandon_claims(worker)
                outcome = self._failed(
                    "Runtime.ExitError", str(answer), started, invocation_id, cold
                )
        elif answer is None:
            outcome = self._failed("Runtime.Unknown", "no outcome", started, invocation_id)
        else:
            healthy = not answer.get("exit")
            outcome = Outcome(
                ok=bool(answer.get("ok")),
                result=answer.get("result"),
                error=answer.get("error"),
                signal=answer.get("signal"),
                delay=float(answer.get("delay") or 0.0),
                duration=time.monotonic() - started,
                cold_start=cold,
                invocation_id=invocation_id,
            )
        self.stats.record(outcome)
        self.meter.finished(outcome)
        self._release(worker, healthy)
        return outcome

    def _abandon_claims(self, worker: Worker) -> None:
        """The invocation died holding claims: release them now rather than at their expiry."""
        if worker.claims and self._release_claims is not None:
            self._release_claims(list(worker.claims))
        worker.claims = set()

    def _failed(
        self,
        error_type: str,
        message: str,
        started: float,
        invocation_id: str,
        cold: bool = True,
    ) -> Outcome:
        error = {"errorType": error_type, "errorMessage": message, "stackTrace": []}
        return Outcome(
            ok=False,
            error=error,
            duration=time.monotonic() - started,
            cold_start=cold,
            invocation_id=invocation_id,
        )

    def acquire(self, block: bool) -> Worker | None:
        """A warm worker, or None meaning: start one (a slot is reserved)."""
        with self._changed:
            while True:
                if self._closed:
                    raise TooManyRequests(f"function {self.spec.function!r} is shutting down")
                taken, worker = self._take()
                if taken:
                    return worker
                if not block:
                    self.stats.throttles += 1
                    self.meter.throttled()
                    raise TooManyRequests(
                        f"function {self.spec.function!r} is at its concurrency limit "
                        f"({self.concurrency})"
                    )
                self._changed.wait()

    def try_acquire(self) -> tuple[bool, Worker | None]:
        """`acquire` without waiting or counting a throttle: (True, a warm worker), (True,
        None): a slot reserved for a worker to start, or (False, None): none now (`listeners`
        are told when that may have changed)."""
        with self._changed:
            return (False, None) if self._closed else self._take()

    def _take(self) -> tuple[bool, Worker | None]:
        """A warm worker or a slot to start one in, if either is free (under the lock)."""
        while self._idle:
            worker = self._idle.pop()
            if worker.alive():
                self._busy += 1
                return True, worker
        if self._busy < self.concurrency:
            self._busy += 1
            return True, None
        return False, None

    def give_back(self, worker: Worker | None) -> None:
        """Let go of what `acquire` or `try_acquire` gave and no invocation used."""
        self._release(worker, healthy=True)

    def _release(self, worker: Worker | None, healthy: bool) -> None:
        with self._changed:
            self._busy -= 1
            if worker is not None:
                self._running.discard(worker)
                if healthy and worker.alive() and not self._closed:
                    self._idle.append(worker)
                else:
                    worker.kill()
            self._changed.notify_all()
        for listener in self.listeners:
            listener()

    def reap_idle(self) -> int:
        """Stop workers idle longer than `idle_timeout`; returns how many stopped."""
        cutoff = time.monotonic() - self.idle_timeout
        with self._changed:
            stale = [w for w in self._idle if w.last_used < cutoff]
            self._idle = [w for w in self._idle if w.last_used >= cutoff]
        for worker in stale:
            worker.stop()
        return len(stale)

    def kill_running(self) -> int:
        """Kill workers in the middle of an invocation (shutdown past its grace period)."""
        with self._changed:
            running = list(self._running)
        for worker in running:
            # Its pipes stay open: whoever waits on its answer sees it end, then lets it go
            # (closing them here could free a descriptor a poll still watches).
            worker.signal_kill()
        return len(running)

    def close(self) -> None:
        """Stop idle workers now; busy ones are stopped as their invocations return."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._changed.notify_all()
        for worker in idle:
            worker.stop()


class Permit:
    """A poller's permission to lease one batch; `run` it or `cancel` it."""

    def __init__(self, pool: WorkerPool, poller: str, *, cold: bool) -> None:
        self.pool = pool
        self.poller = poller
        self.cold = cold
        self._open = True

    def run(self, event: Any, log_fields: Mapping[str, Any] | None = None) -> Outcome:
        """Run `event` in a worker (the permit ends once the batch has one)."""
        worker = self.pool.acquire(block=True)
        if worker is not None:
            self.cancel()
        return self.pool.run_on(worker, event, log_fields, on_started=self.cancel)

    def try_take(self) -> tuple[bool, Worker | None]:
        """`run`'s worker, without waiting (`WorkerPool.try_acquire`): the permit ends here
        when a warm worker is taken; with a slot to start one in, once it has started
        (`cancel` then)."""
        taken, worker = self.pool.try_acquire()
        if worker is not None:
            self.cancel()
        return taken, worker

    def cancel(self) -> None:
        """Nothing (more) to wait for: the poller may lease again on what this permit held."""
        if not self._open:
            return
        self._open = False
        if self.cold:
            self.pool.cold_start_done(self.poller)
        else:
            self.pool.warm_permit_done(self.poller)


def ended(span: trace.Span | None, outcome: Outcome) -> None:
    """Mark an invocation's span with how it ended."""
    if span is not None:
        span.set_attribute("faas.invocation_id", outcome.invocation_id)
    if not outcome.ok and outcome.signal is None:
        tracing.fail(span, outcome.error_summary.partition("\n")[0])
