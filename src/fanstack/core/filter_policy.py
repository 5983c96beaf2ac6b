"""SNS filter policies: parsing with AWS's validation and limits, and matching.

A policy is compiled once into a tree of `_Node`s: each node holds leaf conditions (a key path and
the `Matcher`s of its array, ORed) that are ANDed, plus `$or` groups of alternative nodes. Attribute
scope matches message attributes by name; body scope walks the JSON body, where arrays match if any
element matches. As in AWS, body fields are named by their dotted path, so a policy key `"a.b"`,
a nested `{"a": {"b": ...}}` and a body key `"a.b"` all name the same field, whichever way the dots
are split. The operators live in `core/matchers.py`, shared with event patterns through
`dialect`: SNS rejects `anything-but` with `suffix`/`equals-ignore-case` and `wildcard`, which
event patterns accept.

Limits, as AWS counts them: at most 5 keys, where a nested key counts as its top-level (parent)
key; at most 150 combinations, the product over the leaf arrays of the array's length times the
key's nesting depth (`$or` branches summed), so `{"a": {"b": {"c": [4 values]}}, "d": {"e": [3
values]}, "f": [3 values]}` makes 3x4 x 2x3 x 1x3 = 216 and is rejected. A dotted key counts as
written (`{"a.b": [...]}` is one top-level key at depth 1): AWS's counting of dots is not recorded.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fanstack.core.errors import InvalidFilterPolicy
from fanstack.core.matchers import (
    EVENT_PATTERN,
    SNS,
    Matcher,
    RuleError,
    compile_rules,
    describe,
    is_number,
)
from fanstack.core.message import STRING_ARRAY, MessageAttribute
from fanstack.core.specs import ATTRIBUTES_SCOPE, BODY_SCOPE

__all__ = [
    "EVENT_PATTERN",
    "SNS",
    "FilterPolicy",
    "attribute_values",
    "compile_policy",
    "load_policy",
    "parse_body",
]

MAX_KEYS = 5
MAX_COMBINATIONS = 150
MAX_POLICY_BYTES = 256 * 1024

_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class _Condition:
    """One key of a policy: the path to a value and the operators of its array, ORed."""

    path: tuple[str, ...]
    field: str  # the path dotted: an attribute name, or a field of the body
    matchers: tuple[Matcher, ...]
    exists: bool | None  # an `exists` operator in the array, if any
    values: int  # the length of the key's array, for the combination limit

    @property
    def combinations(self) -> int:
        """What this key multiplies the combinations by: its values times its nesting depth."""
        return self.values * len(self.path)


@dataclass(frozen=True, slots=True)
class _Node:
    """Conditions that must all match, and `$or` groups of which one branch each must match."""

    conditions: tuple[_Condition, ...]
    alternatives: tuple[tuple[_Node, ...], ...] = ()


@dataclass(frozen=True)
class FilterPolicy:
    """A validated, compiled SNS filter policy for one subscription."""

    policy: Mapping[str, Any]
    scope: str = ATTRIBUTES_SCOPE
    _root: _Node = field(repr=False, compare=False, default=_Node(()))

    @classmethod
    def parse(
        cls, policy: Mapping[str, Any] | str, *, scope: str = ATTRIBUTES_SCOPE
    ) -> FilterPolicy:
        """Validate `policy` (a dict or its JSON) against SNS's rules; raise InvalidFilterPolicy."""
        if scope not in (ATTRIBUTES_SCOPE, BODY_SCOPE):
            raise InvalidFilterPolicy(
                f"FilterPolicyScope must be {ATTRIBUTES_SCOPE!r} or {BODY_SCOPE!r}, got {scope!r}"
            )
        document = load_policy(policy)
        root = compile_policy(document, nested=scope == BODY_SCOPE, dialect=SNS)
        return cls(document, scope, root)

    def to_json(self) -> str:
        """The policy as compact JSON, as stored with the subscription."""
        return json.dumps(self.policy, separators=(",", ":"), sort_keys=True)

    def matches(self, *, attributes: Mapping[str, MessageAttribute], body: str) -> bool:
        """Whether a message with these attributes and body is delivered under this policy."""
        if self.scope == BODY_SCOPE:
            return self.matches_body(body)
        return self.matches_attributes(attributes)

    def matches_attributes(self, attributes: Mapping[str, MessageAttribute]) -> bool:
        """Match against message attributes (the `MessageAttributes` scope)."""
        return _match_node(self._root, lambda field: attribute_values(attributes, field))

    def matches_body(self, body: str | Mapping[str, Any]) -> bool:
        """Match against a JSON body (the `MessageBody` scope); a non-object body never matches."""
        document = parse_body(body) if isinstance(body, str) else body
        if not isinstance(document, Mapping):
            return False
        return _match_node(self._root, lambda field: _body_values(document, field))

    def branches(self) -> list[list[_Condition]]:
        """The policy's OR-free branches, each the keys that must all match (for an index)."""
        return _expand(self._root)


