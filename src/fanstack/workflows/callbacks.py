"""Callbacks: tasks that wait for a task token (`.waitForTaskToken`), and the answers to them.

A waiting task records, before it runs its resource, the step it belongs to (so an answer can
continue it) and when it last heard of the task. `send_task_success`, `send_task_failure` and
`send_task_heartbeat` find that record by the token: an answer is recorded once with a
conditional write (a second answer, or one after a timeout, gets TaskTimedOut) and queues the
step that completes or fails the state. The run of the task's step that starts the resource
owns the task until it hands it over (`claim`, `submitted`; the latest run of the step, if it
ran again): an answer that comes meanwhile (a function that answers its own token) is only
recorded, and that run continues the state once the resource returned. So the state never
continues twice, and a step run again after the hand-over starts nothing again. Timeouts
(TimeoutSeconds, HeartbeatSeconds) are check steps on timers. A `.sync` task's child
execution answers its parent the same way when it ends (`notify_parent`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.errors import ConditionalCheckFailed, InvalidToken, TaskTimedOut
from fanstack.workflows.steps import COMPLETE, FAIL, Step
from fanstack.workflows.store import (
    RUNNING,
    STEPS_TABLE,
    SUCCEEDED,
    ExecutionRecord,
    Store,
    send_steps,
    workflow_arn,
)

MAX_OUTPUT_BYTES = 262_144


def encode_token(execution: str, step: str) -> str:
    """The opaque token of a waiting task."""
    return base64.urlsafe_b64encode(f"{execution}|{step}".encode()).decode()


def decode_token(token: str) -> tuple[str, str]:
    """(execution key, step id) of a token; InvalidToken if it is not one of ours."""
    try:
        execution, sep, step = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidToken(f"Invalid Token: '{token}'") from None
    if not sep or ":" not in execution or "#" not in step:
        raise InvalidToken(f"Invalid Token: '{token}'")
    return execution, step


def send_task_success(backend: Backend, token: str, output: Any) -> None:
    """SendTaskSuccess: the waiting task succeeded with `output` (a JSON value or its text)."""
    value = json.loads(output) if isinstance(output, str) else output
    if len(json.dumps(value)) > MAX_OUTPUT_BYTES:
        raise InvalidToken(f"output is over {MAX_OUTPUT_BYTES} bytes")  # AWS: InvalidOutput
    _answer(backend, token, {"ok": True, "result": value})


def send_task_failure(
    backend: Backend, token: str, error: str | None = None, cause: str | None = None
) -> None:
    """SendTaskFailure: the waiting task failed with `error` and `cause`."""
    _answer(backend, token, {"ok": False, "error": error or "", "cause": cause or ""})


def send_task_heartbeat(backend: Backend, token: str) -> None:
    """SendTaskHeartbeat: the waiting task is still at work (resets HeartbeatSeconds)."""
    execution, step = decode_token(token)
    while True:
        item = _waiting(backend, token, execution, step)
        value = dict(item[0])
        value["heartbeat"] = backend.clock()
        try:
            backend.table_put(STEPS_TABLE, f"{execution}/{step}", value, if_version=item[1])
            return
        except ConditionalCheckFailed:
            continue


def settle(
    backend: Backend, execution: str, step: str, outcome: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """Record a waiting task's outcome once; the pending step if this call recorded it."""
    while True:
        item = backend.table_get(STEPS_TABLE, f"{execution}/{step}")
        if item is None or "pending" not in item.value:
            return None
        if "task" in item.value:
            return None
        value = {**item.value, "task": dict(outcome)}
        try:
            backend.table_put(STEPS_TABLE, f"{execution}/{step}", value, if_version=item.version)
            return item.value
        except ConditionalCheckFailed:
            continue


MINE, WAITING, ANSWERED = "mine", "waiting", "answered"


def claim(
    backend: Backend, execution: str, step: str, record: Mapping[str, Any], run: str
) -> tuple[str, Mapping[str, Any]]:
    """A run of a waiting task's step takes it over before it starts the task's resource.

    The record says which run owns the task (`running`: that run continues the state, an
    answer meanwhile is only recorded); the latest run takes it, so an earlier run of the same
    step that is still at work (its lease ran out) steps aside when it finds another owner.
    Returns (MINE, the record) once taken; (WAITING, it) if an earlier run handed the task
    over already (answers continue it now, nothing is started again); (ANSWERED, it) if it has
    its outcome (`owns` says whether this run continues it).
    """
    key = f"{execution}/{step}"
    while True:
        item = backend.table_get(STEPS_TABLE, key)
        if item is None:
            value = {**record, "running": run}
            try:
                backend.table_put(STEPS_TABLE, key, value, if_absent=True)
                return MINE, value
            except ConditionalCheckFailed:
                continue
        if "task" in item.value:
            if item.value.get("running") and not item.value.get("dispatched"):
                # Answered while a run owned it, and not continued yet: that run died (or is
                # about to continue: two runs at once can both go on, as for any state).
                value = {**item.value, "running": run}
                try:
                    backend.table_put(STEPS_TABLE, key, value, if_version=item.version)
                except ConditionalCheckFailed:
                    continue
                return ANSWERED, value
            return ANSWERED, item.value
        if "pending" in item.value and not item.value.get("running"):
            return WAITING, item.value
        value = {**item.value, "running": run}
        try:
            backend.table_put(STEPS_TABLE, key, value, if_version=item.version)
            return MINE, value
        except ConditionalCheckFailed:
            continue  # a heartbeat or an answer came meanwhile


