"""State machine definitions: Amazon States Language parsed and validated at declaration.

`StateMachine.parse` accepts a definition (a mapping or its JSON text) and returns frozen states,
one dataclass per state type, each keeping its raw dict; any fault raises `InvalidDefinition`
naming the state and the field. Checked here: the top-level fields; each state type's exact set
of fields, where `QueryLanguage` (the machine's, `JSONPath` by default, or a state's own, which
may only switch a JSONPath machine's state to JSONata) decides between the JSONPath-only fields
(`InputPath`, `Parameters`, `ResultSelector`, `ResultPath`, `OutputPath`, the `...Path` forms)
and the JSONata ones (`Arguments`, `Output`, `Items`, `Condition`); `Next`/`End`; names (1-80
characters, unique across the whole machine, nested ones included); every transition landing on a
state of its own (sub)machine; every state reachable from `StartAt`; Parallel branches and Map
processors, recursively. Paths, payload templates and JSONata expressions are checked by
`paths`, `intrinsics` and `jsonata`; Retry/Catch by `retry`; Choice rules by `choice`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fanstack.core.asl import choice, intrinsics, jsonata, paths, retry, templates
from fanstack.core.asl.data import is_number
from fanstack.core.asl.retry import Catcher, Retrier
from fanstack.core.errors import InvalidDefinition

JSONPATH, JSONATA = "JSONPath", "JSONata"
MAX_STATE_NAME = 80
MAX_TIMEOUT_SECONDS = 99_999_999
MAX_BATCH_BYTES = 262_144
MAX_LABEL = 40
MAX_VARIABLE_NAME = 80
_TOP_FIELDS = frozenset({"StartAt", "States", "Comment", "TimeoutSeconds", "Version",
                         "QueryLanguage"})
_NESTED_FIELDS = frozenset({"StartAt", "States", "Comment", "QueryLanguage"})


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

    @classmethod
    def parse(cls, definition: Mapping[str, Any] | str) -> StateMachine:
        """Parse and validate a definition; raises InvalidDefinition naming state and field."""
        if isinstance(definition, str):
            try:
                definition = json.loads(definition)
            except ValueError as exc:
                raise InvalidDefinition(f"the definition is not valid JSON: {exc}") from None
        if not isinstance(definition, Mapping):
            raise InvalidDefinition("the definition must be a JSON object")
        try:
            return parse_machine(definition, language=None, allowed=_TOP_FIELDS, seen=set())
        except ValueError as exc:
            raise InvalidDefinition(str(exc)) from None

    @property
    def definition(self) -> Mapping[str, Any]:
        """The definition as it was given (its JSON object)."""
        return self.raw

    def state(self, name: str) -> State:
        """The state of this name (KeyError if none)."""
        return self.states[name]


def parse_machine(
    raw: Mapping[str, Any],
    *,
    language: str | None,
    allowed: frozenset[str],
    seen: set[str],
    where: str = "",
    extra: Mapping[str, Any] | None = None,
) -> StateMachine:
    """A (sub)machine; `language` is the enclosing state's (None at the top level)."""
    for name in raw:
        if name not in allowed:
            raise ValueError(f"field '{where}{name}' is not allowed here")
    own = _query_language(raw.get("QueryLanguage", language or JSONPATH), language, f"{where}")
    start_at, states = raw.get("StartAt"), raw.get("States")
    if not isinstance(start_at, str) or not start_at:
        raise ValueError(f"field '{where}StartAt' must name a state")
    if not isinstance(states, Mapping) or not states:
        raise ValueError(f"field '{where}States' must be a non-empty object of states")
    parsed = {name: _parse_named_state(name, body, own, seen) for name, body in states.items()}
    if start_at not in parsed:
        raise ValueError(f"field '{where}StartAt' names {start_at!r}, which is not a state here")
    _check_graph(start_at, parsed)
    timeout = raw.get("TimeoutSeconds")
    if timeout is not None:
        check_int(timeout, f"{where}TimeoutSeconds", 0, MAX_TIMEOUT_SECONDS)
    version = raw.get("Version")
    if version is not None and version != "1.0":
        raise ValueError(f"field '{where}Version' must be \"1.0\", not {version!r}")
    comment = raw.get("Comment")
    if comment is not None and not isinstance(comment, str):
        raise ValueError(f"field '{where}Comment' must be a string")
    return StateMachine(start_at=start_at, states=parsed, query_language=own, comment=comment,
                        timeout_seconds=timeout, version=version,
                        processor_config=extra or {}, raw=raw)


