"""Task states on the durable engine: running a task's resource once (its outcome recorded
before the state goes on, so a task that ran twice counts once), within its TimeoutSeconds;
`.waitForTaskToken` tasks, answered through `callbacks.py` or failed by their TimeoutSeconds or
HeartbeatSeconds; and `states:startExecution.sync` tasks, answered when the child ends."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from fanstack.backends.base import Backend
from fanstack.core.asl.states import StateMachine
from fanstack.core.errors import FanstackError
from fanstack.workflows import callbacks
from fanstack.workflows.history import event, task_events, task_started
from fanstack.workflows.starts import start_stored
from fanstack.workflows.steps import CHECK, Step
from fanstack.workflows.store import Store

SYNC_STARTS = frozenset(
    {"arn:aws:states:::states:startExecution.sync", "arn:aws:states:::states:startExecution.sync:2"}
)

TaskRunner = Callable[[str, Any, Mapping[str, Any]], Any]  # resource, payload, context -> result


class TaskFailed(Exception):
    """A task ended in an error (its States error name, or the function's error type)."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class Host(Protocol):
    """What task states need of the engine that runs the steps."""

    backend: Backend
    store: Store
    run_task: TaskRunner

    def note(self, event: dict[str, Any]) -> None:
        """Keep a history event of the step being processed."""
        ...

    def send(self, steps: list[Step], delay: float = 0) -> None:
        """Queue steps, after the history that precedes them."""
        ...

    def act(
        self, machine: StateMachine, step: Step, action: Any, context: Mapping[str, Any], now: float
    ) -> bool:
        """Carry out what the interpreter decided."""
        ...

    def completed(
        self, machine: StateMachine, step: Step, context: Mapping[str, Any], result: Any, now: float
    ) -> Any:
        """The interpreter's answer to a state that has its result."""
        ...

    def failed(
        self, machine: StateMachine, step: Step, context: Mapping[str, Any], error: str, cause: str
    ) -> Any:
        """The interpreter's answer to a failed state."""
        ...

    def recorded(self) -> Mapping[str, Any] | None:
        """What the step being processed recorded so far."""
        ...

    def remember(self, recorded: Mapping[str, Any]) -> None:
        """What the step being processed recorded now."""
        ...

    def flush(self) -> None:
        """Write the history events noted so far."""
        ...

    def cut_short(self, step: Step) -> bool:
        """Whether the step's execution ended, or a Parallel or Map it runs in failed."""
        ...

    def flushed_before(self) -> bool:
        """Whether an earlier run of this step wrote the events noted so far (and dropped
        them if so: that run's history stands)."""
        ...


class TaskStates:
    """Runs the Task states of the steps an engine processes."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def run(
        self,
        machine: StateMachine,
        step: Step,
        action: Any,
        context: Mapping[str, Any],
        now: float,
    ) -> bool:
        """Run a task (once: its recorded outcome stands), then complete or fail the state."""
        recorded = self.host.recorded() or {}
        outcome = recorded.get("task")
        submitted = False  # its start is in the history already, with its submission
        waits = action.resource in SYNC_STARTS or action.wait_for_token
        if "pending" in recorded or (outcome is None and waits):
            # A task something else answers: the run that owns it continues the state.
            handed = self.hand_off(step, action, context, now)
            if handed is None:
                self.host.flushed_before()  # what an earlier run wrote stands
                return False  # waiting for its answer, or another run or step continues it
            submitted = handed
            recorded = self.host.store.step(step.execution, step.id) or {}
            outcome = recorded.get("task")
        if outcome is None:
            started = self.host.backend.clock()
            outcome = {**self.run_with_timeout(action, context), "started": started}
            recorded = self.host.store.record_step(step.execution, step.id, {"task": outcome})
            outcome = recorded["task"]
        self.host.remember(recorded)
        now = self.host.backend.clock()  # the task took its time
        started = outcome.get("started", recorded.get("since", now))
        events = task_events(action.resource, action.payload, outcome, started, now)
        if submitted:
            events = events[-1:]
        if self.host.cut_short(step):
            # Stopped or timed out while the task ran, or the Parallel or Map it runs in
            # failed: its outcome stays recorded, and nothing that came after the end is
            # written (Step Functions records the task as started, no more), nor does any state
            # follow it. A rerun of a step whose first run found the execution running and wrote
            # on leaves that history as it is.
            if not self.host.flushed_before():
                for one in events[:-1]:
                    self.host.note(one)
                self.host.flush()
            return True
        for one in events:
            self.host.note(one)
        if outcome["ok"]:
            next_action = self.host.completed(machine, step, context, outcome["result"], now)
        else:
            error, cause = outcome["error"], outcome["cause"]
            next_action = self.host.failed(machine, step, context, error, cause)
        return self.host.act(machine, step, next_action, context, now)

    def hand_off(
        self, step: Step, action: Any, context: Mapping[str, Any], now: float
    ) -> bool | None:
        """Start a task that something else answers (`.waitForTaskToken`: its token's holder;
        `startExecution.sync`: its child execution's end). None when this run has nothing more
        to do: the task waits for its answer (which continues the state), or another run of the
        step owns it. True if it was answered before it was handed over (its start and
        submission are written: this run continues the state), False if it failed to start
        (its failure is its outcome, and nothing is noted: this run continues the state).

        A run owns the task (`callbacks.claim`) before it starts it, and the latest run takes
        it over: a step run again after a crash, or while an earlier run is still at work, never
        continues the state twice, nor does an answer that came meanwhile.
        """
        run = uuid.uuid4().hex
        pending = {"pending": step.to_json(), "since": now, "heartbeat": now}
        if action.wait_for_token:
            pending |= {"timeout": action.timeout_seconds}
            pending |= {"heartbeat_seconds": action.heartbeat_seconds}
        state, recorded = callbacks.claim(self.host.backend, step.execution, step.id, pending, run)
        if state == callbacks.ANSWERED:
            return True if callbacks.owns(recorded, run) else None
        if state == callbacks.WAITING:  # an earlier run handed it over, then stopped
            self.host.flushed_before()  # its history stands
            self._arm_timer(step, action, now)  # its timer may not have been sent
            return None
        if action.resource in SYNC_STARTS:
            failure = self._start_child(step, action, now)
        else:
            outcome = self.run_with_timeout(action, context)
            failure = None if outcome["ok"] else outcome
        if failure is not None:  # its outcome, if this run still owns the task
            owned = callbacks.settle_owned(self.host.backend, step.execution, step.id, failure, run)
            return False if owned else None
        self._submitted(action, now)
        # Written before an answer can continue the state: its events come after these (an
        # earlier run that wrote them already stands).
        if not self.host.flushed_before():
            self.host.flush()
        handed = callbacks.submitted(self.host.backend, step.execution, step.id, run)
        if handed == callbacks.MINE:
            return True  # answered while the resource ran (a function that calls back)
        if handed == callbacks.WAITING:
            self._arm_timer(step, action, now)
        return None

    def _arm_timer(self, step: Step, action: Any, now: float) -> None:
        """A waiting token's check at its first deadline (TimeoutSeconds, HeartbeatSeconds)."""
        limits = [s for s in (action.timeout_seconds, action.heartbeat_seconds) if s]
        if limits and action.wait_for_token:
            check = replace(step, op=CHECK, wake_at=now + min(limits))
            self.host.send([check], min(limits))

    def run_with_timeout(self, action: Any, context: Mapping[str, Any]) -> dict[str, Any]:
        """Run a task's resource, giving up after its TimeoutSeconds (States.Timeout)."""
        outcome: dict[str, Any] = {}

        def run() -> None:
            outcome.update(task_outcome(self.host.run_task, action, context))

        if action.timeout_seconds is None:
            run()
            return outcome
        worker = threading.Thread(target=run, name="fanstack-task", daemon=True)
        worker.start()
        worker.join(action.timeout_seconds)
        if worker.is_alive() or not outcome:
            cause = f"the task did not finish within {action.timeout_seconds:g} seconds"
            return {"ok": False, "error": "States.Timeout", "cause": cause}
        return outcome

    def _submitted(self, action: Any, now: float) -> None:
        """A task handed to what answers it later (its token's holder, its child execution):
        its start and its submission, as Step Functions records them."""
        for one in task_started(action.resource, action.payload, now):
            self.host.note(one)
        self.host.note(event("TaskSubmitted", now, resource=action.resource))

    def _start_child(self, step: Step, action: Any, now: float) -> dict[str, Any] | None:
        """`states:startExecution.sync` (`.sync:2`): start the child execution, to be answered
        when it ends; the task's failure if the start itself failed."""
        payload = action.payload if isinstance(action.payload, Mapping) else {}
        workflow = str(payload.get("StateMachineArn", "")).rsplit(":", 1)[-1]
        child_input = payload.get("Input", {})
        if isinstance(child_input, str):
            child_input = json.loads(child_input)
        mode = "sync:2" if action.resource.endswith(":2") else "sync"
        parent = {"token": task_token(step), "mode": mode}
        # Without a Name, one made of the task's token: a run of the step again (its first
        # died before handing the task over) finds the child it started (StartExecution's
        # idempotence) instead of starting a second.
        name = payload.get("Name") or str(uuid.uuid5(uuid.NAMESPACE_URL, parent["token"]))
        try:
            start_stored(self.host.backend, workflow, child_input, name, parent=parent)
        except FanstackError as error:
            return {"ok": False, "error": f"StepFunctions.{error.code}", "cause": str(error)}
        return None

    def check_token(self, machine: StateMachine, step: Step, now: float) -> bool:
        """A waiting task's timer: fail it on its TimeoutSeconds or HeartbeatSeconds."""
        recorded = self.host.store.step(step.execution, step.id) or {}
        if "task" in recorded or "pending" not in recorded:
            return False  # answered: the answer continues the state
        timeout, heartbeat = recorded.get("timeout"), recorded.get("heartbeat_seconds")
        error = None
        if isinstance(timeout, int | float) and now >= recorded["since"] + timeout:
            error = "States.Timeout"
        elif isinstance(heartbeat, int | float) and now >= recorded["heartbeat"] + heartbeat:
            error = "States.HeartbeatTimeout"
        if error is None:
            deadlines = [
                recorded["since"] + timeout if isinstance(timeout, int | float) else None,
                recorded["heartbeat"] + heartbeat if isinstance(heartbeat, int | float) else None,
            ]
            wake = min(d for d in deadlines if d is not None)
            self.host.send([replace(step, wake_at=wake)], wake - now)
            return False
        outcome = {"ok": False, "error": error, "cause": "no answer to the task token in time"}
        if callbacks.continues(
            callbacks.settle(self.host.backend, step.execution, step.id, outcome)
        ):
            callbacks.continue_step(self.host.backend, Step.from_json(recorded["pending"]), outcome)
        return False


def task_outcome(run_task: TaskRunner, action: Any, context: Mapping[str, Any]) -> dict[str, Any]:
    """Run a task's resource: `{"ok": True, "result"}`, or `{"ok": False, "error", "cause"}`."""
    try:
        return {"ok": True, "result": run_task(action.resource, action.payload, context)}
    except TaskFailed as failure:
        return {"ok": False, "error": failure.error, "cause": failure.cause}
    except Exception as error:  # a bug in a task runner fails the task, not the engine
        return {"ok": False, "error": "States.TaskFailed", "cause": repr(error)}


def task_token(step: Step) -> str:
    """The token a `.waitForTaskToken` task hands out for this step."""
    return callbacks.encode_token(step.execution, step.id)