def settle_owned(
    backend: Backend, execution: str, step: str, outcome: Mapping[str, Any], run: str
) -> bool:
    """Record the task's outcome from run `run` of its step, only while that run owns the task
    (a run that lost it to a later one, which handed the task over since, must not end it);
    whether it does, so continues the state (with the first outcome recorded)."""
    recorded = _while_owned(backend, execution, step, run, lambda v: {**v, "task": dict(outcome)})
    return recorded != ANSWERED


def owns(record: Mapping[str, Any] | None, run: str) -> bool:
    """Whether run `run` of a waiting task's step continues the state (it owns the task)."""
    return record is not None and record.get("running") == run


def submitted(backend: Backend, execution: str, step: str, run: str) -> str:
    """Run `run` started the task's resource, which returned: from now on an answer continues
    the state. MINE if an answer came while the resource ran (this run continues the state),
    WAITING once handed over, ANSWERED if another run owns the task now (this one stops)."""
    return _while_owned(
        backend, execution, step, run, lambda v: {f: x for f, x in v.items() if f != "running"}
    )


def _while_owned(
    backend: Backend,
    execution: str,
    step: str,
    run: str,
    change: Callable[[Mapping[str, Any]], Mapping[str, Any]],
) -> str:
    """Write `change(record)` while run `run` owns the task and it has no outcome (WAITING);
    MINE if it owns it and it has its outcome (nothing written); ANSWERED if it does not own
    it (any more)."""
    key = f"{execution}/{step}"
    while True:
        item = backend.table_get(STEPS_TABLE, key)
        if item is None or not owns(item.value, run):
            return ANSWERED
        if "task" in item.value:
            return MINE
        try:
            backend.table_put(STEPS_TABLE, key, change(item.value), if_version=item.version)
            return WAITING
        except ConditionalCheckFailed:
            continue  # a heartbeat or an answer came meanwhile


def continues(pending: Mapping[str, Any] | None) -> bool:
    """Whether the call to `settle` that returned `pending` continues the state: it recorded
    the outcome, and no step is running the task's resource (that step continues it)."""
    return pending is not None and not pending.get("running")


def _answer(backend: Backend, token: str, outcome: Mapping[str, Any]) -> None:
    execution, step_id = decode_token(token)
    _waiting(backend, token, execution, step_id)
    pending = settle(backend, execution, step_id, outcome)
    if pending is None:
        raise TaskTimedOut(f"Task Timed Out: '{token}' (it has an answer already, or timed out)")
    if continues(pending):
        continue_step(backend, Step.from_json(pending["pending"]), outcome)


def continue_step(backend: Backend, step: Step, outcome: Mapping[str, Any]) -> None:
    """Queue the step that completes (or fails) the waiting task's state."""
    if outcome["ok"]:
        follow = Step(**{**_fields(step), "op": COMPLETE, "result": outcome["result"]})
    else:
        follow = Step(
            **{**_fields(step), "op": FAIL, "error": outcome["error"], "cause": outcome["cause"]}
        )
    send_steps(backend, [follow])


def _fields(step: Step) -> dict[str, Any]:
    return {
        "execution": step.execution,
        "frame": step.frame,
        "n": step.n,
        "path": step.path,
        "state": step.state,
        "input": step.input,
        "variables": step.variables,
        "retry_counts": step.retry_counts,
    }


def _waiting(
    backend: Backend, token: str, execution: str, step: str
) -> tuple[Mapping[str, Any], int]:
    """The record of a task still waiting for this token (else InvalidToken / TaskTimedOut)."""
    item = backend.table_get(STEPS_TABLE, f"{execution}/{step}")
    if item is None or "pending" not in item.value:
        raise InvalidToken(f"Invalid Token: '{token}'")
    if "task" in item.value or Store(backend).execution(execution).status != RUNNING:
        raise TaskTimedOut(f"Task Timed Out: '{token}'")
    return item.value, item.version


def notify_parent(backend: Backend, record: ExecutionRecord) -> None:
    """An execution started by a `.sync` task ended: answer that task (once; safe to repeat)."""
    if record.parent is None or record.status == RUNNING:
        return
    as_objects = record.parent.get("mode") == "sync:2"
    description = describe(record, as_objects=as_objects)
    if record.status == SUCCEEDED:
        outcome: dict[str, Any] = {"ok": True, "result": description}
    else:
        outcome = {"ok": False, "error": "States.TaskFailed", "cause": json.dumps(description)}
    execution, step = decode_token(str(record.parent["token"]))
    pending = settle(backend, execution, step, outcome)
    if continues(pending):
        assert pending is not None
        continue_step(backend, Step.from_json(pending["pending"]), outcome)


def describe(record: ExecutionRecord, *, as_objects: bool = False) -> dict[str, Any]:
    """DescribeExecution's answer (Input and Output as JSON text, or as values for `.sync:2`)."""

    def shown(value: Any) -> Any:
        return value if as_objects else json.dumps(value)

    answer: dict[str, Any] = {
        "ExecutionArn": record.arn,
        "StateMachineArn": workflow_arn(record.workflow),
        "Name": record.name,
        "Status": record.status,
        "StartDate": record.start,
        "StopDate": record.stop,
        "Input": shown(record.input),
        "InputDetails": {"Included": True},
    }
    if record.status == SUCCEEDED:
        answer["Output"] = shown(record.output)
        answer["OutputDetails"] = {"Included": True}
    if record.error is not None:
        answer["Error"] = record.error
    if record.cause is not None:
        answer["Cause"] = record.cause
    return answer
