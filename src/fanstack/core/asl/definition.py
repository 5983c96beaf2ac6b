"""State machine definitions: Amazon States Language parsed and validated at declaration.

`parse_definition` accepts a definition (a mapping or its JSON text) and returns frozen states,
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
from collections.abc import Iterator, Mapping
from typing import Any

from fanstack.core.asl import choice, jsonata, map_fields, retry
from fanstack.core.asl.fields import MAX_TIMEOUT_SECONDS, StateReader, check_int
from fanstack.core.asl.states import (
    JSONATA,
    JSONPATH,
    ChoiceState,
    FailState,
    MapState,
    ParallelState,
    PassState,
    State,
    StateMachine,
    SucceedState,
    TaskState,
    WaitState,
    WorkState,
)
from fanstack.core.errors import InvalidDefinition

MAX_STATE_NAME = 80
_TOP_FIELDS = frozenset({"StartAt", "States", "Comment", "TimeoutSeconds", "Version",
                         "QueryLanguage"})
_NESTED_FIELDS = frozenset({"StartAt", "States", "Comment", "QueryLanguage"})


def parse_definition(definition: Mapping[str, Any] | str) -> StateMachine:
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
    processor, where, allowed = map_fields.processor(reader)
    config = processor.get("ProcessorConfig", {}) if where == "ItemProcessor." else {}
    fields = map_fields.map_fields(reader, config)
    work = _work(reader, common)
    work.update(parameters=None, has_parameters=False)  # Parameters here selects each item
    return MapState(
        **work,
        processor=parse_machine(processor, language=reader.language, allowed=allowed,
                                seen=seen, where=where, extra=config),
        **fields,
    )


_PARSERS = {
    "Pass": _parse_pass, "Task": _parse_task, "Choice": _parse_choice, "Wait": _parse_wait,
    "Succeed": _parse_succeed, "Fail": _parse_fail, "Parallel": _parse_parallel,
    "Map": _parse_map,
}


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

