"""EventBridge event patterns: parsing with AWS's validation, the compiled form, and matching.

A pattern compiles into disjunctive normal form: `branches`, each a tuple of `Condition`s that must
all hold, one per field. `$or` multiplies the branches out; nested objects and dotted keys join
into one dotted field path, so `{"a": {"b": ...}}` and `{"a.b": ...}` name the same field, as do
`{"a": {"b": 1}}` and `{"a.b": 1}` in an event. An event is flattened once into field path -> leaf
values, descending into arrays, so a field matches if any element does (arrays are not matched
element-consistently, as event-ruler's `rulesForJSONEvent` would). Objects are not leaves:
`{"exists": true}` needs a leaf value and `{"exists": false}` holds where the key names an object.

Deviations, each for a reason: a field named twice in one branch (`{"a": {"b": [..]}, "a.b":
[..]}`) is rejected rather than silently overridden as event-ruler does, and a pattern may expand
to at most `MAX_BRANCHES` branches, so that 2,048 characters of `$or`s cannot expand exponentially.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from fanstack.core.errors import InvalidEventPattern, ValidationException
from fanstack.core.matchers import (
    ANYTHING_BUT,
    CIDR,
    EQUALS_IGNORE_CASE,
    EVENT_PATTERN,
    EXISTS,
    NUMERIC,
    PREFIX,
    SUFFIX,
    WILDCARD,
    Matcher,
    RuleError,
    compile_rules,
    describe,
)

MAX_PATTERN_CHARS = 2048
MAX_BRANCHES = 1024
OR = "$or"
OPERATOR_NAMES = frozenset(
    (PREFIX, SUFFIX, EQUALS_IGNORE_CASE, ANYTHING_BUT, NUMERIC, EXISTS, CIDR, WILDCARD)
)
"""Keys that make an array of objects under `$or` a list of rules rather than branches."""
_LEAVES = (str, int, float, type(None))
TEST_EVENT_FIELDS = ("id", "account", "source", "time", "region", "resources", "detail-type")
"""Fields TestEventPattern requires in its event."""


class Condition(NamedTuple):
    """One field of a branch: its dotted path, its matchers (ORed), and its `exists` rule."""

    field: str
    matchers: tuple[Matcher, ...]
    exists: bool | None

    def holds(self, values: list[Any] | None) -> bool:
        """Whether the condition holds for the leaf values at its field (None: absent)."""
        if not values:
            return self.exists is False
        if self.exists is True:
            return True
        for matcher in self.matchers:
            test = matcher.predicate
            for value in values:
                if test(value):
                    return True
        return False


Branch = tuple[Condition, ...]
"""Conditions that must all hold; a pattern matches if any of its branches does."""


@dataclass(frozen=True)
class EventPattern:
    """A validated, compiled EventBridge event pattern."""

    pattern: dict[str, Any]
    branches: tuple[Branch, ...] = field(repr=False, compare=False, default=())
    paths: Paths = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = (condition.field for branch in self.branches for condition in branch)
        object.__setattr__(self, "paths", Paths(fields))

    @classmethod
    def parse(cls, pattern: Mapping[str, Any] | str) -> EventPattern:
        """Validate `pattern` (a dict or its JSON) like EventBridge; raise InvalidEventPattern."""
        document = _load(pattern)
        branches = _compile_object(document, ())
        return cls(document, tuple(tuple(branch) for branch in branches))

    def to_json(self) -> str:
        """The pattern as compact JSON, keys in their given order."""
        return json.dumps(self.pattern, separators=(",", ":"))

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether a decoded event (an object) matches this pattern."""
        fields = flatten(event, self.paths)
        return any(
            all(condition.holds(fields.get(condition.field)) for condition in branch)
            for branch in self.branches
        )


def test_event_pattern(pattern: Mapping[str, Any] | str, event: Mapping[str, Any] | str) -> bool:
    """AWS's TestEventPattern: whether `event` (a dict or its JSON) matches `pattern`."""
    compiled = EventPattern.parse(pattern)
    return compiled.matches(_load_event(event))


class Paths:
    """The field paths some patterns look at, and the object paths that lead to them."""

    __slots__ = ("fields", "steps")

    def __init__(self, fields: Iterable[str]) -> None:
        self.fields = frozenset(fields)
        self.steps = frozenset(
            field[: index + 1] for field in self.fields for index, char in enumerate(field)
            if char == "."
        )

    def wanted(self, path: str) -> bool:
        """Whether `path` is looked at, or leads to what is."""
        return path in self.fields or f"{path}." in self.steps


def flatten(event: Mapping[str, Any], paths: Paths | None = None) -> dict[str, list[Any]]:
    """An event's leaf values by dotted field path, arrays descended into, objects not leaves.

    Given `paths`, only those fields are collected (the rest of the event is not walked).
    """
    fields: dict[str, list[Any]] = {}
    _collect_object(event, "", fields, paths)
    return fields


