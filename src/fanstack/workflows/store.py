"""Where workflows and their executions live: items of backend tables, and the step queue.

Tables: `fanstack-workflows` (`<workflow>` -> definition and type), `fanstack-executions`
(`<workflow>:<name>` -> the execution record: status, input, output, error, cause, times),
`fanstack-steps` (`<execution>/<step>` -> what a step decided, so running it again changes
nothing: its task result, and whether its successors were sent), `fanstack-joins`
(`<execution>/<step>` -> a Parallel's or Map's counted join, see `joins.py`; `.../r/<index>` ->
each child's result) and `fanstack-history` (`<execution>/<step>/<k>` -> one history event,
read back in the order they were written). The queue `fanstack-workflow-steps` holds the steps
to run; a delayed message is a durable timer.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.arns import arn
from fanstack.core.errors import ConditionalCheckFailed, ExecutionDoesNotExist, FanstackError
from fanstack.core.message import OutgoingMessage
from fanstack.core.tables import TableItem
from fanstack.observability.metrics import counting
from fanstack.workflows.steps import Step

WORKFLOWS_TABLE = "fanstack-workflows"
EXECUTIONS_TABLE = "fanstack-executions"
STEPS_TABLE = "fanstack-steps"
JOINS_TABLE = "fanstack-joins"
HISTORY_TABLE = "fanstack-history"
STEP_QUEUE = "fanstack-workflow-steps"
START_STEP = "start"  # the history events of an execution's start (`ExecutionStarted`)
# The events that end an execution: one per execution (`end_execution` lets one writer win).
ENDING_EVENTS = frozenset(
    {"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}
)
RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED = (
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "TIMED_OUT",
    "ABORTED",
)
MAX_TIMER = 900  # the longest delay of one message (SQS's); longer timers are chained
HISTORY_ITEM_BYTES = 300 * 1024  # under the 400 KiB item limit
EVENT_OVERHEAD = 256  # an event's bytes besides its text details, at most


def workflow_arn(workflow: str) -> str:
    """The ARN of a workflow (a state machine)."""
    return arn("states", f"stateMachine:{workflow}")


def execution_arn(workflow: str, name: str) -> str:
    """The ARN of an execution."""
    return arn("states", f"execution:{workflow}:{name}")


def execution_key(arn: str) -> str:
    """`<workflow>:<name>` of an execution ARN (ExecutionDoesNotExist if it is not one)."""
    parts = arn.split(":")
    if len(parts) != 8 or parts[5] != "execution":
        raise ExecutionDoesNotExist(f"Execution Does Not Exist: '{arn}'")
    return f"{parts[6]}:{parts[7]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionRecord:
    """An execution as DescribeExecution shows it."""

    workflow: str
    name: str
    status: str
    input: Any
    start: float
    output: Any = None
    error: str | None = None
    cause: str | None = None
    stop: float | None = None
    parent: dict[str, Any] | None = None  # a `.sync` task waiting for this one: its token

    @property
    def arn(self) -> str:
        """The execution's ARN."""
        return execution_arn(self.workflow, self.name)

    @property
    def key(self) -> str:
        """`<workflow>:<name>`."""
        return f"{self.workflow}:{self.name}"

    def ended(self, status: str, now: float, **fields: Any) -> ExecutionRecord:
        """The record of the execution ended with `status`."""
        return replace(self, status=status, stop=now, **fields)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (its values are JSON already: no deep copy is needed)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionRecord:
        """The record from its stored form (unknown fields ignored)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def input_hash(value: Any) -> str:
    """A digest of an execution's input (starting a name twice needs the same input)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class Store:
    """The workflow tables of one backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # -- executions ----------------------------------------------------------------------

    def create_execution(self, record: ExecutionRecord) -> ExecutionRecord | None:
        """Store a new execution; None if one of that name exists (ConditionalCheckFailed)."""
        try:
            self.backend.table_put(EXECUTIONS_TABLE, record.key, record.to_dict(), if_absent=True)
            _count_started(record)
        except ConditionalCheckFailed:
            return None
        return record

    def execution(self, key: str) -> ExecutionRecord:
        """The execution `<workflow>:<name>` (ExecutionDoesNotExist if absent)."""
        return self.execution_item(key)[0]

    def execution_item(self, key: str) -> tuple[ExecutionRecord, int]:
        """The execution and the version of its record."""
        item = self.backend.table_get(EXECUTIONS_TABLE, key)
        if item is None:
            workflow, _, name = key.partition(":")
            raise ExecutionDoesNotExist(
                f"Execution Does Not Exist: '{execution_arn(workflow, name)}'"
            )
        return ExecutionRecord.from_dict(item.value), item.version

    def end_execution(self, key: str, status: str, now: float, **fields: Any) -> bool:
        """End a running execution (False if it had already ended)."""
        while True:
            record, version = self.execution_item(key)
            if record.status != RUNNING:
                return False
            ended = record.ended(status, now, **fields)
            try:
                self.backend.table_put(EXECUTIONS_TABLE, key, ended.to_dict(), if_version=version)
                _count_ended(ended)
                return True
            except ConditionalCheckFailed:
                continue

    def executions(self, workflow: str) -> Iterator[ExecutionRecord]:
        """Every execution of a workflow, by name."""
        for item in self._scan(EXECUTIONS_TABLE, f"{workflow}:"):
            yield ExecutionRecord.from_dict(item.value)

    # -- steps ---------------------------------------------------------------------------

    def step(self, execution: str, step: str) -> Mapping[str, Any] | None:
        """What a step recorded, if it ran before."""
        item = self.backend.table_get(STEPS_TABLE, f"{execution}/{step}")
        return None if item is None else item.value

    def record_step(self, execution: str, step: str, value: Mapping[str, Any]) -> Mapping[str, Any]:
        """Record a step's outcome once: the first record stands and is returned."""
        try:
            self.backend.table_put(STEPS_TABLE, f"{execution}/{step}", value, if_absent=True)
            return value
        except ConditionalCheckFailed:
            current = self.step(execution, step)
            assert current is not None
            return current

    def mark_dispatched(
        self, execution: str, step: str, recorded: Mapping[str, Any] | None
    ) -> None:
        """Note that the step's successors were sent (a redelivered step then does nothing);
        `recorded` is what the step recorded so far, kept beside the mark."""
        value = {**(recorded or {}), "dispatched": True}
        self.backend.table_put(STEPS_TABLE, f"{execution}/{step}", value)

    # -- joins ---------------------------------------------------------------------------

    def record_child(self, execution: str, step: str, index: int, value: Any) -> Any:
        """A child's result, recorded once (the first record stands and is returned)."""
        key = f"{execution}/{step}/r/{index:08d}"
        try:
            self.backend.table_put(JOINS_TABLE, key, {"value": value}, if_absent=True)
            return value
        except ConditionalCheckFailed:
            item = self.backend.table_get(JOINS_TABLE, key)
            assert item is not None
            return item.value["value"]

    def children(self, execution: str, step: str) -> list[Any]:
        """Every child's recorded result, in child order."""
        prefix = f"{execution}/{step}/r/"
        return [item.value["value"] for item in self._scan(JOINS_TABLE, prefix)]

    # -- history -------------------------------------------------------------------------

    def add_events(self, execution: str, step: str, events: list[dict[str, Any]]) -> None:
        """Record a step's history events in as few items as fit (a rerun writes the same keys)."""
        written = time.time_ns()  # the order of writes orders the history, whatever `now` said
        chunk: list[dict[str, Any]] = []
        size = part = 0
        for position, event in enumerate(events):
            value = {**event, "step": step, "order": written + position}
            # The large details (input, output, parameters) are ASCII JSON text already: written
            # inside a JSON string, each takes at most twice its length (every quote escaped).
            text = sum(len(v) for v in value.values() if isinstance(v, str))
            length = EVENT_OVERHEAD + 2 * text
            if chunk and size + length > HISTORY_ITEM_BYTES:
                self.backend.table_put(
                    HISTORY_TABLE, f"{execution}/{step}/{part:03d}", {"events": chunk}
                )
                chunk, size, part = [], 0, part + 1
            chunk.append(value)
            size += length
        if chunk:
            self.backend.table_put(
                HISTORY_TABLE, f"{execution}/{step}/{part:03d}", {"events": chunk}
            )

    def has_events(self, execution: str, step: str) -> bool:
        """Whether `add_events` wrote events for this step (its first item is there)."""
        return self.backend.table_get(HISTORY_TABLE, f"{execution}/{step}/000") is not None

    def history(self, execution: str) -> list[dict[str, Any]]:
        """The execution's events in time order, numbered from 1 as AWS numbers them.

        The start and the end are placed by what they are, whatever the order of the writes:
        `ExecutionStarted` (step "start") comes first, though the first step is sent before
        it is written (`starts.start_execution`) and a worker quick to take it records its
        first events earlier; the one event that ended the execution comes last, though a
        step running elsewhere at that moment (another branch, the task a stop or a timeout
        cut short: its entry and start, not its end) may record its own events after it.
        """
        items = self._scan(HISTORY_TABLE, f"{execution}/")
        found = [event for item in items for event in item.value["events"]]
        events = sorted(found, key=_history_position)
        return [{**event, "id": number} for number, event in enumerate(events, start=1)]

    def _scan(self, table: str, prefix: str) -> list[TableItem]:
        return list(self.backend.table_items(table, prefix=prefix))


