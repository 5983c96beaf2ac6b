"""The step runner: the worker service that leases workflow steps and has the engine act on them.

Threads (`concurrency`) each take one step at a time; one lease takes as many steps as there
are free threads (up to `LEASE_BATCH`); a heartbeat keeps the steps that are running hidden
from other workers (a step's lease is short, so a dead worker's steps come back within
seconds), and a step is deleted only once the engine is done with it: the done steps of a
moment are deleted together (a step redelivered before its delete lands does nothing: it is
marked dispatched).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fanstack.backends.base import Backend
from fanstack.core.errors import ExecutionDoesNotExist, FanstackError
from fanstack.core.message import ReceivedMessage
from fanstack.workflows.engine import Engine, Machines
from fanstack.workflows.steps import Step
from fanstack.workflows.store import STEP_QUEUE
from fanstack.workflows.task_states import TaskRunner

log = logging.getLogger("fanstack.workflows")

STEP_VISIBILITY = 10  # short, so a dead worker's steps come back soon; held ones are extended
HEARTBEAT = 3.0
POLL_WAIT = 1.0
DEFAULT_CONCURRENCY = 16
LEASE_BATCH = 10  # SQS's most per receive
DELETE_EVERY = 0.01  # seconds done steps wait to be deleted together


class StepRunner:
    """Runs workflow steps (a worker service)."""

    name = "workflow-steps"

    def __init__(
        self, machines: Machines, run_task: TaskRunner, concurrency: int = DEFAULT_CONCURRENCY
    ) -> None:
        self.machines = machines
        self.run_task = run_task
        self.concurrency = concurrency
        self._held: set[str] = set()  # receipt handles of the steps running now
        self._done: list[str] = []  # receipt handles of the steps to delete
        self._lock = threading.Lock()
        self._done_ready = threading.Condition(self._lock)

    def run(self, backend: Backend, stopping: threading.Event) -> None:
        """Lease and run steps until stopped."""
        engine = Engine(backend, self.machines, self.run_task)
        slots = threading.Semaphore(self.concurrency)
        beat = threading.Thread(
            target=self.heartbeat, args=(backend, stopping), name="fanstack-step-heartbeat"
        )
        beat.daemon = True
        beat.start()
        # The deleter ends once this loop has, however it ended (a receive that raised too).
        finished = threading.Event()
        deleter = threading.Thread(
            target=self.delete_done, args=(backend, finished), name="fanstack-step-deleter"
        )
        deleter.start()
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="fanstack-step") as pool:
                while not stopping.is_set():
                    if not slots.acquire(timeout=POLL_WAIT):
                        continue
                    free = 1
                    while free < LEASE_BATCH and slots.acquire(blocking=False):
                        free += 1
                    batch = backend.receive(
                        STEP_QUEUE,
                        max_messages=free,
                        wait_seconds=POLL_WAIT,
                        visibility_timeout=STEP_VISIBILITY,
                    )
                    for _ in range(free - len(batch)):
                        slots.release()
                    for message in batch:
                        pool.submit(self.handle, engine, message, slots)
        finally:
            finished.set()
            with self._done_ready:
                self._done_ready.notify_all()
            deleter.join()

    def delete_done(self, backend: Backend, finished: threading.Event) -> None:
        """Delete the done steps of a moment together, until `finished` and none are left."""
        while True:
            with self._done_ready:
                while not self._done and not finished.is_set():
                    self._done_ready.wait(POLL_WAIT)
                if not self._done and finished.is_set():
                    return
            time.sleep(DELETE_EVERY)  # let the steps finishing now join this delete
            with self._lock:
                done, self._done = self._done[:LEASE_BATCH], self._done[LEASE_BATCH:]
            try:
                backend.delete_messages(STEP_QUEUE, done)
            except FanstackError:  # they come back and, dispatched, do nothing
                log.exception("could not delete %d finished workflow steps", len(done))

    def heartbeat(self, backend: Backend, stopping: threading.Event) -> None:
        """Keep the steps that are running (a long task) hidden from other workers."""
        while not stopping.wait(HEARTBEAT):
            with self._lock:
                held = [(handle, STEP_VISIBILITY) for handle in self._held]
            if held:
                try:
                    backend.set_visibility(STEP_QUEUE, held)
                except FanstackError:
                    log.exception("could not extend the visibility of running steps")

    def handle(self, engine: Engine, message: ReceivedMessage, slots: threading.Semaphore) -> None:
        """Run one step; delete its message once done (a failure leaves it to come back)."""
        with self._lock:
            self._held.add(message.receipt_handle)
        try:
            step = Step.from_json(message.body)
            try:
                engine.process(step)
            except ExecutionDoesNotExist:
                # Started a moment ago: its record lands just after its first step.
                engine.backend.set_visibility(STEP_QUEUE, [(message.receipt_handle, 1)])
                return
            with self._done_ready:
                self._done.append(message.receipt_handle)
                self._done_ready.notify()
        except Exception:
            log.exception("a workflow step failed; it will run again")
        finally:
            with self._lock:
                self._held.discard(message.receipt_handle)
            slots.release()
