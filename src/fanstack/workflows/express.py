"""Express executions: a whole execution run in memory, in the process that starts it.

Express workflows are at-least-once, in memory, and last 5 minutes at most (SEMANTICS.md). The
pure interpreter decides every state as the durable engine's does; here its actions are carried
out at once: Pass, Choice, Succeed and Fail in the running thread, Wait and Retry intervals as
sleeps, a task on a thread of its own (so its TimeoutSeconds, a stop and the execution's time
limit all interrupt the wait), Parallel branches and Map items on threads (a Map at most
MaxConcurrency at a time, 40 at most). Nothing is persisted per transition and no history is
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
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.asl import interpreter
from fanstack.core.asl.data import AslError
from fanstack.core.asl.states import MapState, ParallelState, StateMachine, TaskState
from fanstack.core.errors import ConditionalCheckFailed, FanstackError, ValidationException
from fanstack.workflows.context import context_object
from fanstack.workflows.engine import TaskRunner, task_outcome
from fanstack.workflows.joins import exceeds
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

log = logging.getLogger("fanstack.workflows")

INLINE_MAX_CONCURRENCY = 40  # an inline Map runs at most 40 items at once
UNSUPPORTED_SUFFIXES = (".waitForTaskToken", ".sync", ".sync:2")
STOP_WAIT = 30.0  # how long `stop` waits for the execution to unwind (a few ms, normally)

Outcome = dict[str, Any]  # {"ok": True, "result": ...} or {"ok": False, "error", "cause"}

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


class _Halted(Exception):
    """The execution ends now (stopped, or past its time limit): every frame unwinds."""


class _Cancelled(Exception):
    """A sibling failed the Parallel or Map this frame runs in: the frame unwinds."""


class _MachineFailed(Exception):
    """A (sub)machine ended in a Fail."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


class _Scope:
    """Where a frame runs: cancelled when the Parallel or Map it belongs to has failed."""

    def __init__(self, parent: _Scope | None = None) -> None:
        self.parent = parent
        self.cancelled = False

    def given_up(self) -> bool:
        """Whether this scope or one it runs in was cancelled."""
        scope: _Scope | None = self
        while scope is not None:
            if scope.cancelled:
                return True
            scope = scope.parent
        return False


@dataclass(frozen=True, slots=True)
class _At:
    """Where a frame is: the state entered, its input, the variables, retries, `$$`."""

    machine: StateMachine
    state: str
    input: Any
    variables: Mapping[str, Any]
    counts: Mapping[int, int]
    context: Mapping[str, Any]


