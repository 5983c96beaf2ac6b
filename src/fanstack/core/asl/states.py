"""A parsed state machine and its states: one frozen dataclass per state type.

Each keeps its raw dict beside the fields the interpreter reads; `definition.py` builds them
(`parse_definition`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fanstack.core.asl import choice
from fanstack.core.asl.retry import Catcher, Retrier

JSONPATH, JSONATA = "JSONPath", "JSONata"


@dataclass(frozen=True, slots=True, kw_only=True)
class State:
    """What every state has; `next` is None for a terminal state (or a Choice/Succeed/Fail)."""

    name: str
    type: str
    query_language: str
    raw: Mapping[str, Any]
    comment: str | None = None
    next: str | None = None
    end: bool = False
    input_path: str | None = "$"  # JSONPath only; None: the state sees {}
    output_path: str | None = "$"
    assign: Mapping[str, Any] | None = None
    output: Any = None  # JSONata only
    has_output: bool = False

    @property
    def jsonata(self) -> bool:
        """Whether this state evaluates JSONata (else JSONPath)."""
        return self.query_language == JSONATA


@dataclass(frozen=True, slots=True, kw_only=True)
class PassState(State):
    """A Pass state."""

    parameters: Mapping[str, Any] | None = None
    result: Any = None
    has_result: bool = False
    result_path: str | None = "$"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkState(State):
    """What Task, Parallel and Map states share: `Parameters` (or `Arguments`), results, errors."""

    parameters: Any = None  # Parameters (JSONPath) or Arguments (JSONata)
    has_parameters: bool = False
    result_selector: Mapping[str, Any] | None = None
    result_path: str | None = "$"
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskState(WorkState):
    """A Task state; `timeout_seconds` and `heartbeat_seconds` are JSONata text when computed."""

    resource: str
    timeout_seconds: int | str | None = None
    timeout_seconds_path: str | None = None
    heartbeat_seconds: int | str | None = None
    heartbeat_seconds_path: str | None = None
    credentials: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelState(WorkState):
    """A Parallel state: each branch a state machine of its own."""

    branches: tuple[StateMachine, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class MapState(WorkState):
    """A Map state (`ItemProcessor`, or the legacy `Iterator`, runs each item)."""

    processor: StateMachine
    mode: str = "INLINE"
    execution_type: str | None = None
    items_path: str | None = "$"
    items: Any = None  # JSONata `Items`
    has_items: bool = False
    item_selector: Any = None  # ItemSelector, or the legacy Parameters
    has_item_selector: bool = False
    reader: Mapping[str, Any] | None = None
    batcher: Mapping[str, Any] | None = None
    writer: Mapping[str, Any] | None = None
    max_concurrency: int | str = 0
    max_concurrency_path: str | None = None
    tolerated_failure_percentage: float | str | None = None
    tolerated_failure_percentage_path: str | None = None
    tolerated_failure_count: int | str | None = None
    tolerated_failure_count_path: str | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceState(State):
    """A Choice state."""

    choices: tuple[choice.Rule, ...]
    default: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitState(State):
    """A Wait state: exactly one of its four ways to say how long."""

    seconds: int | str | None = None
    timestamp: str | None = None
    seconds_path: str | None = None
    timestamp_path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SucceedState(State):
    """A Succeed state."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FailState(State):
    """A Fail state; `error_path`/`cause_path` are reference paths or intrinsic calls."""

    error: str | None = None
    cause: str | None = None
    error_path: str | None = None
    cause_path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StateMachine:
    """A parsed, validated state machine (or a Parallel branch, or a Map's item processor)."""

    start_at: str
    states: Mapping[str, State]
    query_language: str = JSONPATH
    comment: str | None = None
    timeout_seconds: int | None = None
    version: str | None = None
    processor_config: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def definition(self) -> Mapping[str, Any]:
        """The definition as it was given (its JSON object)."""
        return self.raw

    def state(self, name: str) -> State:
        """The state of this name (KeyError if none)."""
        return self.states[name]
