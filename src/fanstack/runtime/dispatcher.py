"""The dispatcher: long-polls queues, forms batches, runs them in worker pools, settles results.

One thread per consumer polls its queue, holding one of `max_concurrency` slots per batch; batches
run on a thread pool, each borrowing a worker process. Settling a batch deletes what succeeded and
hands failures back through visibility (backoff with full jitter, the failure kept for the DLQ).
A heartbeat extends the visibility of batches still running. `stop` stops polling, returns what
never started, and waits a grace period for the rest.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fanstack.backends import open_backend
from fanstack.backends.base import Backend
from fanstack.core.errors import ConditionalCheckFailed, FanstackError
from fanstack.core.message import ReceivedMessage
from fanstack.core.outcome import Outcome
from fanstack.core.settlement import ConsumerPolicy, settle
from fanstack.core.specs import QueueSpec
from fanstack.runtime.context import Claim
from fanstack.runtime.deferrals import Deferrals
from fanstack.runtime.functions import ConsumerSpec, Function
from fanstack.runtime.invocations import AsyncInvoker
from fanstack.runtime.logs import log_context
from fanstack.runtime.pool import Permit, WorkerPool, WorkerSpec
from fanstack.runtime.records import sqs_event

if TYPE_CHECKING:
    from fanstack.app import App

log = logging.getLogger("fanstack.dispatcher")

POLL_WAIT = 1.0  # seconds a poll waits; bounds how long `stop` takes to stop polling
HEARTBEAT_INTERVAL = 0.25
RECEIVE_MAX = 10
DEFAULT_GRACE = 30.0


@dataclass
class Lease:
    """Messages a running batch holds, and when their visibility was last extended."""

    queue: str
    handles: list[str]
    visibility_timeout: int
    extended_at: float


class Runtime:
    """Worker pools for every function, and (once started) the consumers that feed them."""

    def __init__(self, app: App, *, idle_timeout: float = 60.0) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.stopping = threading.Event()
        self.forced = threading.Event()
        self._pools: dict[str, WorkerPool] = {}
        self._lease_table: dict[int, Lease] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._executor: ThreadPoolExecutor | None = None
        self._futures: set[Future[None]] = set()
        self.rng = random.Random()

    @property
    def backend(self) -> Backend:
        """The app's backend."""
        return self.app.backend

    def pool(self, function: Function) -> WorkerPool:
        """The worker pool of a function, created on first use."""
        with self._lock:
            pool = self._pools.get(function.name)
            if pool is None:
                spec = WorkerSpec(
                    function=function.name,
                    target=function.target,
                    timeout=function.spec.timeout,
                    memory_mb=function.spec.memory_mb,
                    data_dir=self.app.data_dir_path,
                    backend=self.app.backend_url,
                )
                pool = WorkerPool(
                    spec,
                    concurrency=function.spec.concurrency,
                    idle_timeout=self.idle_timeout,
                    release_claims=self._release_claims,
                )
                self._pools[function.name] = pool
            return pool

    def _release_claims(self, claims: Collection[Claim]) -> None:
        """Delete the claims of an invocation that died, so retries need not wait them out."""
        for claim in claims:
            own = claim.store == self.backend.url
            try:
                backend = self.backend if own else open_backend(claim.store, data_dir=".")
            except FanstackError:
                log.exception("could not open a claim's store", extra={"claim": claim.to_dict()})
                continue
            try:
                backend.table_delete(claim.table, claim.key, if_version=claim.version)
            except ConditionalCheckFailed:
                pass  # already expired and taken over: the new holder's record stands
            except FanstackError:
                log.exception("could not release a claim", extra={"claim": claim.to_dict()})
            else:
                log.info("released the claim of a dead invocation", extra=claim.to_dict())
            finally:
                if not own:
                    backend.close()

    def pools(self) -> dict[str, WorkerPool]:
        """Every pool created so far, by function name."""
        with self._lock:
            return dict(self._pools)

    # -- running -------------------------------------------------------------------------

    def start(self) -> None:
        """Start a polling thread per consumer and per async-invoked function, and the heartbeat."""
        backend = self.backend  # provisions every declared resource
        slots_total = 0
        loops: list[ConsumerLoop | AsyncInvoker] = []  # both have name, run, max_concurrency
        for consumer in self.app.consumers:
            function = self.app.functions[consumer.function]
            consumer_loop = ConsumerLoop(
                self, consumer, function, backend.get_queue(consumer.queue)
            )
            loops.append(consumer_loop)
            slots_total += consumer_loop.max_concurrency
        for function in self.app.functions.values():
            invoker = AsyncInvoker(self, function)
            loops.append(invoker)
            slots_total += invoker.max_concurrency
        self._executor = ThreadPoolExecutor(
            max_workers=max(slots_total, 1), thread_name_prefix="fanstack-batch"
        )
        for loop in loops:
            thread = threading.Thread(target=loop.run, name=f"fanstack-poll-{loop.name}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)
        heartbeat = threading.Thread(target=self._heartbeat, name="fanstack-heartbeat")
        heartbeat.daemon = True
        heartbeat.start()
        self._threads.append(heartbeat)

    def run_batch(self, run: Callable[[], None], release: threading.Semaphore) -> None:
        """Run `run()` on the batch executor, releasing the slot when done."""
        assert self._executor is not None

        def task() -> None:
            try:
                run()
            except Exception:
                log.exception("batch failed unexpectedly")
            finally:
                release.release()

        future = self._executor.submit(task)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    def stop(self, grace: float = DEFAULT_GRACE) -> None:
        """Stop polling, let running batches finish within `grace` seconds, then stop workers.

        `force()` (a second signal) ends the grace period early.
        """
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=POLL_WAIT * 3 + 5)
        with self._lock:
            running = list(self._futures)
        deadline = time.monotonic() + grace
        unfinished = set(running)
        while unfinished and not self.forced.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            _, unfinished = wait_futures(unfinished, timeout=min(remaining, HEARTBEAT_INTERVAL))
        if unfinished:
            log.warning(
                "grace period over; stopping running invocations",
                extra={"running_batches": len(unfinished), "grace_seconds": grace},
            )
            self.force()
            wait_futures(unfinished, timeout=10)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        for pool in self.pools().values():
            pool.close()

    def force(self) -> None:
        """Stop running invocations now; their messages go back to their queues at once."""
        self.forced.set()
        for pool in self.pools().values():
            pool.kill_running()

    def close(self) -> None:
        """Stop every worker process (no consumers running)."""
        for pool in self.pools().values():
            pool.close()

    # -- leases and their heartbeat ------------------------------------------------------

    def hold(
        self, queue: str, handles: list[str], visibility_timeout: int, received_at: float
    ) -> int:
        """Track a running batch's messages so the heartbeat extends their visibility."""
        lease = Lease(queue, handles, visibility_timeout, received_at)
        with self._lock:
            self._lease_table[id(lease)] = lease
        return id(lease)

    def release_lease(self, token: int) -> None:
        """Stop extending a batch's visibility (it is being settled)."""
        with self._lock:
            self._lease_table.pop(token, None)

    def _heartbeat(self) -> None:
        while not (self.stopping.is_set() and not self._futures):
            self._extend_leases()
            for pool in self.pools().values():
                pool.reap_idle()
            time.sleep(HEARTBEAT_INTERVAL)

    def _extend_leases(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [
                lease
                for lease in self._lease_table.values()
                if now - lease.extended_at >= max(lease.visibility_timeout / 2, 0.5)
            ]
        for lease in due:
            changes = [(handle, lease.visibility_timeout) for handle in lease.handles]
            try:
                self.backend.set_visibility(lease.queue, changes)
            except FanstackError:
                log.exception("could not extend visibility", extra={"queue": lease.queue})
            lease.extended_at = now


class ConsumerLoop:
    """Polls one queue for one consumer and runs its batches."""

    def __init__(
        self, runtime: Runtime, consumer: ConsumerSpec, function: Function, queue: QueueSpec
    ) -> None:
        self.runtime = runtime
        self.consumer = consumer
        self.function = function
        self.queue = queue
        self.name = f"{queue.name}->{function.name}"
        self.max_concurrency = consumer.max_concurrency or function.spec.concurrency
        self.slots = threading.Semaphore(self.max_concurrency)
        self.deferrals = Deferrals(consumer.retry_later_limit)
        self.policy = ConsumerPolicy(
            report_item_failures=consumer.report_batch_item_failures,
            retry=consumer.retry,
            max_receive_count=queue.max_receive_count,
            retry_later_limit=consumer.retry_later_limit,
        )
        self.received_at = 0.0

    def run(self) -> None:
        """Poll until the runtime stops."""
        stopping = self.runtime.stopping
        breaker = self.function.circuit_breaker
        pool = self.runtime.pool(self.function)
        while not stopping.is_set():
            if breaker is not None and not breaker.allows():
                stopping.wait(min(max(breaker.retry_after(), 0.1), POLL_WAIT))
                continue
            if not self.slots.acquire(timeout=POLL_WAIT):
                continue
            # Lease only what a worker can take now: a warm one, or one batch on a cold start.
            permit = pool.permit(self.name, timeout=POLL_WAIT)
            if permit is None:
                self.slots.release()
                continue
            try:
                batch = self._gather()
            except FanstackError:
                log.exception("receive failed", extra={"queue": self.queue.name})
                batch = []
                stopping.wait(POLL_WAIT)
            if not batch or stopping.is_set():
                permit.cancel()
                self.slots.release()
                if batch:
                    self.runtime.backend.set_visibility(
                        self.queue.name, [(m.receipt_handle, 0) for m in batch], uncount=True
                    )
                continue
            settle = functools.partial(self.settle, batch, self.received_at, permit)
            self.runtime.run_batch(settle, self.slots)

    def _gather(self) -> list[ReceivedMessage]:
        backend = self.runtime.backend
        size = self.consumer.batch_size
        batch = backend.receive(
            self.queue.name, max_messages=min(RECEIVE_MAX, size), wait_seconds=POLL_WAIT
        )
        self.received_at = time.monotonic()
        if not batch:
            return batch
        deadline = time.monotonic() + self.consumer.batch_window
        while len(batch) < size and not self.runtime.stopping.is_set():
            remaining = deadline - time.monotonic()
            more = backend.receive(
                self.queue.name,
                max_messages=min(RECEIVE_MAX, size - len(batch)),
                wait_seconds=max(0.0, min(remaining, 20.0)),
            )
            batch.extend(more)
            if not more and remaining <= 0:
                break
        return batch

    def settle(
        self, batch: list[ReceivedMessage], received_at: float, permit: Permit
    ) -> None:
        """Invoke the function on a batch and settle every message by the outcome."""
        outcome = self._invoke(batch, received_at, permit.run)
        if outcome.signal is not None and len(batch) > 1 and not self.runtime.stopping.is_set():
            # One record asked to be retried later (say, its idempotency key is held by another
            # invocation): run each record alone, so the others do not wait with it.
            log.info(
                "batch asked to retry later; running its records one by one",
                extra={"queue": self.queue.name, "batch_size": len(batch)},
            )
            pool = self.runtime.pool(self.function)
            for message in batch:
                alone = self._invoke([message], time.monotonic(), pool.invoke)
                self._settle([message], alone)
            return
        self._settle(batch, outcome)

    def _invoke(
        self,
        batch: list[ReceivedMessage],
        received_at: float,
        run: Callable[..., Outcome],
    ) -> Outcome:
        runtime = self.runtime
        token = runtime.hold(
            self.queue.name,
            [m.receipt_handle for m in batch],
            self.queue.visibility_timeout,
            received_at,
        )
        fields = _batch_fields(self.queue.name, batch)
        with log_context(function=self.function.name, **fields):
            try:
                outcome: Outcome = run(sqs_event(batch, self.queue), log_fields=fields)
            finally:
                runtime.release_lease(token)
        return outcome

    def _settle(self, batch: Sequence[ReceivedMessage], outcome: Outcome) -> None:
        """Apply the settlement policy's decisions to the queue."""
        backend = self.runtime.backend
        queue = self.queue.name
        expired: set[str] = set()
        if outcome.signal is not None:
            now = time.monotonic()
            expired = {m.id for m in batch if not self.deferrals.allow(m.id, now)}
        decision = settle(
            batch,
            outcome,
            self.policy,
            interrupted=self.runtime.forced.is_set(),
            deferral_expired=expired,
            rng=self.runtime.rng,
        )
        if decision.label not in ("retry-later", "interrupted"):
            self.deferrals.forget([m.id for m in batch])
        with log_context(function=self.function.name, **_batch_fields(queue, batch)):
            if decision.delete:
                for result in backend.delete_messages(queue, list(decision.delete)):
                    if isinstance(result, FanstackError):
                        log.warning("delete failed", extra={"error": str(result)})
            for retry in decision.retry:
                backend.set_visibility(
                    queue, [(retry.receipt_handle, retry.delay)], failure=retry.reason
                )
            if decision.hand_back:
                backend.set_visibility(queue, list(decision.hand_back), uncount=True)
            _log_outcome(outcome, decision.label, len(batch), failed=decision.failed)


def _batch_fields(queue: str, batch: Sequence[ReceivedMessage]) -> dict[str, Any]:
    """What every log line about a batch says: its queue, message ids and receive counts."""
    return {
        "queue": queue,
        "message_ids": [m.id for m in batch],
        "receive_counts": [m.receive_count for m in batch],
    }


def _log_outcome(outcome: Outcome, label: str, size: int, failed: int = 0) -> None:
    extra = {
        "invocation_id": outcome.invocation_id,
        "outcome": label,
        "duration_ms": round(outcome.duration * 1000, 1),
        "cold_start": outcome.cold_start,
        "batch_size": size,
        "failed": failed,
    }
    if outcome.error is not None:
        extra["error_type"] = outcome.error.get("errorType")
        extra["error_message"] = outcome.error.get("errorMessage")
    level = logging.INFO if label in ("success", "retry-later", "interrupted") else logging.ERROR
    log.log(level, "invocation %s", label, extra=extra)
