"""Running a state machine in memory, for express executions: the pure interpreter decides
every state as it does for the durable engine, and its actions are carried out at once. Pass,
Choice, Succeed and Fail in the running thread; Wait and Retry intervals as sleeps; a task on a
thread of its own (so its TimeoutSeconds, a stop and the execution's time limit all interrupt
the wait); Parallel branches and Map items on threads (a Map at most MaxConcurrency at a time,
40 at most), a failure past what is tolerated cancelling the others."""

from __future__ import annotations

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
from fanstack.core.asl.states import StateMachine
from fanstack.workflows.context import context_object
from fanstack.workflows.joins import exceeds
from fanstack.workflows.store import ExecutionRecord
from fanstack.workflows.task_states import TaskRunner, task_outcome

log = logging.getLogger("fanstack.workflows")

Outcome = dict[str, Any]  # {"ok": True, "result": ...} or {"ok": False, "error", "cause"}


class Halted(Exception):
    """The execution ends now (stopped, or past its time limit): every frame unwinds."""


class Cancelled(Exception):
    """A sibling failed the Parallel or Map this frame runs in: the frame unwinds."""


class MachineFailed(Exception):
    """A (sub)machine ended in a Fail."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


class FrameScope:
    """Where a frame runs: cancelled when the Parallel or Map it belongs to has failed."""

    def __init__(self, parent: FrameScope | None = None) -> None:
        self.parent = parent
        self.cancelled = False

    def given_up(self) -> bool:
        """Whether this scope or one it runs in was cancelled."""
        scope: FrameScope | None = self
        while scope is not None:
            if scope.cancelled:
                return True
            scope = scope.parent
        return False


@dataclass(frozen=True, slots=True)
class At:
    """Where a frame is: the state entered, its input, the variables, retries, `$$`."""

    machine: StateMachine
    state: str
    input: Any
    variables: Mapping[str, Any]
    counts: Mapping[int, int]
    context: Mapping[str, Any]


class InMemoryRunner:
    """Runs one execution's machine in memory, until it ends, is stopped or runs out of time."""

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

    # -- interruptible waiting ------------------------------------------------------------

    def _check(self, scope: FrameScope) -> None:
        """Raise if the execution was stopped or timed out, or the frame's scope gave up."""
        if self._stop is not None or time.monotonic() >= self._deadline:
            raise Halted
        if scope.given_up():
            raise Cancelled

    def _pause(
        self, seconds: float, scope: FrameScope, until: Callable[[], bool] = lambda: False
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

    def _cancel(self, scope: FrameScope) -> None:
        with self._changed:
            scope.cancelled = True
            self._changed.notify_all()

    # -- running a (sub)machine -----------------------------------------------------------

    def run_frame(
        self, machine: StateMachine, input: Any, variables: Mapping[str, Any], scope: FrameScope
    ) -> Any:
        """Run a machine (the top level, a branch, an item) from its start; its output."""
        at = At(machine, machine.start_at, input, variables, {}, self._context(machine.start_at))
        action = self._enter(at)
        while True:
            self._check(scope)
            if isinstance(action, interpreter.Next):
                context = self._context(action.state)
                at = At(machine, action.state, action.output, action.variables, {}, context)
                action = self._enter(at)
            elif isinstance(action, interpreter.Succeed):
                return action.output
            elif isinstance(action, interpreter.Fail):
                raise MachineFailed(action.error, action.cause)
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

    def _enter(self, at: At) -> interpreter.Action:
        return interpreter.enter(
            at.machine, at.state, at.input, at.context, at.variables,
            now=self._now(), rng=self._rng, retry_counts=at.counts,
        )  # fmt: skip

    def _settle(self, at: At, outcome: Outcome) -> interpreter.Action:
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

    def _work(self, at: At, action: interpreter.Action, scope: FrameScope) -> Outcome:
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
        self, action: interpreter.RunTask, context: Mapping[str, Any], scope: FrameScope
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

    def _map(self, at: At, action: interpreter.RunMap, scope: FrameScope) -> Outcome:
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
        concurrency = action.max_concurrency  # the interpreter's: 40 at most inline
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
        runs: Sequence[Callable[[FrameScope], Any]],
        concurrency: int,
        join: Mapping[str, Any],
        scope: FrameScope,
    ) -> tuple[list[Outcome], Outcome | None]:
        """Run branches or items, `concurrency` at a time: their outcomes in order, and the
        failure that failed them all (the others are then cancelled), if one did."""
        inner = FrameScope(scope)
        outcomes: list[Outcome] = [{} for _ in runs]
        join = {**join, "total": len(runs)}
        failed: list[Outcome] = []
        deciding: list[Outcome] = []  # the failure that took them past what is tolerated
        lock = threading.Lock()

        def child(index: int) -> None:
            try:
                outcome: Outcome = {"ok": True, "result": runs[index](inner)}
            except MachineFailed as failure:
                outcome = {"ok": False, "error": failure.error, "cause": failure.cause}
            except (Halted, Cancelled):
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
    ) -> Callable[[FrameScope], Any]:
        """A branch or item to run: its machine on its input, reading the outer variables."""
        return lambda scope: self.run_frame(machine, input, variables, scope)

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