def _query_language(value: Any, inherited: str | None, where: str) -> str:
    if value not in (JSONPATH, JSONATA):
        raise ValueError(f"field '{where}QueryLanguage' must be JSONPath or JSONata, not {value!r}")
    if inherited == JSONATA and value == JSONPATH:
        raise ValueError(f"field '{where}QueryLanguage' cannot switch a JSONata machine's "
                         "state back to JSONPath")
    return str(value)


def _parse_named_state(name: str, body: Any, language: str, seen: set[str]) -> State:
    if not name or len(name) > MAX_STATE_NAME:
        raise InvalidDefinition(
            f"state {name!r}: a state name must be 1 to {MAX_STATE_NAME} characters")
    if name in seen:
        raise InvalidDefinition(f"state {name!r}: the name is used twice in this machine")
    seen.add(name)
    if not isinstance(body, Mapping):
        raise InvalidDefinition(f"state {name!r}: a state must be a JSON object")
    try:
        own = _query_language(body.get("QueryLanguage", language), language, "")
        return _parse_state(StateReader(name, body, own), seen)
    except ValueError as exc:
        raise InvalidDefinition(f"state {name!r}: {exc}") from None


def _parse_state(reader: StateReader, seen: set[str]) -> State:
    kind = reader.raw.get("Type")
    if not isinstance(kind, str) or kind not in _PARSERS:
        raise ValueError(f"field 'Type' must be one of {', '.join(_PARSERS)}, not {kind!r}")
    parse = _PARSERS[kind]
    reader.check_fields(kind)
    common = reader.common(kind)
    return parse(reader, common, seen)


def _parse_pass(reader: StateReader, common: dict[str, Any], seen: set[str]) -> State:
    return PassState(**common, parameters=reader.template("Parameters"),
                     result=reader.raw.get("Result"), has_result="Result" in reader.raw,
                     result_path=reader.io_path("ResultPath", reference=True))


def _work(reader: StateReader, common: dict[str, Any]) -> dict[str, Any]:
    """The fields WorkState adds to the common ones."""
    argument = "Arguments" if reader.jsonata else "Parameters"
    catch = retry.parse_catch(reader.raw.get("Catch", []), language=reader.language)
    for index, catcher in enumerate(catch):
        reader.check_catcher(catcher, f"Catch[{index}]")
    return {
        **common,
        "parameters": reader.payload(argument),
        "has_parameters": argument in reader.raw,
        "result_selector": reader.template("ResultSelector"),
        "result_path": reader.io_path("ResultPath", reference=True),
        "retry": retry.parse_retry(reader.raw.get("Retry", [])),
        "catch": catch,
    }


def _parse_task(reader: StateReader, common: dict[str, Any], seen: set[str]) -> State:
    resource = reader.raw.get("Resource")
    if not isinstance(resource, str) or not resource:
        raise ValueError("field 'Resource' must be a non-empty string")
    timeout = reader.seconds("TimeoutSeconds", low=1)
    heartbeat = reader.seconds("HeartbeatSeconds", low=1)
    if isinstance(timeout, int) and isinstance(heartbeat, int) and heartbeat >= timeout:
        raise ValueError(f"field 'HeartbeatSeconds' ({heartbeat}) must be less than "
                         f"TimeoutSeconds ({timeout})")
    credentials = reader.raw.get("Credentials")
    if credentials is not None and not isinstance(credentials, dict):
        raise ValueError("field 'Credentials' must be an object")
    return TaskState(
        **_work(reader, common), resource=resource,
        timeout_seconds=timeout, timeout_seconds_path=reader.exclusive_path("TimeoutSeconds"),
        heartbeat_seconds=heartbeat,
        heartbeat_seconds_path=reader.exclusive_path("HeartbeatSeconds"),
        credentials=reader.payload("Credentials"),
    )


