"""Starting executions: the record, the first step and `ExecutionStarted`, in an order that
never loses a start; by workflow object, or by the name of a workflow stored by any process.

An EXPRESS workflow started by name (`start_stored`: a bus rule's target, another workflow's
`states:startExecution` task, a `.sync` child) runs here on the durable engine, not in memory:
the caller holds only a backend, not the app's task runner, and a bus delivery it acknowledges
must survive a crash (the deterministic name of a redelivered event still starts it once). Its
Express time limit still holds, as its TimeoutSeconds (`time_limit`). Only the process that
declares an express workflow runs it in memory (`express.py`).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.asl.definition import parse_definition
from fanstack.core.asl.states import StateMachine
from fanstack.core.errors import (
    ExecutionAlreadyExists,
    StateMachineDoesNotExist,
    ValidationException,
)
from fanstack.workflows.history import event
from fanstack.workflows.steps import EXPIRE, ROOT, TIMEOUT_FRAME, Step
from fanstack.workflows.store import (
    RUNNING,
    START_STEP,
    WORKFLOWS_TABLE,
    ExecutionRecord,
    Store,
    input_hash,
    send_steps,
    workflow_arn,
)

MAX_NAME_LENGTH = 80
STANDARD, EXPRESS = "STANDARD", "EXPRESS"
EXPRESS_MAX_SECONDS = 300  # an Express execution runs for 5 minutes at most


def time_limit(type: str, timeout_seconds: int | None) -> int | None:
    """How long an execution of a workflow of `type` may run, in seconds (None: no limit).

    A STANDARD workflow's is its definition's TimeoutSeconds; an EXPRESS one's is that, capped
    at 5 minutes.
    """
    if type != EXPRESS:
        return timeout_seconds
    return min(timeout_seconds or EXPRESS_MAX_SECONDS, EXPRESS_MAX_SECONDS)


def start_execution(
    backend: Backend,
    workflow: str,
    start_at: str,
    input: Any,
    name: str | None = None,
    *,
    parent: Mapping[str, Any] | None = None,
    timeout_seconds: int | None = None,
) -> str:
    """Start an execution of `workflow` (whose machine starts at `start_at`); its key.

    A name already running with the same input is that execution (StartExecution's
    idempotence); ExecutionAlreadyExists otherwise.
    """
    name = name or str(uuid.uuid4())
    check_name("execution", name)
    value = {} if input is None else input
    store = Store(backend)
    now = backend.clock()
    record = ExecutionRecord(
        workflow=workflow,
        name=name,
        status=RUNNING,
        input=value,
        start=now,
        parent=dict(parent) if parent is not None else None,
    )
    first = Step(execution=record.key, frame=ROOT, n=0, path=(), state=start_at)
    # The first step reads the input from the record: sent first, it can never be lost.
    send_steps(backend, [first])
    if store.create_execution(record) is None:
        existing = store.execution(record.key)
        if existing.status != RUNNING or input_hash(existing.input) != input_hash(value):
            raise ExecutionAlreadyExists(f"Execution Already Exists: '{existing.arn}'")
        return existing.key
    started = event("ExecutionStarted", now, input=json.dumps(value), roleArn="")
    store.add_events(record.key, START_STEP, [started])
    if timeout_seconds:
        expiry = Step(
            execution=record.key,
            frame=TIMEOUT_FRAME,
            n=0,
            path=(),
            state=start_at,
            op=EXPIRE,
            wake_at=now + timeout_seconds,
        )
        send_steps(backend, [expiry], timeout_seconds)
    return record.key


def start_stored(
    backend: Backend,
    workflow: str,
    input: Any,
    name: str | None = None,
    *,
    parent: Mapping[str, Any] | None = None,
) -> str:
    """Start an execution of a workflow stored in the backend (declared by any process).

    It runs on the durable engine whatever the workflow's type; an EXPRESS one within its
    Express time limit (see the module docstring).
    """
    item = backend.table_get(WORKFLOWS_TABLE, workflow)
    if item is None:
        raise StateMachineDoesNotExist(f"State Machine Does Not Exist: '{workflow_arn(workflow)}'")
    machine = _machine(item.value["definition"])
    return start_execution(
        backend,
        workflow,
        machine.start_at,
        input,
        name,
        parent=parent,
        timeout_seconds=time_limit(item.value.get("type", STANDARD), machine.timeout_seconds),
    )


@functools.lru_cache(maxsize=64)
def _machine(definition: str) -> StateMachine:
    return parse_definition(definition)


def check_name(kind: str, name: str) -> None:
    """ValidationException unless `name` is a valid workflow or execution name."""
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= MAX_NAME_LENGTH
        or any(c in name for c in ' <>{}[]?*"#%\\^|~`$&,;:/')
        or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name)
    ):
        raise ValidationException(
            f"{kind} name {name!r} must be 1-{MAX_NAME_LENGTH} characters without spaces, "
            "brackets, wildcards, punctuation such as : / ; , or control characters"
        )