class ExpressRun:
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
        self.backend = backend
        self.machine = machine
        self.run_task = run_task
        self.workflow, self.key = record.workflow, record.key
        self.limit = limit  # seconds the execution may run (TIMED_OUT past it)
        self._record = record
        self._rng = random.Random()
        self._changed = threading.Condition()  # a stop, a task's end, a cancelled scope
        self._stop: tuple[str | None, str | None] | None = None
        self._deadline = time.monotonic() + limit
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
            output = self._frame(self.machine, record.input, {}, _Scope())
            ended = record.ended(SUCCEEDED, self.backend.clock(), output=output)
        except _MachineFailed as failure:
            ended = record.ended(
                FAILED, self.backend.clock(), error=failure.error, cause=failure.cause
            )
        except _Halted:
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

    # -- interruptible waiting ------------------------------------------------------------

    def _check(self, scope: _Scope) -> None:
        """Raise if the execution was stopped or timed out, or the frame's scope gave up."""
        if self._stop is not None or time.monotonic() >= self._deadline:
            raise _Halted
        if scope.given_up():
            raise _Cancelled

    def _pause(
        self, seconds: float, scope: _Scope, until: Callable[[], bool] = lambda: False
    ) -> bool:
        """Wait `seconds` or until `until()` (True then), unless the frame must unwind first."""
        end = time.monotonic() + seconds
        with self._changed:
            while True:
                self._check(scope)
                if until():
                    return True
                remaining = min(end, self._deadline) - time.monotonic()
                if remaining <= 0:
                    self._check(scope)
                    return False
                self._changed.wait(remaining)

    def _cancel(self, scope: _Scope) -> None:
        with self._changed:
            scope.cancelled = True
            self._changed.notify_all()

    # -- running a (sub)machine -----------------------------------------------------------

    def _frame(
        self, machine: StateMachine, input: Any, variables: Mapping[str, Any], scope: _Scope
    ) -> Any:
        """Run a machine (the top level, a branch, an item) from its start; its output."""
        at = _At(machine, machine.start_at, input, variables, {}, self._context(machine.start_at))
        action = self._enter(at)
        while True:
            self._check(scope)
            if isinstance(action, interpreter.Next):
                context = self._context(action.state)
                at = _At(machine, action.state, action.output, action.variables, {}, context)
                action = self._enter(at)
            elif isinstance(action, interpreter.Succeed):
                return action.output
            elif isinstance(action, interpreter.Fail):
                raise _MachineFailed(action.error, action.cause)
            elif isinstance(action, interpreter.Delay):
                self._pause(self._delay(action), scope)
                action = action.then
            elif isinstance(action, interpreter.Retry):
                self._pause(action.delay_seconds, scope)
                counts = {**at.counts, action.retrier: action.attempt}
                at = replace(at, counts=counts, context=self._context(at.state, counts))
                action = self._enter(at)
            else:
                action = self._settle(at, self._work(at, action, scope))

    def _enter(self, at: _At) -> interpreter.Action:
        return interpreter.enter(
            at.machine, at.state, at.input, at.context, at.variables,
            now=self._now(), rng=self._rng, retry_counts=at.counts,
        )  # fmt: skip

    def _settle(self, at: _At, outcome: Outcome) -> interpreter.Action:
        """Complete or fail a Task, Parallel or Map state with its outcome."""
        if outcome["ok"]:
            return interpreter.complete(
                at.machine, at.state, at.input, outcome["result"], at.context, at.variables,
                now=self._now(), rng=self._rng, retry_counts=at.counts,
            )  # fmt: skip
        return interpreter.fail(
            at.machine, at.state, at.input, outcome["error"], outcome["cause"], at.counts,
            at.context, at.variables, rng=self._rng,
        )  # fmt: skip

    def _work(self, at: _At, action: interpreter.Action, scope: _Scope) -> Outcome:
        """Run what a Task, Parallel or Map state asks for; its outcome."""
        if isinstance(action, interpreter.RunTask):
            return self._task(action, at.context, scope)
        if isinstance(action, interpreter.RunBranches):
            runs = [self._runner(branch, action.input, at.variables) for branch in action.branches]
            outcomes, failure = self._children(runs, len(runs), {"kind": "parallel"}, scope)
            if failure is not None:
                return failure
            return {"ok": True, "result": [o["result"] for o in outcomes]}
        if isinstance(action, interpreter.RunMap):
            return self._map(at, action, scope)
        raise TypeError(f"unknown action {action!r}")

    def _task(
        self, action: interpreter.RunTask, context: Mapping[str, Any], scope: _Scope
    ) -> Outcome:
        """Run a task's resource on a thread, giving up after its TimeoutSeconds."""
        outcome: Outcome = {}

        def run() -> None:
            done = task_outcome(self.run_task, action, context)
            with self._changed:
                outcome.update(done)
                self._changed.notify_all()

        threading.Thread(target=run, name="fanstack-express-task", daemon=True).start()
        limit = action.timeout_seconds if action.timeout_seconds is not None else math.inf
        if self._pause(limit, scope, until=lambda: bool(outcome)):
            return outcome
        cause = f"the task did not finish within {action.timeout_seconds:g} seconds"
        return {"ok": False, "error": "States.Timeout", "cause": cause}

    def _map(self, at: _At, action: interpreter.RunMap, scope: _Scope) -> Outcome:
        """Run a Map's items, MaxConcurrency (at most 40) at a time; results in input order."""
        try:
            inputs = [
                interpreter.map_item_input(
                    at.machine, at.state, index, item, at.input, at.context, at.variables
                )
                for index, item in enumerate(action.items or [])
            ]
        except AslError as error:  # an ItemSelector failed: the Map state fails
            return {"ok": False, "error": error.error, "cause": error.cause}
        join = {
            "kind": "map",
            "total": len(inputs),
            "tolerated_count": action.tolerated_failure_count,
            "tolerated_percentage": action.tolerated_failure_percentage,
        }
        concurrency = min(action.max_concurrency or INLINE_MAX_CONCURRENCY, INLINE_MAX_CONCURRENCY)
        runs = [self._runner(action.processor, value, at.variables) for value in inputs]
        outcomes, failure = self._children(runs, concurrency, join, scope)
        if failure is not None:  # an inline Map fails with its failed item's error
            return failure
        results = [
            o["result"] if o["ok"] else {"Error": o["error"], "Cause": o["cause"]} for o in outcomes
        ]
        return {"ok": True, "result": results}

    def _children(
        self,
        runs: Sequence[Callable[[_Scope], Any]],
        concurrency: int,
        join: Mapping[str, Any],
        scope: _Scope,
    ) -> tuple[list[Outcome], Outcome | None]:
        """Run branches or items, `concurrency` at a time: their outcomes in order, and the
        failure that failed them all (the others are then cancelled), if one did."""
        inner = _Scope(scope)
        outcomes: list[Outcome] = [{} for _ in runs]
        join = {**join, "total": len(runs)}
        failed: list[Outcome] = []
        deciding: list[Outcome] = []  # the failure that took them past what is tolerated
        lock = threading.Lock()

        def child(index: int) -> None:
            try:
                outcome: Outcome = {"ok": True, "result": runs[index](inner)}
            except _MachineFailed as failure:
                outcome = {"ok": False, "error": failure.error, "cause": failure.cause}
            except (_Halted, _Cancelled):
                return  # the parent finds out why below
            except Exception as error:  # a bug: fail this child, so its siblings stop too
                log.exception("express execution %s: a branch or item failed", self.key)
                outcome = {"ok": False, "error": "States.Runtime", "cause": repr(error)}
            with lock:
                outcomes[index] = outcome
                if not outcome["ok"]:
                    failed.append(outcome)
                    if not deciding and exceeds(join, len(failed)):
                        deciding.append(outcome)
                        self._cancel(inner)

        if runs:
            workers = max(1, min(concurrency, len(runs)))
            with ThreadPoolExecutor(workers, thread_name_prefix="fanstack-express") as pool:
                list(pool.map(child, range(len(runs))))
        self._check(scope)
        return outcomes, (deciding[0] if deciding else None)

    def _runner(
        self, machine: StateMachine, input: Any, variables: Mapping[str, Any]
    ) -> Callable[[_Scope], Any]:
        """A branch or item to run: its machine on its input, reading the outer variables."""
        return lambda scope: self._frame(machine, input, variables, scope)

    # -- the context object and the clock -------------------------------------------------

    def _context(self, state: str, counts: Mapping[int, int] | None = None) -> dict[str, Any]:
        """The `$$` context object of a state (as the durable engine's, without a task token)."""
        record = self._record
        retries = sum((counts or {}).values())
        return context_object(
            record.key, record.input, record.start, state, self.backend.clock(), retries
        )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.backend.clock(), UTC)

    def _delay(self, action: interpreter.Delay) -> float:
        """The seconds a Wait waits (until a timestamp: from now)."""
        if action.until is None:
            return float(action.seconds or 0)
        wake = datetime.fromisoformat(action.until.replace("Z", "+00:00")).timestamp()
        return max(0.0, wake - self.backend.clock())


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