def _parse_parallel(reader: StateReader, common: dict[str, Any], seen: set[str]) -> State:
    branches = reader.raw.get("Branches")
    if not isinstance(branches, list) or not branches:
        raise ValueError("field 'Branches' must be a non-empty array of state machines")
    parsed = []
    for index, branch in enumerate(branches):
        if not isinstance(branch, Mapping):
            raise ValueError(f"field 'Branches[{index}]' must be an object")
        parsed.append(parse_machine(branch, language=reader.language, allowed=_NESTED_FIELDS,
                                    seen=seen, where=f"Branches[{index}]."))
    return ParallelState(**_work(reader, common), branches=tuple(parsed))


def _parse_choice(reader: StateReader, common: dict[str, Any], seen: set[str]) -> State:
    rules = reader.raw.get("Choices")
    if not isinstance(rules, list) or not rules:
        raise ValueError("field 'Choices' must be a non-empty array of rules")
    parsed = tuple(choice.parse_rule(rule, where=f"Choices[{index}]", language=reader.language)
                   for index, rule in enumerate(rules))
    for index, rule in enumerate(parsed):
        reader.check_assign(rule.assign, f"Choices[{index}].Assign")
        if rule.has_output:
            reader.check_expressions(rule.output, f"Choices[{index}].Output")
    default = reader.raw.get("Default")
    if default is not None and (not isinstance(default, str) or not default):
        raise ValueError("field 'Default' must name a state")
    return ChoiceState(**common, choices=parsed, default=default)


def _parse_wait(reader: StateReader, common: dict[str, Any], seen: set[str]) -> State:
    given = [name for name in ("Seconds", "Timestamp", "SecondsPath", "TimestampPath")
             if name in reader.raw]
    if len(given) != 1:
        raise ValueError("exactly one of fields Seconds, Timestamp, SecondsPath, TimestampPath "
                         f"is needed, found {len(given)}")
    timestamp = reader.raw.get("Timestamp")
    if timestamp is not None and not (
        isinstance(timestamp, str)
        and (choice.parse_timestamp(timestamp) or reader.is_expression(timestamp))
    ):
        raise ValueError(f"field 'Timestamp' must be an RFC 3339 timestamp, not {timestamp!r}")
    if isinstance(timestamp, str) and reader.is_expression(timestamp):
        jsonata.check_expression(timestamp, field="Timestamp")
    return WaitState(**common, seconds=reader.seconds("Seconds", low=0), timestamp=timestamp,
                     seconds_path=reader.ref_path("SecondsPath"),
                     timestamp_path=reader.ref_path("TimestampPath"))


def _parse_fail(reader: StateReader, common: dict[str, Any], seen: set[str]) -> State:
    texts = {}
    for name in ("Error", "Cause"):
        if name in reader.raw and f"{name}Path" in reader.raw:
            raise ValueError(f"fields {name!r} and '{name}Path' are mutually exclusive")
        value = reader.raw.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"field {name!r} must be a string")
        reader.check_expressions(value, name)
        texts[name] = value
    return FailState(**common, error=texts["Error"], cause=texts["Cause"],
                     error_path=reader.path_or_intrinsic("ErrorPath"),
                     cause_path=reader.path_or_intrinsic("CausePath"))


def _parse_succeed(reader: StateReader, common: dict[str, Any], seen: set[str]) -> State:
    return SucceedState(**common)


