"""Execution history events, in AWS's types: `ExecutionStarted`, `TaskStateEntered`,
`TaskScheduled`, `TaskSucceeded`, `MapIterationStarted`, `ExecutionSucceeded`, ...

An event is a dict: `type`, `timestamp` (seconds since the epoch) and the details AWS gives for
that type; the store orders them as they were written and numbers them when read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fanstack.core.asl import interpreter
from fanstack.core.asl.states import StateMachine
from fanstack.workflows.steps import Step


def event(kind: str, now: float, **details: Any) -> dict[str, Any]:
    """One history event."""
    return {"type": kind, "timestamp": now, **details}


def entered(machine: StateMachine, step: Step, now: float) -> dict[str, Any]:
    """`<Type>StateEntered` for the state a step enters."""
    kind = interpreter.state_type(machine, step.state)
    return event(f"{kind}StateEntered", now, name=step.state, input=_text(step.input))


def exited(machine: StateMachine, step: Step, output: Any, now: float) -> dict[str, Any]:
    """`<Type>StateExited` for the state a step leaves."""
    kind = interpreter.state_type(machine, step.state)
    return event(f"{kind}StateExited", now, name=step.state, output=_text(output))


TASK_TIMEOUTS = frozenset({"States.Timeout", "States.HeartbeatTimeout"})


def task_events(
    resource: str, payload: Any, outcome: dict[str, Any], started: float, now: float
) -> list[dict[str, Any]]:
    """`TaskScheduled` and `TaskStarted` when the task began, then its end (`task_ended`)."""
    return [*task_started(resource, payload, started), task_ended(resource, outcome, now)]


def task_started(resource: str, payload: Any, now: float) -> list[dict[str, Any]]:
    """`TaskScheduled` and `TaskStarted`: a task began."""
    return [
        event("TaskScheduled", now, resource=resource, parameters=_text(payload)),
        event("TaskStarted", now, resource=resource),
    ]


def task_ended(resource: str, outcome: Mapping[str, Any], now: float) -> dict[str, Any]:
    """`TaskSucceeded`, `TaskTimedOut` (its TimeoutSeconds or HeartbeatSeconds ran out) or
    `TaskFailed`: a task ended with `outcome`."""
    if outcome["ok"]:
        return event("TaskSucceeded", now, resource=resource, output=_text(outcome.get("result")))
    kind = "TaskTimedOut" if outcome["error"] in TASK_TIMEOUTS else "TaskFailed"
    return event(kind, now, resource=resource, error=outcome["error"], cause=outcome["cause"])


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
