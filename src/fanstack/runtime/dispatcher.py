"""The dispatcher: long-polls queues, forms batches, runs them in worker pools, settles results.

One thread per consumer polls its queue, holding one of `max_concurrency` slots per batch; batches
run on a thread pool, each borrowing a worker process. Settling a batch deletes what succeeded and
hands failures back through visibility (backoff with full jitter, the failure kept for the DLQ).
A heartbeat extends the visibility of batches still running. `stop` stops polling, returns what
never started, and waits a grace period for the rest.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass

from fanstack.backends import open_backend
from fanstack.backends.base import Backend
from fanstack.core.errors import ConditionalCheckFailed, FanstackError
from fanstack.core.functions import ConsumerSpec
from fanstack.runtime.consumers import ConsumerLoop
from fanstack.runtime.context import Claim
from fanstack.runtime.functions import Function
from fanstack.runtime.heartbeat import Heartbeat
from fanstack.runtime.invocations import AsyncInvoker
from fanstack.runtime.polling import POLL_WAIT
from fanstack.runtime.pool import WorkerPool
from fanstack.runtime.process import WorkerSpec
from fanstack.runtime.services import Service

log = logging.getLogger("fanstack.dispatcher")

HEARTBEAT_INTERVAL = 0.25
DEFAULT_GRACE = 30.0


@dataclass(frozen=True, slots=True)
class WorkerStore:
    """Where worker processes find the store the dispatcher uses (tables, idempotency)."""

    data_dir: str | None
    backend_url: str | None


class Dispatcher:
    """Worker pools for every function, and (once started) the consumers that feed them.

    It is given what was declared — functions and consumers, live mappings an app keeps adding
    to — and how to reach the backend; worker processes open the same store, `worker_store()`,
    asked when a pool starts.
    """

    def __init__(
        self,
        backend: Callable[[], Backend],
        *,
        functions: Mapping[str, Function],
        consumers: Sequence[ConsumerSpec],
        worker_store: Callable[[], WorkerStore],
        services: Callable[[], Sequence[Service]] = lambda: (),
        idle_timeout: float = 60.0,
    ) -> None:
        self._backend = backend
        self.functions = functions
        self.consumers = consumers
        self.worker_store = worker_store
        self.services = services
        self.idle_timeout = idle_timeout
        self.stopping = threading.Event()
        self.forced = threading.Event()
        self._pools: dict[str, WorkerPool] = {}
        self.heartbeat = Heartbeat()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._executor: ThreadPoolExecutor | None = None
        self._futures: set[Future[None]] = set()
        self.rng = random.Random()

    @property
    def backend(self) -> Backend:
        """The backend (opened, with every declared resource, on first use)."""
        return self._backend()

    def pool(self, function: Function) -> WorkerPool:
        """The worker pool of a function, created on first use."""
        with self._lock:
            pool = self._pools.get(function.name)
            if pool is None:
                store = self.worker_store()
                spec = WorkerSpec(
                    function=function.name,
                    target=function.target,
                    timeout=function.spec.timeout,
                    memory_mb=function.spec.memory_mb,
                    data_dir=store.data_dir,
                    backend=store.backend_url,
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

    @property
    def threads(self) -> list[threading.Thread]:
        """The threads `start` started (pollers, services, heartbeat); none before it ran."""
        return list(self._threads)

    def start(self) -> None:
        """Start a polling thread per consumer, per async-invoked function and per service."""
        backend = self.backend  # provisions every declared resource
        slots_total = 0
        loops: list[ConsumerLoop | AsyncInvoker] = []  # both have name, run, max_concurrency
        for consumer in self.consumers:
            function = self.functions[consumer.function]
            consumer_loop = ConsumerLoop(
                self, consumer, function, backend.get_queue(consumer.queue)
            )
            loops.append(consumer_loop)
            slots_total += consumer_loop.max_concurrency
        for function in self.functions.values():
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
        for service in self.services():
            thread = threading.Thread(
                target=self._run_service, args=(service,), name=f"fanstack-{service.name}"
            )
            thread.daemon = True
            thread.start()
            self._threads.append(thread)
        heartbeat = threading.Thread(target=self._heartbeat, name="fanstack-heartbeat")
        heartbeat.daemon = True
        heartbeat.start()
        self._threads.append(heartbeat)

    def _run_service(self, service: Service) -> None:
        while not self.stopping.is_set():
            try:
                service.run(self.backend, self.stopping)
            except Exception:
                log.exception("service failed; restarting it", extra={"service": service.name})
                self.stopping.wait(POLL_WAIT)

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

    # -- the heartbeat thread -----------------------------------------------------------

    def _heartbeat(self) -> None:
        while not (self.stopping.is_set() and not self._futures):
            self.heartbeat.beat(self.backend)
            for pool in self.pools().values():
                pool.reap_idle()
            time.sleep(HEARTBEAT_INTERVAL)