def _parse_map(reader: StateReader, common: dict[str, Any], seen: set[str]) -> State:
    processor, where, allowed = _processor(reader)
    config = processor.get("ProcessorConfig", {}) if where == "ItemProcessor." else {}
    mode, execution_type = _processor_config(config)
    if mode == "INLINE":
        for name in _DISTRIBUTED_ONLY:
            if name in reader.raw:
                raise ValueError(f"field {name!r} needs ItemProcessor.ProcessorConfig.Mode "
                                 "DISTRIBUTED")
    selector = "Parameters" if "Parameters" in reader.raw else "ItemSelector"
    if selector == "Parameters" and "ItemSelector" in reader.raw:
        raise ValueError("fields 'ItemSelector' and 'Parameters' are mutually exclusive")
    label = reader.raw.get("Label")
    if label is not None and not (isinstance(label, str) and 0 < len(label) <= MAX_LABEL):
        raise ValueError(f"field 'Label' must be a string of 1 to {MAX_LABEL} characters")
    work = _work(reader, common)
    work.update(parameters=None, has_parameters=False)  # Parameters here selects each item
    return MapState(
        **work,
        processor=parse_machine(processor, language=reader.language, allowed=allowed,
                                seen=seen, where=where, extra=config),
        mode=mode, execution_type=execution_type,
        items_path=reader.io_path("ItemsPath", reference=True),
        items=reader.payload("Items"), has_items="Items" in reader.raw,
        item_selector=reader.payload(selector), has_item_selector=selector in reader.raw,
        reader=_object(reader, "ItemReader", _READER_FIELDS),
        batcher=_batcher(reader), writer=_object(reader, "ResultWriter", _WRITER_FIELDS),
        max_concurrency=reader.seconds("MaxConcurrency", low=0) or 0,
        max_concurrency_path=reader.exclusive_path("MaxConcurrency"),
        tolerated_failure_percentage=reader.number("ToleratedFailurePercentage", 0, 100),
        tolerated_failure_percentage_path=reader.exclusive_path("ToleratedFailurePercentage"),
        tolerated_failure_count=reader.seconds("ToleratedFailureCount", low=0),
        tolerated_failure_count_path=reader.exclusive_path("ToleratedFailureCount"),
        label=label,
    )


_DISTRIBUTED_ONLY = ("ItemReader", "ItemBatcher", "ResultWriter", "ToleratedFailurePercentage",
                     "ToleratedFailurePercentagePath", "ToleratedFailureCount",
                     "ToleratedFailureCountPath", "Label")
_READER_FIELDS = frozenset({"Resource", "ReaderConfig", "Parameters", "Arguments"})
_WRITER_FIELDS = frozenset({"Resource", "WriterConfig", "Parameters", "Arguments"})
_BATCHER_FIELDS = frozenset({"MaxItemsPerBatch", "MaxItemsPerBatchPath", "MaxInputBytesPerBatch",
                             "MaxInputBytesPerBatchPath", "BatchInput"})


def _processor(reader: StateReader) -> tuple[Mapping[str, Any], str, frozenset[str]]:
    """A Map's item processor (or legacy Iterator), its field prefix and its allowed fields."""
    if ("ItemProcessor" in reader.raw) == ("Iterator" in reader.raw):
        raise ValueError("exactly one of fields 'ItemProcessor' and 'Iterator' is needed")
    name = "ItemProcessor" if "ItemProcessor" in reader.raw else "Iterator"
    processor = reader.raw[name]
    if not isinstance(processor, Mapping):
        raise ValueError(f"field {name!r} must be an object")
    allowed = _NESTED_FIELDS | {"ProcessorConfig"} if name == "ItemProcessor" else _NESTED_FIELDS
    return processor, f"{name}.", allowed


def _processor_config(config: Any) -> tuple[str, str | None]:
    if not isinstance(config, Mapping):
        raise ValueError("field 'ItemProcessor.ProcessorConfig' must be an object")
    for name in config:
        if name not in ("Mode", "ExecutionType"):
            raise ValueError(f"field 'ItemProcessor.ProcessorConfig.{name}' is not allowed")
    mode, execution_type = config.get("Mode", "INLINE"), config.get("ExecutionType")
    if mode not in ("INLINE", "DISTRIBUTED"):
        raise ValueError(f"field 'ItemProcessor.ProcessorConfig.Mode' must be INLINE or "
                         f"DISTRIBUTED, not {mode!r}")
    if mode == "DISTRIBUTED" and execution_type not in ("STANDARD", "EXPRESS"):
        raise ValueError("field 'ItemProcessor.ProcessorConfig.ExecutionType' must be STANDARD "
                         f"or EXPRESS in DISTRIBUTED mode, not {execution_type!r}")
    if mode == "INLINE" and execution_type is not None:
        raise ValueError("field 'ItemProcessor.ProcessorConfig.ExecutionType' needs DISTRIBUTED")
    return str(mode), execution_type


