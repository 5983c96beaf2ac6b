"""The workflows a user touches: `Workflow`, `Execution`, and `Workflows`, the capability.

`app.workflow(name, definition)` validates the definition when it is declared and stores it
when the backend opens. `workflow.start(input, name=None)` records the execution and queues its
first step; the worker role runs the steps (`engine.py`).

An EXPRESS workflow's executions run in memory in the process that declares it (`express.py`):
`start` runs one on a background thread, `start_sync` in the calling thread (StartSyncExecution).
A process without the app's task runner (the CLI) starts them on the durable engine instead,
as `start_stored` does (see `starts.py`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
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
from fanstack.workflows import callbacks, express
from fanstack.workflows.history import event
from fanstack.workflows.runner import StepRunner
from fanstack.workflows.starts import EXPRESS, STANDARD, check_name, start_execution, time_limit
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
from fanstack.workflows.task_states import TaskRunner
from fanstack.workflows.tasks import RunFunction, Tasks

__all__ = ["EXPRESS", "STANDARD", "Execution", "Workflow", "Workflows"]

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
        if type == EXPRESS:
            express.check_definition(name, machine)
        tasks = Tasks(self._backend, self.run_function)
        workflow = Workflow(name, machine, type, self._backend, run_task=tasks)
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
        """The step runner, when the app declares a workflow or its store holds one (made over
        the AWS API, say)."""
        backend = self._opened()
        stored = backend is not None and bool(backend.table_scan(WORKFLOWS_TABLE, limit=1))
        if not self.declared and not stored:
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
        self,
        name: str,
        machine: StateMachine,
        type: str,
        backend: Callable[[], Backend],
        *,
        run_task: TaskRunner | None = None,
    ) -> None:
        self.name = name
        self.arn = workflow_arn(name)
        self.machine = machine
        self.type = type
        self._backend = backend
        self._run_task = run_task  # runs express executions in memory, when given

    def __repr__(self) -> str:
        return f"Workflow({self.name!r})"

    @property
    def definition(self) -> str:
        """The definition as JSON text."""
        return json.dumps(self.machine.definition, separators=(",", ":"))

    @property
    def time_limit(self) -> int | None:
        """How long an execution may run, in seconds: TimeoutSeconds, capped at 300 if EXPRESS."""
        return time_limit(self.type, self.machine.timeout_seconds)

    def start(self, input: Any = None, *, name: str | None = None) -> Execution:
        """Start an execution (StartExecution); it runs while this returns.

        STANDARD: a name already running with this input is that execution. EXPRESS: it runs in
        memory on a background thread of this process; names are checked but, as in AWS, not
        de-duplicated (a name started twice runs twice, the latest record standing).
        """
        run = self._express_run(input, name)
        if run is None:
            return Execution(self._backend(), self._start_durably(input, name))
        threading.Thread(target=run.run, name=f"fanstack-express-{self.name}", daemon=True).start()
        return Execution(run.backend, run.key, run)

    def start_sync(self, input: Any = None, *, name: str | None = None) -> ExecutionRecord:
        """Run an EXPRESS execution to its end in this thread; its record (StartSyncExecution)."""
        if self.type != EXPRESS:
            raise ValidationException(
                f"workflow {self.name!r} is {self.type}: "
                "StartSyncExecution is only for EXPRESS workflows"
            )
        run = self._express_run(input, name)
        if run is None:  # no task runner here: a worker runs it durably
            key = self._start_durably(input, name)
            return Execution(self._backend(), key).wait(timeout=float(self.time_limit or 0) + 60)
        return run.run()

    def _express_run(self, input: Any, name: str | None) -> express.ExpressRun | None:
        """A new in-memory execution, if this is an EXPRESS workflow this process can run."""
        if self.type != EXPRESS or self._run_task is None:
            return None
        name = name or str(uuid.uuid4())
        check_name("execution", name)
        limit = float(self.time_limit or 0)
        return express.start_run(
            self._backend(), self.name, self.machine, self._run_task, input, name, limit
        )

    def _start_durably(self, input: Any, name: str | None) -> str:
        """Start an execution on the durable engine; its key."""
        return start_execution(
            self._backend(),
            self.name,
            self.machine.start_at,
            input,
            name,
            timeout_seconds=self.time_limit,
        )

    def execution(self, name: str) -> Execution:
        """An execution of this workflow by name."""
        return Execution.of(self._backend(), f"{self.name}:{name}")

    def executions(self, status: str | None = None) -> list[ExecutionRecord]:
        """Its executions (ListExecutions), optionally of one status.

        Express executions are recorded when they end; those running in this process are
        listed too.
        """
        backend = self._backend()
        records = list(Store(backend).executions(self.name))
        stored = {record.name for record in records}
        running = express.running_records(backend, self.name)
        records += [record for record in running if record.name not in stored]
        return [r for r in records if status is None or r.status == status]


class Execution:
    """One execution: describe it, wait for it, read its history, stop it.

    An express execution running in this process is answered from memory (`run`).
    """

    def __init__(self, backend: Backend, key: str, run: express.ExpressRun | None = None) -> None:
        self.backend = backend
        self.key = key
        self._run = run

    @classmethod
    def of(cls, backend: Backend, key: str) -> Execution:
        """The execution `<workflow>:<name>` (ExecutionDoesNotExist if none)."""
        run = express.running(backend, key)
        if run is None:
            Store(backend).execution(key)
        return cls(backend, key, run)

    @classmethod
    def from_arn(cls, backend: Backend, arn: str) -> Execution:
        """The execution an ARN names (ExecutionDoesNotExist if none)."""
        return cls.of(backend, execution_key(arn))

    def __repr__(self) -> str:
        return f"Execution({self.key!r})"

    @property
    def arn(self) -> str:
        """The execution's ARN."""
        return self.describe().arn

    def describe(self) -> ExecutionRecord:
        """Status, input, output, error, cause, start and stop (DescribeExecution)."""
        run = self._local()
        if run is not None:
            return run.describe()
        return Store(self.backend).execution(self.key)

    def wait(self, timeout: float = 60.0, interval: float = 0.05) -> ExecutionRecord:
        """Wait until the execution ends; its record (TimeoutError past `timeout`)."""
        run = self._local()
        if run is not None:
            return run.wait(timeout)
        deadline = time.monotonic() + timeout
        while True:
            record = self.describe()
            if record.status != RUNNING:
                return record
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {self.key!r} is still RUNNING")
            time.sleep(interval)

    def history(self) -> list[dict[str, Any]]:
        """The execution's events in order (GetExecutionHistory).

        An in-memory express execution keeps no history: its history is [] (AWS sends Express
        history to logs, not to GetExecutionHistory).
        """
        return Store(self.backend).history(self.key)

    def stop(self, error: str | None = None, cause: str | None = None) -> ExecutionRecord:
        """Abort a running execution (StopExecution); it stops at its next transition.

        An express execution can be stopped only by the process that runs it, while it runs.
        """
        run = self._local()
        if run is not None:
            return run.stop(error, cause)
        store = Store(self.backend)
        now = self.backend.clock()
        ended = store.end_execution(self.key, ABORTED, now, error=error, cause=cause)
        callbacks.notify_parent(self.backend, store.execution(self.key))
        if ended:
            store.add_events(
                self.key, "end", [event("ExecutionAborted", now, error=error, cause=cause)]
            )
        return self.describe()

    def _local(self) -> express.ExpressRun | None:
        """The in-memory express run of this execution, if this process runs (or ran) it."""
        return self._run or express.running(self.backend, self.key)
