"""The workflows a user touches: `Workflow`, `Execution`, and `Workflows`, the capability.

`app.workflow(name, definition)` validates the definition when it is declared and stores it
when the backend opens. `workflow.start(input, name=None)` records the execution and queues its
first step; the worker role runs the steps (`engine.py`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.asl.definition import parse_definition
from fanstack.core.asl.states import StateMachine
from fanstack.core.errors import (
    StateMachineDoesNotExist,
    ValidationException,
)
from fanstack.core.specs import QueueSpec
from fanstack.runtime.services import Service
from fanstack.workflows import callbacks
from fanstack.workflows.history import event
from fanstack.workflows.runner import StepRunner
from fanstack.workflows.starts import check_name, start_execution
from fanstack.workflows.store import (
    ABORTED,
    RUNNING,
    STEP_QUEUE,
    WORKFLOWS_TABLE,
    ExecutionRecord,
    Store,
    execution_key,
    workflow_arn,
)
from fanstack.workflows.tasks import RunFunction, Tasks

STANDARD, EXPRESS = "STANDARD", "EXPRESS"
STEP_QUEUE_SIZE = 1024 * 1024  # a state's input and variables (256 KiB each) and the step


class Workflows:
    """Every workflow an app declares (the workflow capability)."""

    def __init__(
        self,
        backend: Callable[[], Backend],
        opened: Callable[[], Backend | None],
        run_function: RunFunction,
    ) -> None:
        self._backend = backend
        self._opened = opened
        self.run_function = run_function
        self.declared: dict[str, Workflow] = {}
        self._lock = threading.Lock()

    def workflow(
        self, name: str, definition: Mapping[str, Any] | str, *, type: str = STANDARD
    ) -> Workflow:
        """Declare a workflow (its definition is validated now)."""
        check_name("workflow", name)
        if type not in (STANDARD, EXPRESS):
            raise ValidationException(f"workflow {name!r}: type must be STANDARD or EXPRESS")
        machine = parse_definition(definition)
        workflow = Workflow(name, machine, type, self._backend)
        with self._lock:
            self.declared[name] = workflow
        backend = self._opened()
        if backend is not None:
            self.provision(backend)
        return workflow

    def provision(self, backend: Backend) -> None:
        """Create the step queue and store the declared definitions."""
        backend.declare_queue(
            QueueSpec(name=STEP_QUEUE, visibility_timeout=60, max_message_size=STEP_QUEUE_SIZE)
        )
        for workflow in list(self.declared.values()):
            value = {
                "name": workflow.name,
                "definition": workflow.definition,
                "type": workflow.type,
            }
            item = backend.table_get(WORKFLOWS_TABLE, workflow.name)
            if item is None or item.value != value:
                backend.table_put(WORKFLOWS_TABLE, workflow.name, value)

    def services(self) -> list[Service]:
        """The step runner, when the app declares a workflow."""
        if not self.declared:
            return []
        return [StepRunner(self.machine, Tasks(self._backend, self.run_function))]

    def send_task_success(self, token: str, output: Any) -> None:
        """Answer a `.waitForTaskToken` task: it succeeded with `output` (SendTaskSuccess)."""
        callbacks.send_task_success(self._backend(), token, output)

    def send_task_failure(
        self, token: str, error: str | None = None, cause: str | None = None
    ) -> None:
        """Answer a `.waitForTaskToken` task: it failed (SendTaskFailure)."""
        callbacks.send_task_failure(self._backend(), token, error, cause)

    def send_task_heartbeat(self, token: str) -> None:
        """A `.waitForTaskToken` task is still at work (SendTaskHeartbeat)."""
        callbacks.send_task_heartbeat(self._backend(), token)

    def machine(self, name: str) -> StateMachine:
        """The parsed definition of a workflow (declared here, or stored by another process)."""
        workflow = self.declared.get(name)
        if workflow is not None:
            return workflow.machine
        item = self._backend().table_get(WORKFLOWS_TABLE, name)
        if item is None:
            raise StateMachineDoesNotExist(f"State Machine Does Not Exist: '{workflow_arn(name)}'")
        return parse_definition(item.value["definition"])


class Workflow:
    """A declared workflow (a state machine): start executions, list them."""

    def __init__(
        self, name: str, machine: StateMachine, type: str, backend: Callable[[], Backend]
    ) -> None:
        self.name = name
        self.arn = workflow_arn(name)
        self.machine = machine
        self.type = type
        self._backend = backend

    def __repr__(self) -> str:
        return f"Workflow({self.name!r})"

    @property
    def definition(self) -> str:
        """The definition as JSON text."""
        return json.dumps(self.machine.definition, separators=(",", ":"))

    def start(self, input: Any = None, *, name: str | None = None) -> Execution:
        """Start an execution (StartExecution); a name already running with this input is it."""
        backend = self._backend()
        key = start_execution(
            backend,
            self.name,
            self.machine.start_at,
            input,
            name,
            timeout_seconds=self.machine.timeout_seconds,
        )
        return Execution(backend, key)

    def execution(self, name: str) -> Execution:
        """An execution of this workflow by name."""
        backend = self._backend()
        Store(backend).execution(f"{self.name}:{name}")
        return Execution(backend, f"{self.name}:{name}")

    def executions(self, status: str | None = None) -> list[ExecutionRecord]:
        """Its executions (ListExecutions), optionally of one status."""
        records = Store(self._backend()).executions(self.name)
        return [r for r in records if status is None or r.status == status]


class Execution:
    """One execution: describe it, wait for it, read its history, stop it."""

    def __init__(self, backend: Backend, key: str) -> None:
        self.backend = backend
        self.key = key

    @classmethod
    def from_arn(cls, backend: Backend, arn: str) -> Execution:
        """The execution an ARN names (ExecutionDoesNotExist if none)."""
        key = execution_key(arn)
        Store(backend).execution(key)
        return cls(backend, key)

    def __repr__(self) -> str:
        return f"Execution({self.key!r})"

    @property
    def arn(self) -> str:
        """The execution's ARN."""
        return self.describe().arn

    def describe(self) -> ExecutionRecord:
        """Status, input, output, error, cause, start and stop (DescribeExecution)."""
        return Store(self.backend).execution(self.key)

    def wait(self, timeout: float = 60.0, interval: float = 0.05) -> ExecutionRecord:
        """Wait until the execution ends; its record (TimeoutError past `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.describe()
            if record.status != RUNNING:
                return record
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {self.key!r} is still RUNNING")
            time.sleep(interval)

    def history(self) -> list[dict[str, Any]]:
        """The execution's events in order (GetExecutionHistory)."""
        return Store(self.backend).history(self.key)

    def stop(self, error: str | None = None, cause: str | None = None) -> ExecutionRecord:
        """Abort a running execution (StopExecution); its steps stop at the next transition."""
        store = Store(self.backend)
        now = self.backend.clock()
        ended = store.end_execution(self.key, ABORTED, now, error=error, cause=cause)
        callbacks.notify_parent(self.backend, store.execution(self.key))
        if ended:
            store.add_events(
                self.key, "end", [event("ExecutionAborted", now, error=error, cause=cause)]
            )
        return self.describe()