def _object(reader: StateReader, name: str, allowed: frozenset[str]) -> dict[str, Any] | None:
    """ItemReader, ItemBatcher or ResultWriter: an object of known fields, expressions checked."""
    value = reader.raw.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"field {name!r} must be an object")
    wrong = "Parameters" if reader.jsonata else "Arguments"
    for key in value:
        if key not in allowed or key == wrong:
            raise ValueError(f"field '{name}.{key}' is not allowed here")
    if "Resource" in value and not isinstance(value["Resource"], str):
        raise ValueError(f"field '{name}.Resource' must be a string")
    if "Parameters" in value:
        check_payload(value["Parameters"], field=f"{name}.Parameters")
    reader.check_expressions(value, name)
    return value


def _batcher(reader: StateReader) -> dict[str, Any] | None:
    batcher = _object(reader, "ItemBatcher", _BATCHER_FIELDS)
    if batcher is None:
        return None
    if not any(name in batcher for name in _BATCHER_FIELDS - {"BatchInput"}):
        raise ValueError("field 'ItemBatcher' needs MaxItemsPerBatch or MaxInputBytesPerBatch")
    for name, high in (("MaxItemsPerBatch", MAX_TIMEOUT_SECONDS),
                       ("MaxInputBytesPerBatch", MAX_BATCH_BYTES)):
        value = batcher.get(name)
        if value is not None and not reader.is_expression(value):
            check_int(value, f"ItemBatcher.{name}", 1, high)
        if f"{name}Path" in batcher:
            choice.check_path(batcher[f"{name}Path"], field=f"ItemBatcher.{name}Path",
                              reference=True)
    return batcher


_PARSERS = {
    "Pass": _parse_pass, "Task": _parse_task, "Choice": _parse_choice, "Wait": _parse_wait,
    "Succeed": _parse_succeed, "Fail": _parse_fail, "Parallel": _parse_parallel,
    "Map": _parse_map,
}


# -- reading one state's fields ------------------------------------------------------------

_FLOW, _IO = frozenset({"Next", "End"}), frozenset({"InputPath", "OutputPath"})
_WORK = frozenset({"Retry", "Catch", "Assign"})
# type -> (fields of both languages, JSONPath-only fields, JSONata-only fields)
_FIELDS: dict[str, tuple[frozenset[str], frozenset[str], frozenset[str]]] = {
    "Pass": (_FLOW | {"Assign"}, _IO | {"Parameters", "Result", "ResultPath"},
             frozenset({"Output"})),
    "Task": (
        _FLOW | _WORK | {"Resource", "TimeoutSeconds", "HeartbeatSeconds", "Credentials"},
        _IO | {"Parameters", "ResultSelector", "ResultPath", "TimeoutSecondsPath",
               "HeartbeatSecondsPath"},
        frozenset({"Arguments", "Output"}),
    ),
    "Choice": (frozenset({"Choices", "Default", "Assign"}), _IO, frozenset({"Output"})),
    "Wait": (_FLOW | {"Seconds", "Timestamp", "Assign"}, _IO | {"SecondsPath", "TimestampPath"},
             frozenset({"Output"})),
    "Succeed": (frozenset(), _IO, frozenset({"Output"})),
    "Fail": (frozenset({"Error", "Cause"}), frozenset({"ErrorPath", "CausePath"}), frozenset()),
    "Parallel": (_FLOW | _WORK | {"Branches"}, _IO | {"Parameters", "ResultSelector", "ResultPath"},
                 frozenset({"Arguments", "Output"})),
    "Map": (
        _FLOW | _WORK | {"ItemProcessor", "Iterator", "ItemSelector", "ItemReader", "ItemBatcher",
                         "ResultWriter", "MaxConcurrency", "ToleratedFailurePercentage",
                         "ToleratedFailureCount", "Label"},
        _IO | {"ItemsPath", "Parameters", "ResultSelector", "ResultPath", "MaxConcurrencyPath",
               "ToleratedFailurePercentagePath", "ToleratedFailureCountPath"},
        frozenset({"Items", "Output"}),
    ),
}
_ALWAYS = frozenset({"Type", "Comment", "QueryLanguage"})
_TERMINAL = frozenset({"Choice", "Succeed", "Fail"})  # no Next, no End
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_payload(template: Any, *, field: str) -> None:
    """`templates.check_template`, where a `.$` field may also read a variable (`$name...`)."""
    templates.check_template(_without_variables(template, field), field=field)