def _collect_object(
    value: Mapping[str, Any], prefix: str, fields: dict[str, list[Any]], paths: Paths | None
) -> None:
    for key, child in value.items():
        path = f"{prefix}{key}"
        if paths is None or paths.wanted(path):
            _collect(child, path, fields, paths)


def _collect(value: Any, path: str, fields: dict[str, list[Any]], paths: Paths | None) -> None:
    if isinstance(value, _LEAVES) or not isinstance(value, list | Mapping):
        if path in fields:
            fields[path].append(value)
        else:
            fields[path] = [value]
    elif isinstance(value, list):
        for element in value:
            _collect(element, path, fields, paths)
    else:
        _collect_object(value, f"{path}.", fields, paths)


# -- parsing ----------------------------------------------------------------------------------


def _load(pattern: Mapping[str, Any] | str) -> dict[str, Any]:
    try:
        text = pattern if isinstance(pattern, str) else json.dumps(pattern, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidEventPattern(f"EventPattern: not representable as JSON ({exc})") from exc
    if len(text) > MAX_PATTERN_CHARS:
        raise InvalidEventPattern(
            f"EventPattern: pattern is {len(text)} characters; "
            f"the limit is {MAX_PATTERN_CHARS} characters"
        )
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise InvalidEventPattern(f"EventPattern: not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise InvalidEventPattern("EventPattern: the pattern must be a JSON object")
    if not document:
        raise InvalidEventPattern("EventPattern: the pattern must name at least one field")
    return document


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _compile_object(document: Mapping[str, Any], prefix: tuple[str, ...]) -> list[list[Condition]]:
    if not document:
        raise _invalid(prefix, "an object must name at least one field")
    branches: list[list[Condition]] = [[]]
    for key, value in document.items():
        path = (*prefix, key)
        if key == OR and _is_or(value):
            alternatives = _compile_or(value, path)
        elif isinstance(value, dict):
            alternatives = _compile_object(value, path)
        elif isinstance(value, list):
            condition = _compile_condition(path, value)
            alternatives = [[condition] if condition else []]
        else:
            reason = f"the value must be an array of rules or an object, got {describe(value)}"
            raise _invalid(path, reason)
        branches = _combine(branches, alternatives, path)
    return branches


def _compile_or(branches: list[dict[str, Any]], path: tuple[str, ...]) -> list[list[Condition]]:
    if not all(branches):
        raise _invalid(path, "each '$or' branch must name at least one field")
    return [alt for branch in branches for alt in _compile_object(branch, path[:-1])]


def _is_or(value: Any) -> bool:
    """`$or` is an operator only over an array of 2+ objects that are not rule objects."""
    return (
        isinstance(value, list)
        and len(value) >= 2
        and all(isinstance(element, dict) for element in value)
        and not any(OPERATOR_NAMES.intersection(element) for element in value)
    )


def _combine(
    branches: list[list[Condition]], alternatives: list[list[Condition]], path: tuple[str, ...]
) -> list[list[Condition]]:
    """Every branch ANDed with every alternative, within the branch limit."""
    if len(branches) * len(alternatives) > MAX_BRANCHES:
        raise _invalid(
            path,
            f"the pattern expands to {len(branches) * len(alternatives)} alternatives "
            f"through '$or'; the limit is {MAX_BRANCHES}",
        )
    extra_fields = [{condition.field for condition in extra} for extra in alternatives]
    for base in branches:
        for fields in extra_fields:
            twice = sorted(fields.intersection(condition.field for condition in base))
            if twice:
                raise _invalid(
                    path,
                    f"field {twice[0]!r} is named twice in one branch "
                    "(nested and dotted keys name the same field)",
                )
    return [base + extra for base in branches for extra in alternatives]


def _compile_condition(path: tuple[str, ...], rules: list[Any]) -> Condition | None:
    """The condition of a leaf array; None when it always holds (`exists` true and false)."""
    try:
        matchers, exists = compile_rules(rules, EVENT_PATTERN)
    except RuleError as exc:
        raise _invalid(path, str(exc)) from exc
    name = ".".join(path)
    if True in exists and False in exists:
        return None
    if True in exists:
        return Condition(name, (), True)
    return Condition(name, tuple(dict.fromkeys(matchers)), False if exists else None)


def _invalid(path: tuple[str, ...], reason: str) -> InvalidEventPattern:
    key = ".".join(path)
    return InvalidEventPattern(f"EventPattern: key {key!r}: {reason}")


def _load_event(event: Mapping[str, Any] | str) -> Mapping[str, Any]:
    if isinstance(event, str):
        try:
            event = json.loads(event)
        except ValueError as exc:
            raise ValidationException(f"Event: not valid JSON ({exc})") from exc
    if not isinstance(event, Mapping):
        raise ValidationException(f"Event: must be a JSON object, got {describe(event)}")
    missing = [name for name in TEST_EVENT_FIELDS if name not in event]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise ValidationException(f"Event: missing mandatory field(s) {names}")
    return event
