"""Express executions: a whole execution run in memory, in the process that starts it.

Express workflows are at-least-once, in memory, and last 5 minutes at most (SEMANTICS.md); the
machine runs in `memory_runner.py`. Nothing is persisted per transition and no history is
kept: the execution's record is written once, when it ends, into the executions table the
durable engine uses, so describing, listing and waiting work as for any execution.

While it runs, an execution is known only to this process, through a registry
(`running`): `Execution.describe()` shows it RUNNING, `wait()` waits for it and `stop()` aborts
it at its next transition or sleep. `check_definition` rejects, when an express workflow is
declared, what Express does not run: `.waitForTaskToken` and `.sync` tasks, and DISTRIBUTED Maps.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.asl.states import MapState, ParallelState, StateMachine, TaskState
from fanstack.core.errors import ConditionalCheckFailed, FanstackError, ValidationException
from fanstack.workflows.memory_runner import FrameScope, Halted, InMemoryRunner, MachineFailed
from fanstack.workflows.store import (
    ABORTED,
    EXECUTIONS_TABLE,
    FAILED,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    ExecutionRecord,
    Store,
)
from fanstack.workflows.task_states import TaskRunner

log = logging.getLogger("fanstack.workflows")

UNSUPPORTED_SUFFIXES = (".waitForTaskToken", ".sync", ".sync:2")
STOP_WAIT = 30.0  # how long `stop` waits for the execution to unwind (a few ms, normally)

_registry: dict[tuple[int, str], ExpressRun] = {}
_registry_lock = threading.Lock()


def check_definition(workflow: str, machine: StateMachine) -> None:
    """ValidationException naming the first state (in any branch) that Express cannot run."""
    for state in machine.states.values():
        if isinstance(state, TaskState) and state.resource.endswith(UNSUPPORTED_SUFFIXES):
            raise ValidationException(
                f"workflow {workflow!r} is EXPRESS: state {state.name!r} uses resource "
                f"{state.resource!r}; Express workflows do not support .waitForTaskToken or "
                ".sync tasks"
            )
        if isinstance(state, MapState) and state.mode == "DISTRIBUTED":
            raise ValidationException(
                f"workflow {workflow!r} is EXPRESS: state {state.name!r} is a DISTRIBUTED Map; "
                "Express workflows run inline Maps only"
            )
        if isinstance(state, ParallelState):
            for branch in state.branches:
                check_definition(workflow, branch)
        if isinstance(state, MapState):
            check_definition(workflow, state.processor)


def running(backend: Backend, key: str) -> ExpressRun | None:
    """The express execution `<workflow>:<name>` this process runs now, if it does."""
    with _registry_lock:
        return _registry.get((id(backend), key))


def running_records(backend: Backend, workflow: str) -> list[ExecutionRecord]:
    """The records of the express executions of `workflow` this process runs now."""
    with _registry_lock:
        runs = [run for (owner, _), run in _registry.items() if owner == id(backend)]
    return [run.describe() for run in runs if run.workflow == workflow]


class ExpressRun(InMemoryRunner):
    """One express execution, run in this process by `run()`; its record is written once, at
    its end."""

    def __init__(
        self,
        backend: Backend,
        machine: StateMachine,
        run_task: TaskRunner,
        record: ExecutionRecord,
        limit: float,
    ) -> None:
        super().__init__(backend, machine, run_task, record, limit)
        self._done = threading.Event()
        with _registry_lock:
            _registry[(id(backend), self.key)] = self

    def describe(self) -> ExecutionRecord:
        """Its record: RUNNING until it ends, then the one written."""
        with self._changed:
            return self._record

    def wait(self, timeout: float) -> ExecutionRecord:
        """Wait until it ends; its record (TimeoutError past `timeout`)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"execution {self.key!r} is still RUNNING")
        return self.describe()

    def stop(self, error: str | None = None, cause: str | None = None) -> ExecutionRecord:
        """Abort it at its next transition or sleep (a task is left to finish alone)."""
        with self._changed:
            if self._stop is None:
                self._stop = (error, cause)
            self._changed.notify_all()
        self._done.wait(STOP_WAIT)
        return self.describe()

    def run(self) -> ExecutionRecord:
        """Run the execution to its end in this thread; its final record, as written."""
        record = self._record
        try:
            output = self.run_frame(self.machine, record.input, {}, FrameScope())
            ended = record.ended(SUCCEEDED, self.backend.clock(), output=output)
        except MachineFailed as failure:
            ended = record.ended(
                FAILED, self.backend.clock(), error=failure.error, cause=failure.cause
            )
        except Halted:
            ended = self._halted(record)
        except Exception as error:  # a bug must end the execution, not leave it RUNNING
            log.exception("express execution %s failed", self.key)
            ended = record.ended(
                FAILED, self.backend.clock(), error="States.Runtime", cause=repr(error)
            )
        self._finish(ended)
        return ended

    def _halted(self, record: ExecutionRecord) -> ExecutionRecord:
        now = self.backend.clock()
        if self._stop is not None:
            error, cause = self._stop
            return record.ended(ABORTED, now, error=error, cause=cause)
        cause = f"the execution ran past its time limit of {self.limit:g} seconds"
        return record.ended(TIMED_OUT, now, error="States.Timeout", cause=cause)

    def _finish(self, ended: ExecutionRecord) -> None:
        """Write the final record (the one write an express execution makes), then let go."""
        try:
            _write_record(Store(self.backend), ended)
        except FanstackError:
            log.exception("the record of express execution %s was not written", self.key)
        finally:  # whatever the write did, the run has ended for this process
            with self._changed:
                self._record = ended
                self._changed.notify_all()
            self._done.set()
            with _registry_lock:
                if _registry.get((id(self.backend), self.key)) is self:
                    del _registry[(id(self.backend), self.key)]

def _write_record(store: Store, record: ExecutionRecord) -> None:
    """Write an ended execution's record: one conditional write, normally.

    Express does not de-duplicate names: when the name was used before, the latest run's
    record replaces the earlier one, unless that is a durable execution still running.
    """
    if store.create_execution(record) is not None:
        return
    existing, version = store.execution_item(record.key)
    if existing.status == RUNNING:
        log.warning("express execution %s ended while a durable one of its name runs; "
                    "its record was not written", record.key)  # fmt: skip
        return
    with contextlib.suppress(ConditionalCheckFailed):  # another run's record, just written, stands
        store.backend.table_put(EXECUTIONS_TABLE, record.key, record.to_dict(), if_version=version)


def start_run(
    backend: Backend,
    workflow: str,
    machine: StateMachine,
    run_task: TaskRunner,
    input: Any,
    name: str,
    limit: float,
) -> ExpressRun:
    """A new express execution (registered as running in this process); call `run()`."""
    record = ExecutionRecord(
        workflow=workflow,
        name=name,
        status=RUNNING,
        input={} if input is None else input,
        start=backend.clock(),
    )
    return ExpressRun(backend, machine, run_task, record, limit)
