"""The durable engine: acts on each step with the pure interpreter and persists it.

A step (`steps.py`) is idempotent: a task's outcome is recorded once (the first record stands,
so a task that ran twice still counts once), its successors carry deterministic ids, and once
they are sent the step is marked dispatched, so a redelivered step does nothing. States that
decide at once are entered in the same step. Waits and retry intervals are delayed messages
(durable timers, chained past SQS's 15-minute delay); tasks that wait for a token or for a
child execution are answered through `callbacks.py`; Parallel and Map fan out and back in
through `fanin.py`. `runner.py` is the worker service that feeds steps to the engine.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.asl import interpreter
from fanstack.core.asl.data import AslError
from fanstack.core.asl.states import StateMachine, TaskState
from fanstack.workflows import callbacks
from fanstack.workflows.context import context_object
from fanstack.workflows.fanin import FanIn
from fanstack.workflows.history import entered, event, exited, task_ended
from fanstack.workflows.steps import (
    CHECK,
    COMPLETE,
    ENTER,
    EXPIRE,
    FAIL,
    RESUME,
    ROOT,
    Step,
)
from fanstack.workflows.store import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    ExecutionRecord,
    Store,
    send_steps,
)
from fanstack.workflows.task_states import TaskRunner, TaskStates, task_token

log = logging.getLogger("fanstack.workflows")

INLINE_TYPES = frozenset({"Pass", "Choice", "Succeed", "Fail"})
MAX_INLINE = 25  # states decided in one step at most, so one step stays short

Machines = Callable[[str], StateMachine]  # workflow name -> its parsed definition


class Engine:
    """Acts on steps: the interpreter decides, the engine persists and sends what follows."""

    def __init__(self, backend: Backend, machines: Machines, run_task: TaskRunner) -> None:
        self.backend = backend
        self.store = Store(backend)
        self.machines = machines
        self.run_task = run_task
        self.rng = random.Random()
        self.fanin = FanIn(self)
        self.tasks = TaskStates(self)
        self._local = threading.local()  # the history events of the step a thread processes

    def process(self, step: Step) -> None:
        """Act on one step (idempotent: a step already dispatched is skipped)."""
        self._local.events, self._local.flushes, self._local.step = [], 0, step
        self._local.inline, self._local.recorded, self._local.record = 0, None, None
        try:
            self._process(step)
        finally:
            self.flush()

    def expire(self, step: Step) -> None:
        """The execution's TimeoutSeconds timer: time it out if it still runs."""
        now = self.backend.clock()
        if step.wake_at is not None and now < step.wake_at:
            self.send([step], step.wake_at - now)  # a long timer: next link
            return
        cause = "the execution ran past its TimeoutSeconds"
        if self.store.end_execution(
            step.execution, TIMED_OUT, now, error="States.Timeout", cause=cause
        ):
            self.note(event("ExecutionTimedOut", now, error="States.Timeout", cause=cause))
        self.flush()
        callbacks.notify_parent(self.backend, self.store.execution(step.execution))

    def note(self, event: dict[str, Any]) -> None:
        """Keep a history event of the step being processed (written with its next send)."""
        self._local.events.append(event)

    def flush(self) -> None:
        """Write the history events noted so far (before what follows them is sent)."""
        events = getattr(self._local, "events", None)
        if events:
            step: Step = self._local.step
            self.store.add_events(step.execution, self._history_key(), events)
            self._local.events, self._local.flushes = [], self._local.flushes + 1

    def _history_key(self) -> str:
        """Where the step being processed writes its next events: steps that share an id (a
        Wait's resumption, a task token's answer) each write under their own key."""
        step: Step = self._local.step
        op = "" if step.op == ENTER else f".{step.op}"
        return f"{step.id}{op}.{self._local.flushes}"

    def cut_short(self, step: Step) -> bool:
        """Whether the step's execution ended, or a Parallel or Map it runs in failed (its
        other children stop), since the step began: a Task's step looks once its task
        returned."""
        return self.store.execution(step.execution).status != RUNNING or self.fanin.abandoned(step)

    def flushed_before(self) -> bool:
        """Whether an earlier run of this step wrote the events noted so far; they are dropped
        if so (a rerun must not write that history again, with fewer events or later)."""
        step: Step = self._local.step
        if not self.store.has_events(step.execution, self._history_key()):
            return False
        self._local.events = []
        self._local.flushes += 1  # what this run notes next goes after that history
        return True

    def send(self, steps: list[Step], delay: float = 0) -> None:
        """Send steps, after writing the history that precedes them."""
        self.flush()
        send_steps(self.backend, steps, delay)

    def _process(self, step: Step) -> None:
        if step.op == EXPIRE:
            self.expire(step)
            return
        record = self.store.step(step.execution, step.id)
        if record is not None and record.get("dispatched"):
            return
        self._local.recorded = record  # what this step recorded so far (kept up to date)
        execution = self.store.execution(step.execution)
        if execution.status != RUNNING or self.fanin.abandoned(step):
            return
        self._local.record = execution
        now = self.backend.clock()
        if step.wake_at is not None and now < step.wake_at:
            self.send([step], step.wake_at - now)  # a long timer: next link
            return
        if step.frame == ROOT and step.n == 0 and step.op == ENTER:
            step = replace(step, input=execution.input)  # the first step reads the record
        machine = self.machine(step)
        context = self.context(step, execution.input, execution.start, now)
        if step.op == ENTER:
            action = self.enter(machine, step, context, now)
        elif step.op == COMPLETE:
            self._task_answered(machine, step, {"ok": True, "result": step.result}, now)
            action = self.completed(machine, step, context, step.result, now)
        elif step.op == FAIL:
            failure = {"ok": False, "error": step.error or "", "cause": step.cause or ""}
            self._task_answered(machine, step, failure, now)
            action = self.failed(machine, step, context, step.error or "", step.cause or "")
        elif step.op == CHECK:
            self.tasks.check_token(machine, step, now)
            return
        else:
            assert step.op == RESUME and step.then is not None
            action = self.resumed(step.then)
        if self.act(machine, step, action, context, now):
            self.store.mark_dispatched(step.execution, step.id, self._local.recorded)

    def _task_answered(
        self, machine: StateMachine, step: Step, outcome: Mapping[str, Any], now: float
    ) -> None:
        """A Task answered by a later step (its token's answer or timer, its child execution's
        end): its end event (a Parallel's or Map's completion notes its own)."""
        state = machine.states.get(step.state)
        if isinstance(state, TaskState):
            self.note(task_ended(state.resource, outcome, now))

    def machine(self, step: Step) -> StateMachine:
        """The (sub)machine a step runs in."""
        workflow = step.execution.partition(":")[0]
        machine = self.machines(workflow)
        for state, index in step.path:
            machine = interpreter.submachine(machine, state, index)
        return machine

    def record_of(self, execution: str) -> ExecutionRecord:
        """The execution's record as the step being processed read it, or as it is now for
        another execution. Its input and start never change: a Map item that starts the next
        one reads them here rather than decoding the record (the whole Map's input) again."""
        record: ExecutionRecord | None = getattr(self._local, "record", None)
        if record is not None and record.key == execution:
            return record
        return self.store.execution(execution)

    def context(self, step: Step, input: Any, started: float, now: float) -> dict[str, Any]:
        """The `$$` context object of a step."""
        retries = sum(step.retry_counts.values())
        return context_object(
            step.execution, input, started, step.state, now, retries, task_token(step)
        )

    # -- acting on the interpreter's decisions --------------------------------------------

    def act(
        self, machine: StateMachine, step: Step, action: Any, context: Mapping[str, Any], now: float
    ) -> bool:
        """Persist and send what an action means; False while the step waits on a timer."""
        if isinstance(action, interpreter.Next):
            self.note(exited(machine, step, action.output, now))
            following = step.successor(
                action.state, input=action.output, variables=dict(action.variables)
            )
            if self._local.inline < MAX_INLINE and (
                interpreter.state_type(machine, action.state) in INLINE_TYPES
            ):
                return self.inline(machine, following, now)
            self.send([following])
        elif isinstance(action, interpreter.Succeed):
            self.note(exited(machine, step, action.output, now))
            self.fanin.frame_ended(step, output=action.output, now=now)
        elif isinstance(action, interpreter.Fail):
            self.fanin.frame_ended(step, error=action.error, cause=action.cause, now=now)
        elif isinstance(action, interpreter.Delay):
            self.wait(step, action, now)
            return False
        elif isinstance(action, interpreter.Retry):
            counts = dict(step.retry_counts)
            counts[str(action.retrier)] = action.attempt
            again = step.successor(
                step.state,
                input=step.input,
                retry_counts=counts,
            )
            self.send([again], action.delay_seconds)
        elif isinstance(action, interpreter.RunTask):
            return self.tasks.run(machine, step, action, context, now)
        elif isinstance(action, interpreter.RunBranches):
            self.fanin.branches(step, action)
        elif isinstance(action, interpreter.RunMap):
            try:
                self.fanin.map(machine, step, action, context)
            except AslError as error:  # an item's ItemSelector failed: the Map state fails
                failure = self.failed(machine, step, context, error.error, error.cause)
                return self.act(machine, step, failure, context, now)
        else:
            raise TypeError(f"unknown action {action!r}")
        return True

    def inline(self, machine: StateMachine, step: Step, now: float) -> bool:
        """Enter a state that decides at once (Pass, Choice, Succeed, Fail) in this same step.

        Its transition is recorded in the history like any other; it only saves the queue
        round trip. Run again after a crash, the whole chain is decided again, the same way.
        """
        self._local.inline += 1
        record = self._local.record
        context = self.context(step, record.input, record.start, now)
        return self.act(machine, step, self.enter(machine, step, context, now), context, now)

    def enter(
        self, machine: StateMachine, step: Step, context: Mapping[str, Any], now: float
    ) -> Any:
        """Enter a step's state: the `<Type>StateEntered` event, and the interpreter's answer."""
        self.note(entered(machine, step, now))
        return interpreter.enter(
            machine,
            step.state,
            step.input,
            context,
            step.variables,
            now=datetime.fromtimestamp(now, UTC),
            rng=self.rng,
            retry_counts=_counts(step),
        )

    def completed(
        self, machine: StateMachine, step: Step, context: Mapping[str, Any], result: Any, now: float
    ) -> Any:
        """The interpreter's answer to a Task, Parallel or Map state that has its result."""
        return interpreter.complete(
            machine,
            step.state,
            step.input,
            result,
            context,
            step.variables,
            now=datetime.fromtimestamp(now, UTC),
            rng=self.rng,
            retry_counts=_counts(step),
        )

    def recorded(self) -> Mapping[str, Any] | None:
        """What the step this thread processes recorded so far."""
        recorded: Mapping[str, Any] | None = self._local.recorded
        return recorded

    def remember(self, recorded: Mapping[str, Any]) -> None:
        """What the step this thread processes recorded now (kept beside its dispatched mark)."""
        self._local.recorded = recorded

    def failed(
        self, machine: StateMachine, step: Step, context: Mapping[str, Any], error: str, cause: str
    ) -> Any:
        """The interpreter's answer to a failed state: retry, catch, or fail the frame."""
        counts = _counts(step)
        return interpreter.fail(
            machine,
            step.state,
            step.input,
            error,
            cause,
            counts,
            context,
            step.variables,
            rng=self.rng,
        )

    def resumed(self, then: Mapping[str, Any]) -> Any:
        """What a Wait continues with once its timer fires."""
        if then["kind"] == "next":
            return interpreter.Next(then["state"], then["output"], then.get("variables") or {})
        return interpreter.Succeed(then["output"])

    def execution_ended(
        self, step: Step, now: float, output: Any, error: str | None, cause: str | None
    ) -> None:
        """The top-level machine ended: the execution succeeds or fails.

        The states this step went through are in the history before the record says the
        execution ended: whoever sees it ended and reads the history finds them there.
        """
        self.flush()
        if error is None:
            if self.store.end_execution(step.execution, SUCCEEDED, now, output=output):
                ended = event("ExecutionSucceeded", now, output=_json(output))
                self.note(ended)
        elif self.store.end_execution(step.execution, FAILED, now, error=error, cause=cause):
            ended = event("ExecutionFailed", now, error=error, cause=cause)
            self.note(ended)
        self.flush()
        callbacks.notify_parent(self.backend, self.store.execution(step.execution))

    def wait(self, step: Step, action: Any, now: float) -> None:
        """A Wait state: a timer message that resumes the frame."""
        then = action.then
        encoded: dict[str, Any] = (
            {
                "kind": "next",
                "state": then.state,
                "output": then.output,
                "variables": dict(then.variables),
            }
            if isinstance(then, interpreter.Next)
            else {"kind": "succeed", "output": then.output}
        )
        if action.until is not None:
            wake = datetime.fromisoformat(action.until.replace("Z", "+00:00")).timestamp()
        else:
            wake = now + float(action.seconds or 0)
        resume = Step(
            execution=step.execution,
            frame=step.frame,
            n=step.n,
            path=step.path,
            state=step.state,
            op=RESUME,
            input=step.input,
            variables=step.variables,
            then=encoded,
            wake_at=wake,
        )
        # The resume is this same step again (its id unchanged): it is dispatched only then.
        self.send([resume], wake - now)

def _counts(step: Step) -> dict[int, int]:
    """The attempts made so far under each retrier of the step's state."""
    return {int(k): int(v) for k, v in step.retry_counts.items()}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))