def load_policy(policy: Mapping[str, Any] | str) -> dict[str, Any]:
    """Decode a policy given as JSON text or a mapping, enforcing the size limit."""
    try:
        text = policy if isinstance(policy, str) else json.dumps(policy, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidFilterPolicy(f"FilterPolicy: not representable as JSON ({exc})") from exc
    size = len(text.encode())
    if size > MAX_POLICY_BYTES:
        raise InvalidFilterPolicy(
            f"FilterPolicy: policy is {size} bytes; the limit is {MAX_POLICY_BYTES} bytes"
        )
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise InvalidFilterPolicy(f"FilterPolicy: not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise InvalidFilterPolicy("FilterPolicy: the policy must be a JSON object")
    return document


def compile_policy(document: Mapping[str, Any], *, nested: bool, dialect: str) -> _Node:
    """Compile a decoded policy, validating operators, key count and combinations."""
    root = _compile_object(document, (), nested=nested, dialect=dialect)
    branches = _expand(root)
    for branch in branches:
        keys = {condition.path[0] for condition in branch}  # a nested key counts as its parent
        if len(keys) > MAX_KEYS:
            names = ", ".join(repr(key) for key in sorted(keys))
            raise InvalidFilterPolicy(
                f"FilterPolicy: {len(keys)} keys ({names}); the limit is {MAX_KEYS} keys"
            )
    combinations = sum(math.prod(c.combinations for c in branch) for branch in branches)
    if combinations > MAX_COMBINATIONS:
        raise InvalidFilterPolicy(
            f"FilterPolicy: {combinations} combinations of values (each key's number of values "
            f"times its nesting depth, multiplied); the limit is {MAX_COMBINATIONS} combinations"
        )
    return root


def _compile_object(
    document: Mapping[str, Any], prefix: tuple[str, ...], *, nested: bool, dialect: str
) -> _Node:
    conditions: list[_Condition] = []
    alternatives: list[tuple[_Node, ...]] = []
    for key, value in document.items():
        path = (*prefix, key)
        if key == "$or":
            alternatives.append(_compile_or(value, prefix, nested=nested, dialect=dialect))
        elif isinstance(value, list):
            conditions.append(_compile_condition(path, value, dialect))
        elif isinstance(value, dict):
            if not nested:
                raise _invalid(path, "nested keys are only allowed with filter_scope 'body'")
            if not value:
                raise _invalid(path, "an object must have at least one key")
            inner = _compile_object(value, path, nested=nested, dialect=dialect)
            conditions.extend(inner.conditions)
            alternatives.extend(inner.alternatives)
        else:
            raise _invalid(path, f"the value must be an array of rules, got {describe(value)}")
    return _Node(tuple(conditions), tuple(alternatives))


def _compile_or(
    value: Any, prefix: tuple[str, ...], *, nested: bool, dialect: str
) -> tuple[_Node, ...]:
    path = (*prefix, "$or")
    if not isinstance(value, list) or len(value) < 2:
        raise _invalid(path, "'$or' must be an array of at least two policy objects")
    branches = []
    for branch in value:
        if not isinstance(branch, dict) or not branch:
            raise _invalid(path, f"each '$or' branch must be a non-empty object, got {branch!r}")
        branches.append(_compile_object(branch, prefix, nested=nested, dialect=dialect))
    return tuple(branches)


def _compile_condition(path: tuple[str, ...], rules: list[Any], dialect: str) -> _Condition:
    try:
        matchers, exists = compile_rules(rules, dialect)
    except RuleError as exc:
        raise _invalid(path, str(exc)) from exc
    last_exists = exists[-1] if exists else None
    return _Condition(path, ".".join(path), matchers, last_exists, len(rules))


def _invalid(path: Sequence[str], reason: str) -> InvalidFilterPolicy:
    key = ".".join(path)
    return InvalidFilterPolicy(f"FilterPolicy: key {key!r}: {reason}")


# -- matching --------------------------------------------------------------------------------


def _match_node(node: _Node, lookup: Callable[[str], list[Any] | None]) -> bool:
    for condition in node.conditions:
        if not _match_condition(condition, lookup(condition.field)):
            return False
    return all(any(_match_node(branch, lookup) for branch in group) for group in node.alternatives)


def _match_condition(condition: _Condition, values: list[Any] | None) -> bool:
    """`values` is None for an absent key, else the candidate values found at its path."""
    if values is None:
        return condition.exists is False
    if condition.exists is True:
        return True
    return any(matcher.test(value) for value in values for matcher in condition.matchers)


def attribute_values(attributes: Mapping[str, MessageAttribute], name: str) -> list[Any] | None:
    """The values attribute `name` offers to operators; None if the message lacks it."""
    attribute = attributes.get(name)
    if attribute is None:
        return None
    return _candidates(attribute.base_type, attribute.string_value)


@functools.lru_cache(maxsize=4096)
def _candidates(base_type: str, string_value: str | None) -> list[Any]:
    """Values an attribute offers to operators; a Binary attribute offers none."""
    if string_value is None or base_type == "Binary":
        return []
    if base_type == "Number":
        try:
            return [float(string_value)]
        except ValueError:
            return []
    if base_type == STRING_ARRAY:
        try:
            elements = json.loads(string_value)
        except ValueError:
            return []
        if not isinstance(elements, list):
            return []
        leaves = (e for e in elements if not isinstance(e, dict | list))
        return [_number(e) if is_number(e) else e for e in leaves]
    return [string_value]


def _body_values(document: Mapping[str, Any], field: str) -> list[Any] | None:
    found = list(_walk(document, field))
    return [_number(v) if is_number(v) else v for v in found] if found else None


def _number(value: int | float) -> float:
    """A JSON number as a float; an integer too large for one is infinite, which compares as
    it should with every bound a policy can hold (those are within +-1e9)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _walk(value: Any, field: str | None) -> Iterator[Any]:
    """Leaf values at the dotted `field` (None: this value), descending into arrays.

    An object key may itself hold dots: each key that is `field` or a dotted prefix of it is
    followed, so `{"a": {"b": 1}}`, `{"a.b": 1}` and mixed splits all offer 1 for `a.b`.
    """
    if isinstance(value, list):
        for element in value:
            yield from _walk(element, field)
        return
    if field is None:
        if not isinstance(value, dict):
            yield value
        return
    if not isinstance(value, Mapping):
        return
    dot = -1
    while True:
        dot = field.find(".", dot + 1)
        key, rest = (field, None) if dot < 0 else (field[:dot], field[dot + 1 :])
        child = value.get(key, _MISSING)
        if child is not _MISSING:
            yield from _walk(child, rest)
        if dot < 0:
            return


@functools.lru_cache(maxsize=64)
def parse_body(body: str) -> Any:
    """The decoded JSON body, None if it is not JSON (cached: every policy reads the same body)."""
    try:
        return json.loads(body)
    except ValueError:
        return None


def _expand(node: _Node) -> list[list[_Condition]]:
    """Every OR-free alternative of a policy, each a list of conditions (limits, indexes)."""
    branches: list[list[_Condition]] = [list(node.conditions)]
    for group in node.alternatives:
        branches = [
            base + extra for base in branches for branch in group for extra in _expand(branch)
        ]
    return branches