def _without_variables(template: Any, field: str) -> Any:
    """`template` with each variable path checked, then replaced by `$`."""
    if isinstance(template, list):
        return [_without_variables(item, f"{field}[{i}]") for i, item in enumerate(template)]
    if not isinstance(template, Mapping):
        return template
    copy: dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$") and isinstance(value, str) and choice.variable_reference(value):
            choice.check_path(value, field=f"{field}.{key}")
            value = "$"
        copy[key] = _without_variables(value, f"{field}.{key}")
    return copy


def check_int(value: Any, where: str, low: int, high: int) -> int:
    """`value` if it is an integer from `low` to `high` (ValueError naming `where` if not)."""
    if not is_number(value) or not float(value).is_integer() or not low <= value <= high:
        raise ValueError(f"field {where!r} must be an integer from {low} to {high}, not {value!r}")
    return int(value)


class StateReader:
    """One state's raw fields, read and checked for its query language."""

    def __init__(self, name: str, raw: Mapping[str, Any], language: str) -> None:
        self.name, self.raw, self.language = name, raw, language
        self.jsonata = language == JSONATA

    def check_fields(self, kind: str) -> None:
        """Reject fields the state type (in this query language) does not have."""
        both, jsonpath_only, jsonata_only = _FIELDS[kind]
        own, other = jsonpath_only, jsonata_only
        if self.jsonata:
            own, other = other, own
        for name in self.raw:
            if name in other:
                only = JSONPATH if self.jsonata else JSONATA
                raise ValueError(f"field {name!r} is {only}-only; this state's QueryLanguage is "
                                 f"{self.language}")
            if name not in both and name not in own and name not in _ALWAYS:
                raise ValueError(f"field {name!r} is not a field of a {kind} state")

    def common(self, kind: str) -> dict[str, Any]:
        """The fields every state type shares, as State's constructor takes them."""
        comment = self.raw.get("Comment")
        if comment is not None and not isinstance(comment, str):
            raise ValueError("field 'Comment' must be a string")
        assign = self.raw.get("Assign")
        self.check_assign(assign, "Assign")
        self.check_expressions(self.raw.get("Output"), "Output")
        flow = {} if kind in _TERMINAL else self._flow()
        return {
            "name": self.name, "type": kind, "query_language": self.language, "raw": self.raw,
            "comment": comment, "assign": assign, "output": self.raw.get("Output"),
            "has_output": "Output" in self.raw, "input_path": self.io_path("InputPath"),
            "output_path": self.io_path("OutputPath"), **flow,
        }

    def _flow(self) -> dict[str, Any]:
        target, end = self.raw.get("Next"), self.raw.get("End", False)
        if not isinstance(end, bool):
            raise ValueError("field 'End' must be a boolean")
        if target is not None and (not isinstance(target, str) or not target):
            raise ValueError("field 'Next' must name a state")
        if (target is None) == (not end):
            raise ValueError("exactly one of fields 'Next' and 'End: true' is needed")
        return {"next": target, "end": end}

    def io_path(self, name: str, *, reference: bool = False) -> str | None:
        """InputPath/OutputPath/ResultPath/ItemsPath: "$" when absent, None when null."""
        if name not in self.raw:
            return "$"
        value = self.raw[name]
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} must be a path or null")
        if name == "ResultPath" and value.startswith("$$"):
            raise ValueError("field 'ResultPath' cannot write into the context object ($$)")
        if name == "ItemsPath":  # the only one of these that may read a variable
            choice.check_path(value, field=name, reference=reference)
        else:
            paths.check_path(value, field=name, reference=reference)
        return value

    def ref_path(self, name: str) -> str | None:
        """An optional Reference Path field."""
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} must be a path")
        choice.check_path(value, field=name, reference=True)
        return value

    def exclusive_path(self, name: str) -> str | None:
        """`<name>Path`, which may not stand beside `<name>`."""
        if name in self.raw and f"{name}Path" in self.raw:
            raise ValueError(f"fields {name!r} and '{name}Path' are mutually exclusive")
        return self.ref_path(f"{name}Path")

    def path_or_intrinsic(self, name: str) -> str | None:
        """ErrorPath/CausePath: a Reference Path or an intrinsic function call."""
        value = self.raw.get(name)
        if isinstance(value, str) and intrinsics.is_intrinsic(value):
            intrinsics.check_intrinsic(value)
            return value
        return self.ref_path(name)

    def template(self, name: str) -> dict[str, Any] | None:
        """A JSONPath payload template (`.$` keys are paths or intrinsics)."""
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError(f"field {name!r} must be an object")
        check_payload(value, field=name)
        return value

    def payload(self, name: str) -> Any:
        """Parameters-like fields: a JSONPath template, or any JSONata value."""
        if not self.jsonata:
            return self.template(name)
        value = self.raw.get(name)
        self.check_expressions(value, name)
        return value

    def seconds(self, name: str, *, low: int) -> int | str | None:
        """An integer field (`low` to 99999999), or its JSONata expression."""
        value = self.raw.get(name)
        if value is None:
            return None
        if self.is_expression(value):
            jsonata.check_expression(value, field=name)
            return str(value)
        return check_int(value, name, low, MAX_TIMEOUT_SECONDS)

    def number(self, name: str, low: float, high: float) -> float | str | None:
        """A number field from `low` to `high`, or its JSONata expression."""
        value = self.raw.get(name)
        if value is None or self.is_expression(value):
            return self.seconds(name, low=0)
        if not is_number(value) or not low <= value <= high:
            raise ValueError(f"field {name!r} must be a number from {low:g} to {high:g}")
        return float(value)

    def is_expression(self, value: Any) -> bool:
        """Whether `value` is a JSONata expression of a JSONata state."""
        return self.jsonata and isinstance(value, str) and jsonata.is_expression(value)

    def check_expressions(self, value: Any, where: str) -> None:
        """Check every `{% %}` string inside a JSONata state's value."""
        if not self.jsonata:
            return
        if isinstance(value, str) and jsonata.is_expression(value):
            jsonata.check_expression(value, field=where)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.check_expressions(item, f"{where}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.check_expressions(item, f"{where}[{index}]")

    def check_assign(self, assign: Any, where: str) -> None:
        """An `Assign` object: variable names, then paths (JSONPath) or expressions (JSONata)."""
        if assign is None:
            return
        if not isinstance(assign, dict):
            raise ValueError(f"field {where!r} must be an object")
        for key in assign:
            variable = key.removesuffix(".$") if not self.jsonata else key
            if (not _VARIABLE_NAME.fullmatch(variable) or variable == "states"
                    or len(variable) > MAX_VARIABLE_NAME):
                raise ValueError(f"field '{where}.{key}' is not a valid variable name")
        if self.jsonata:
            self.check_expressions(assign, where)
        else:
            check_payload(assign, field=where)

    def check_catcher(self, catcher: Catcher, where: str) -> None:
        """A catcher's ResultPath, Assign and Output."""
        if catcher.result_path is not None and "ResultPath" in catcher.raw:
            if catcher.result_path.startswith("$$"):
                raise ValueError(f"field '{where}.ResultPath' cannot write into the context "
                                 "object ($$)")
            paths.check_path(catcher.result_path, field=f"{where}.ResultPath", reference=True)
        self.check_assign(catcher.assign, f"{where}.Assign")
        self.check_expressions(catcher.output, f"{where}.Output")


# -- the graph -----------------------------------------------------------------------------


def transitions(state: State) -> Iterator[tuple[str, str]]:
    """Every (field, target) a state may move to."""
    if state.next is not None:
        yield "Next", state.next
    if isinstance(state, ChoiceState):
        for index, rule in enumerate(state.choices):
            if rule.next is not None:
                yield f"Choices[{index}].Next", rule.next
        if state.default is not None:
            yield "Default", state.default
    if isinstance(state, WorkState):
        for index, catcher in enumerate(state.catch):
            yield f"Catch[{index}].Next", catcher.next


def _check_graph(start_at: str, states: Mapping[str, State]) -> None:
    for state in states.values():
        for where, target in transitions(state):
            if target not in states:
                raise InvalidDefinition(f"state {state.name!r}: field {where!r} names "
                                        f"{target!r}, which is not a state of its machine")
    reached, pending = {start_at}, [start_at]
    while pending:
        for _, target in transitions(states[pending.pop()]):
            if target not in reached:
                reached.add(target)
                pending.append(target)
    for name in states:
        if name not in reached:
            raise InvalidDefinition(f"state {name!r}: no transition reaches it from StartAt")

