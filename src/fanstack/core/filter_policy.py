"""SNS filter policies: parsing with AWS's validation and limits, and matching.

A policy is compiled once into a tree of `_Node`s: each node holds leaf conditions (a key path and
the operators in its array, ORed) that are ANDed, plus `$or` groups of alternative nodes. Attribute
scope matches message attributes by name; body scope walks the JSON body, where arrays match if any
element matches. As in AWS, body fields are named by their dotted path, so a policy key `"a.b"`,
a nested `{"a": {"b": ...}}` and a body key `"a.b"` all name the same field, whichever way the dots
are split. The operator family is shared with event patterns through `dialect`: SNS rejects
`anything-but` with `suffix`/`equals-ignore-case` and `wildcard`, which event patterns accept.

Limits, as AWS counts them: at most 5 keys, where a nested key counts as its top-level (parent)
key; at most 150 combinations, the product over the leaf arrays of the array's length times the
key's nesting depth (`$or` branches summed), so `{"a": {"b": {"c": [4 values]}}, "d": {"e": [3
values]}, "f": [3 values]}` makes 3x4 x 2x3 x 1x3 = 216 and is rejected. A dotted key counts as
written (`{"a.b": [...]}` is one top-level key at depth 1): AWS's counting of dots is not recorded.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fanstack.core.errors import InvalidFilterPolicy
from fanstack.core.message import STRING_ARRAY, MessageAttribute
from fanstack.core.specs import ATTRIBUTES_SCOPE, BODY_SCOPE

MAX_KEYS = 5
MAX_COMBINATIONS = 150
MAX_POLICY_BYTES = 256 * 1024
NUMBER_LIMIT = 1e9
SNS = "sns"
EVENT_PATTERN = "eventbridge"

_LOWER_BOUNDS = (">", ">=")
_UPPER_BOUNDS = ("<", "<=")
_MISSING: Any = object()

Predicate = Callable[[Any], bool]
"""A compiled operator: true if one candidate value (str, float, bool or None) matches."""


@dataclass(frozen=True, slots=True)
class _Condition:
    """One key of a policy: the path to a value and the operators of its array, ORed."""

    path: tuple[str, ...]
    field: str  # the path dotted: an attribute name, or a field of the body
    predicates: tuple[Predicate, ...]
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
        return _match_node(self._root, lambda field: _attribute_values(attributes, field))

    def matches_body(self, body: str | Mapping[str, Any]) -> bool:
        """Match against a JSON body (the `MessageBody` scope); a non-object body never matches."""
        document = _parse_body(body) if isinstance(body, str) else body
        if not isinstance(document, Mapping):
            return False
        return _match_node(self._root, lambda field: _body_values(document, field))


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
            raise _invalid(path, f"the value must be an array of rules, got {_kind(value)}")
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
    if not rules:
        raise _invalid(path, "the array of rules must not be empty")
    predicates: list[Predicate] = []
    exists: bool | None = None
    for rule in rules:
        if isinstance(rule, dict):
            operator, predicate = _compile_operator(path, rule, dialect)
            if operator == "exists":
                exists = rule["exists"]
                continue
            predicates.append(predicate)
        else:
            predicates.append(_exact(path, rule))
    return _Condition(path, ".".join(path), tuple(predicates), exists, len(rules))


def _compile_operator(
    path: tuple[str, ...], rule: Mapping[str, Any], dialect: str
) -> tuple[str, Predicate]:
    if len(rule) != 1:
        raise _invalid(path, f"an operator object holds exactly one operator, got {sorted(rule)}")
    ((operator, operand),) = rule.items()
    if operator in ("prefix", "suffix", "equals-ignore-case"):
        if isinstance(operand, dict) and operator in ("prefix", "suffix") and dialect != SNS:
            if list(operand) != ["equals-ignore-case"]:
                raise _invalid(path, f"{operator!r} accepts a string or {{'equals-ignore-case'}}")
            return operator, _string_test(path, operator, operand["equals-ignore-case"], fold=True)
        return operator, _string_test(path, operator, operand, fold=operator != "prefix")
    if operator == "anything-but":
        return operator, _anything_but(path, operand, dialect)
    if operator == "numeric":
        return operator, _numeric(path, operand)
    if operator == "exists":
        if not isinstance(operand, bool):
            raise _invalid(path, f"'exists' takes true or false, got {operand!r}")
        return operator, _never
    if operator == "cidr":
        return operator, _cidr(path, operand)
    if operator == "wildcard" and dialect == EVENT_PATTERN:
        return operator, _wildcard(path, operand)
    raise _invalid(path, f"unrecognized operator {operator!r}")


def _exact(path: tuple[str, ...], value: Any) -> Predicate:
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return lambda candidate: candidate == value and type(candidate) is type(value)
    if isinstance(value, int | float):
        number = _policy_number(path, value)
        return lambda candidate: _is_number(candidate) and candidate == number
    raise _invalid(
        path, f"a rule must be a string, number, boolean, null or operator, got {_kind(value)}"
    )


def _string_test(path: tuple[str, ...], operator: str, operand: Any, *, fold: bool) -> Predicate:
    if not isinstance(operand, str):
        raise _invalid(path, f"{operator!r} takes a string, got {_kind(operand)}")
    needle = operand.lower() if fold else operand
    if operator == "prefix":
        if fold:
            return lambda c: isinstance(c, str) and c.lower().startswith(needle)
        return lambda c: isinstance(c, str) and c.startswith(needle)
    if operator == "suffix":
        if fold:
            return lambda c: isinstance(c, str) and c.lower().endswith(needle)
        return lambda c: isinstance(c, str) and c.endswith(needle)
    return lambda c: isinstance(c, str) and c.lower() == needle


def _anything_but(path: tuple[str, ...], operand: Any, dialect: str) -> Predicate:
    if isinstance(operand, dict):
        allowed = ("prefix",) if dialect == SNS else ("prefix", "suffix", "equals-ignore-case")
        if len(operand) != 1 or next(iter(operand)) not in allowed:
            names = " or ".join(repr(a) for a in allowed)
            raise _invalid(path, f"'anything-but' accepts an object with only {names}")
        ((operator, value),) = operand.items()
        if operator == "equals-ignore-case" and isinstance(value, list):
            tests = [_string_test(path, operator, v, fold=True) for v in value]
            inner: Predicate = lambda c: any(test(c) for test in tests)  # noqa: E731
        else:
            inner = _string_test(path, operator, value, fold=operator == "equals-ignore-case")
        return lambda c: isinstance(c, str) and not inner(c)
    values = operand if isinstance(operand, list) else [operand]
    if not values:
        raise _invalid(path, "'anything-but' needs at least one value")
    for value in values:
        if not isinstance(value, str) and not _is_number(value):
            raise _invalid(path, f"'anything-but' values must be strings or numbers, got {value!r}")
    tests = [_exact(path, value) for value in values]
    return lambda c: not any(test(c) for test in tests)


def _numeric(path: tuple[str, ...], operand: Any) -> Predicate:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise _invalid(path, "'numeric' takes [op, number] or [op, number, op, number]")
    pairs = [(operand[i], operand[i + 1]) for i in range(0, len(operand), 2)]
    bounds: list[float] = []
    for operator, value in pairs:
        if operator not in ("=", *_LOWER_BOUNDS, *_UPPER_BOUNDS):
            raise _invalid(path, f"unrecognized numeric operator {operator!r}")
        if not _is_number(value):
            raise _invalid(path, f"numeric operator {operator!r} needs a number, got {value!r}")
        bounds.append(_policy_number(path, value))
    if len(pairs) == 2:
        (first, _), (second, _) = pairs
        lower, upper = bounds
        if "=" in (first, second):
            raise _invalid(path, "numeric '=' cannot be combined with another operator")
        if first not in _LOWER_BOUNDS or second not in _UPPER_BOUNDS:
            raise _invalid(
                path,
                "a numeric range gives its lower bound ('>' or '>=') first, then its upper "
                f"bound ('<' or '<='); got {first!r} then {second!r}",
            )
        if lower >= upper:
            raise _invalid(
                path, f"numeric range is empty: lower bound {lower} >= upper bound {upper}"
            )
    tests = [_compare(operator, bound) for (operator, _), bound in zip(pairs, bounds, strict=True)]
    return lambda c: _is_number(c) and all(test(c) for test in tests)


def _compare(operator: str, bound: float) -> Predicate:
    return {
        "=": lambda c: c == bound,
        ">": lambda c: c > bound,
        ">=": lambda c: c >= bound,
        "<": lambda c: c < bound,
        "<=": lambda c: c <= bound,
    }[operator]


def _cidr(path: tuple[str, ...], operand: Any) -> Predicate:
    if not isinstance(operand, str) or operand.count("/") != 1:
        raise _invalid(
            path, f"'cidr' needs a network with one '/' and a prefix length, got {operand!r}"
        )
    try:
        network = ipaddress.ip_network(operand, strict=False)
    except (TypeError, ValueError) as exc:
        raise _invalid(path, f"'cidr' needs an IPv4 or IPv6 network, got {operand!r}") from exc

    def contains(candidate: Any) -> bool:
        if not isinstance(candidate, str):
            return False
        try:
            return ipaddress.ip_address(candidate) in network
        except ValueError:
            return False

    return contains


def _wildcard(path: tuple[str, ...], operand: Any) -> Predicate:
    if not isinstance(operand, str):
        raise _invalid(path, f"'wildcard' takes a string, got {_kind(operand)}")
    if "**" in operand:
        raise _invalid(path, "'wildcard' does not allow consecutive '*' characters")
    parts = (re.escape(part) for part in operand.replace("\\*", "\0").split("*"))
    pattern = re.compile(".*".join(parts).replace("\0", re.escape("*")), re.DOTALL)
    return lambda c: isinstance(c, str) and pattern.fullmatch(c) is not None


def _never(candidate: Any) -> bool:
    return False


def _policy_number(path: tuple[str, ...], value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or abs(number) > NUMBER_LIMIT:
        raise _invalid(path, f"number {value!r} is outside -1e9..1e9, the range for filtering")
    return number


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    names: dict[type, str] = {dict: "an object", list: "an array", str: "a string"}
    return names.get(type(value), repr(value))


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
    return any(test(value) for value in values for test in condition.predicates)


def _attribute_values(attributes: Mapping[str, MessageAttribute], name: str) -> list[Any] | None:
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
        return [float(e) if _is_number(e) else e for e in leaves]
    return [string_value]


def _body_values(document: Mapping[str, Any], field: str) -> list[Any] | None:
    found = list(_walk(document, field))
    return [float(v) if _is_number(v) else v for v in found] if found else None


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
def _parse_body(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _expand(node: _Node) -> list[list[_Condition]]:
    """Every OR-free alternative of a policy, each a list of conditions (for the limits)."""
    branches: list[list[_Condition]] = [list(node.conditions)]
    for group in node.alternatives:
        branches = [
            base + extra for base in branches for branch in group for extra in _expand(branch)
        ]
    return branches
