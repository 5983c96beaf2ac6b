"""The dispatcher: leases batches from queues, runs them in worker pools, settles results.

One thread, the driver (runtime/driver.py), leases, invokes and settles the batches of every
queue consumer; each function's asynchronous invocations are polled by `concurrency` threads of
their own (runtime/polling.py). Settling a batch deletes what succeeded and hands failures back
through visibility (backoff with full jitter, the failure kept for the DLQ). A heartbeat extends
the visibility of batches still running. `stop` stops leasing, returns what never started, and
waits a grace period for the rest.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from fanstack.backends import open_backend
from fanstack.backends.base import Backend
from fanstack.core.errors import ConditionalCheckFailed, FanstackError
from fanstack.core.functions import ConsumerSpec
from fanstack.runtime import affinity
from fanstack.runtime.consumers import ConsumerLoop
from fanstack.runtime.context import Claim
from fanstack.runtime.driver import Driver
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
        self._pollers: list[threading.Thread] = []
        self._running = 0  # batches running now
        self._drivers: list[Driver] = []
        self._pinned = False  # this process's threads kept to one CPU (`start`)
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
        """Start the driver of every consumer (and its watchers), `concurrency` polling threads
        per function's asynchronous invocations, and a thread per service. The process's
        threads keep to one CPU meanwhile, its workers to all of them (`affinity`)."""
        backend = self.backend  # provisions every declared resource
        if not self._pinned:
            self._pinned = affinity.pin_threads() is not None
        loops = []
        for consumer in self.consumers:
            function = self.functions[consumer.function]
            loops.append(ConsumerLoop(self, consumer, function, backend.get_queue(consumer.queue)))
        if backend.calls_are_local():
            self._drivers = [Driver(self, loops, bulk=True)] if loops else []
        else:
            # Each call is a round trip to a server: a driver per batch slot keeps as many
            # round trips going at once as there are batches.
            self._drivers = [
                Driver(self, [loop], slots=1) for loop in loops for _ in range(loop.max_concurrency)
            ]
        for driver in self._drivers:
            main, *watchers = driver.threads()
            self._pollers.append(main)
            self._threads.extend([main, *watchers])
            for thread in [main, *watchers]:
                thread.start()
        for function in self.functions.values():
            invoker = AsyncInvoker(self, function)
            for n in range(invoker.max_concurrency):
                thread = threading.Thread(
                    target=invoker.run, name=f"fanstack-poll-{invoker.name}-{n}"
                )
                thread.daemon = True
                thread.start()
                self._pollers.append(thread)
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

    def run_batch(self, run: Callable[[], None]) -> None:
        """Run a leased batch's `run()` on this (polling) thread, counted as running until it
        ends: `stop` waits for it within the grace period."""
        self.batch_started()
        try:
            run()
        except Exception:
            log.exception("batch failed unexpectedly")
        finally:
            self.batch_ended()

    def batch_started(self) -> None:
        """A leased batch is running: `stop` waits for it within the grace period."""
        with self._lock:
            self._running += 1

    def batch_ended(self) -> None:
        """A batch `batch_started` counted has ended."""
        with self._lock:
            self._running -= 1

    def _running_batches(self) -> int:
        with self._lock:
            return self._running

    def stop(self, grace: float = DEFAULT_GRACE) -> None:
        """Stop polling, let running batches finish within `grace` seconds, then stop workers.

        `force()` (a second signal) ends the grace period early.
        """
        self.stopping.set()
        for driver in self._drivers:
            driver.wake()
        # A poller between batches stops within a poll's wait; one running a batch, once the
        # batch is settled: within `grace`, or at once if forced.
        deadline = time.monotonic() + grace
        idle_bound = time.monotonic() + POLL_WAIT * 3 + 5
        while any(thread.is_alive() for thread in self._pollers):
            now = time.monotonic()
            running = self._running_batches()
            if running and (self.forced.is_set() or now >= deadline):
                log.warning(
                    "grace period over; stopping running invocations",
                    extra={"running_batches": running, "grace_seconds": grace},
                )
                self.force()
                killed = time.monotonic() + 10  # the killed invocations' batches settle
                for thread in self._pollers:
                    thread.join(timeout=max(0.0, killed - time.monotonic()))
                break
            if not running and now >= idle_bound:
                break
            for thread in self._pollers:
                if thread.is_alive():
                    thread.join(timeout=HEARTBEAT_INTERVAL)
                    break
        for thread in self._threads:
            thread.join(timeout=POLL_WAIT * 3 + 5)
        if not any(thread.is_alive() for thread in self._threads):
            for driver in self._drivers:
                driver.close()
        for pool in self.pools().values():
            pool.close()
        self._unpin()

    def _unpin(self) -> None:
        if self._pinned:
            self._pinned = False
            affinity.unpin_threads()

    def force(self) -> None:
        """Stop running invocations now; their messages go back to their queues at once."""
        self.forced.set()
        for pool in self.pools().values():
            pool.kill_running()

    def close(self) -> None:
        """Stop every worker process (no consumers running); the process's threads get their
        CPUs back if `stop` did not give them."""
        for pool in self.pools().values():
            pool.close()
        self._unpin()

    # -- the heartbeat thread -----------------------------------------------------------

    def _heartbeat(self) -> None:
        while not (self.stopping.is_set() and not self._running_batches()):
            self.heartbeat.beat(self.backend)
            for pool in self.pools().values():
                pool.reap_idle()
            time.sleep(HEARTBEAT_INTERVAL)