def _history_position(event: Mapping[str, Any]) -> tuple[int, int]:
    """Where a stored event goes in its execution's history: the start first, the end last,
    the rest in the order they were written."""
    if event.get("step") == START_STEP:
        return 0, event["order"]
    return (2 if event.get("type") in ENDING_EVENTS else 1), event["order"]


def send_steps(backend: Backend, steps: list[Step], delay: float = 0) -> None:
    """Queue steps (after `delay` seconds, at most 15 minutes)."""
    if not steps:
        return
    seconds = min(math.ceil(delay), MAX_TIMER) if delay > 0 else None
    messages = [
        OutgoingMessage(id=str(uuid.uuid4()), body=step.to_json(), delay_seconds=seconds)
        for step in steps
    ]
    for outcome in backend.send(STEP_QUEUE, messages):
        if isinstance(outcome, FanstackError):
            raise outcome


def _count_started(record: ExecutionRecord) -> None:
    instruments = counting()
    if instruments is not None:
        instruments.executions_started.labels(record.workflow).inc()
        if record.status != RUNNING:  # an express execution is written once, when it ends
            _count_ended(record)


def _count_ended(record: ExecutionRecord) -> None:
    instruments = counting()
    if instruments is not None:
        instruments.executions_ended.labels(record.workflow, record.status).inc()
