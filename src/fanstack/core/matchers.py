"""The operator family shared by SNS filter policies and EventBridge event patterns.

Each element of a key's array (a bare value or an operator object) compiles into one frozen
`Matcher`: its `kind`, its normalized `operand` and a `test` of one leaf value. An index reads kind
and operand to find rules by dict lookups (`exact` by `value_key`, `equals-ignore-case` by the
lowered value, `prefix`/`suffix` by slices of the value, lowered when `ignore_case`); every other
kind is tested value by value.

The dialects differ where AWS does: SNS takes `anything-but` with `prefix` only, no `wildcard`, no
`{"prefix": {"equals-ignore-case": ...}}`, and numbers within -1e9..1e9; event patterns take
`anything-but` with `prefix`, `suffix`, `equals-ignore-case` or `wildcard`, lists in `anything-but`
of one type only, numbers within -5e9..5e9 with at most 6 decimals (event-ruler's
`ComparableNumber`), and `numeric` matches only event numbers within that range. Case is folded
with `str.lower`, character by character, as event-ruler does.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

SNS = "sns"
EVENT_PATTERN = "eventbridge"

EXACT = "exact"
PREFIX = "prefix"
SUFFIX = "suffix"
EQUALS_IGNORE_CASE = "equals-ignore-case"
ANYTHING_BUT = "anything-but"
NUMERIC = "numeric"
CIDR = "cidr"
WILDCARD = "wildcard"
EXISTS = "exists"

SNS_NUMBER_LIMIT = 1e9
EVENT_NUMBER_LIMIT = 5e9
EVENT_NUMBER_DECIMALS = 6

_LIMIT_LABELS = {SNS: "-1e9..1e9", EVENT_PATTERN: "-5e9..5e9"}
_LOWER_BOUNDS = (">", ">=")
_UPPER_BOUNDS = ("<", "<=")

Predicate = Callable[[Any], bool]
"""A compiled test: true if one leaf value (str, number, bool or None) satisfies the operator."""


class RuleError(ValueError):
    """A rule of a key's array is malformed; the caller names the key it sits under."""


def _never(value: Any) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Matcher:
    """One compiled rule of a key's array: its kind, normalized operand and test."""

    kind: str
    operand: Any
    ignore_case: bool = False
    predicate: Predicate = field(default=_never, repr=False, compare=False)

    def test(self, value: Any) -> bool:
        """Whether one leaf value satisfies this rule."""
        return self.predicate(value)


def value_key(value: Any) -> tuple[str, Any] | None:
    """The dict key where an exact rule and an equal leaf value meet; None for a non-leaf.

    Numbers share one key space, so 5 and 5.0 meet; booleans get their own, so True is not 1.
    """
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, bool):
        return ("boolean", value)
    if value is None:
        return ("null", None)
    if isinstance(value, int | float):
        return ("number", value)
    return None


def is_number(value: Any) -> bool:
    """Whether a decoded JSON value is a number (booleans are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def compile_rules(rules: list[Any], dialect: str) -> tuple[tuple[Matcher, ...], tuple[bool, ...]]:
    """Compile a key's array: its matchers (ORed), and its `exists` operands in order."""
    if not rules:
        raise RuleError("the array of rules must not be empty")
    compiled = [compile_rule(rule, dialect) for rule in rules]
    matchers = tuple(matcher for matcher in compiled if matcher.kind != EXISTS)
    return matchers, tuple(matcher.operand for matcher in compiled if matcher.kind == EXISTS)


def compile_rule(rule: Any, dialect: str) -> Matcher:
    """Compile one element of a key's array: a bare value, or an object with one operator."""
    if isinstance(rule, dict):
        return _operator(rule, dialect)
    return _exact(rule, dialect)


def _exact(value: Any, dialect: str) -> Matcher:
    """A bare string, number, boolean or null: equal leaf values match (5 equals 5.0)."""
    if is_number(value):
        number = _rule_number(value, dialect) if dialect == SNS else value
        return Matcher(EXACT, value_key(number), predicate=lambda c: is_number(c) and c == number)
    if isinstance(value, str):
        return Matcher(
            EXACT, value_key(value), predicate=lambda c: isinstance(c, str) and c == value
        )
    if isinstance(value, bool):
        return Matcher(EXACT, value_key(value), predicate=lambda c: c is value)
    if value is None:
        return Matcher(EXACT, value_key(None), predicate=lambda c: c is None)
    raise RuleError(
        f"a rule must be a string, number, boolean, null or operator, got {describe(value)}"
    )


def _affix(kind: str, operand: Any, *, ignore_case: bool) -> Matcher:
    """A `prefix` or `suffix` rule on strings, optionally ignoring case."""
    needle = _string(kind, operand).lower() if ignore_case else _string(kind, operand)
    tests: dict[tuple[str, bool], Predicate] = {
        (PREFIX, False): lambda c: isinstance(c, str) and c.startswith(needle),
        (PREFIX, True): lambda c: isinstance(c, str) and c.lower().startswith(needle),
        (SUFFIX, False): lambda c: isinstance(c, str) and c.endswith(needle),
        (SUFFIX, True): lambda c: isinstance(c, str) and c.lower().endswith(needle),
    }
    return Matcher(kind, needle, ignore_case, tests[kind, ignore_case])


def _equals_ignore_case(operand: Any) -> Matcher:
    """An `equals-ignore-case` rule: strings equal once both are lowered."""
    needle = _string(EQUALS_IGNORE_CASE, operand).lower()
    return Matcher(
        EQUALS_IGNORE_CASE, needle, True, lambda c: isinstance(c, str) and c.lower() == needle
    )


def _wildcard(operand: Any) -> Matcher:
    """A `wildcard` rule: `*` stands for any run of characters; `\\*` and `\\\\` escape."""
    text = _string(WILDCARD, operand)
    pattern = re.compile(_wildcard_regex(text), re.DOTALL)
    return Matcher(
        WILDCARD, text, predicate=lambda c: isinstance(c, str) and pattern.fullmatch(c) is not None
    )


def _wildcard_regex(text: str) -> str:
    parts: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            escaped = text[index + 1 : index + 2]
            if escaped not in ("*", "\\"):
                raise RuleError(
                    f"'wildcard' {text!r}: a backslash may only escape '*' or '\\', "
                    f"got {text[index : index + 2]!r}"
                )
            parts.append(re.escape(escaped))
            index += 2
            continue
        if char == "*":
            if text[index + 1 : index + 2] == "*":
                raise RuleError(f"'wildcard' {text!r}: consecutive '*' characters are not allowed")
            parts.append(".*")
        else:
            parts.append(re.escape(char))
        index += 1
    return "".join(parts)


def _operator(rule: Mapping[str, Any], dialect: str) -> Matcher:
    if len(rule) != 1:
        raise RuleError(f"an operator object holds exactly one operator, got {sorted(rule)}")
    ((name, operand),) = rule.items()
    if name in (PREFIX, SUFFIX):
        return _affix_rule(name, operand, dialect)
    if name == EQUALS_IGNORE_CASE:
        return _equals_ignore_case(operand)
    if name == ANYTHING_BUT:
        return _anything_but(operand, dialect)
    if name == NUMERIC:
        return _numeric(operand, dialect)
    if name == EXISTS:
        if not isinstance(operand, bool):
            raise RuleError(f"'exists' takes true or false, got {operand!r}")
        return Matcher(EXISTS, operand, predicate=lambda c: operand)
    if name == CIDR:
        return _cidr(operand)
    if name == WILDCARD and dialect == EVENT_PATTERN:
        return _wildcard(operand)
    raise RuleError(f"unrecognized operator {name!r}")


def _affix_rule(kind: str, operand: Any, dialect: str) -> Matcher:
    if isinstance(operand, dict) and dialect == EVENT_PATTERN:
        if list(operand) != [EQUALS_IGNORE_CASE]:
            raise RuleError(f"{kind!r} accepts a string or {{'equals-ignore-case': string}}")
        return _affix(kind, operand[EQUALS_IGNORE_CASE], ignore_case=True)
    return _affix(kind, operand, ignore_case=False)


def _anything_but(operand: Any, dialect: str) -> Matcher:
    if isinstance(operand, dict):
        inner = _anything_but_object(operand, dialect)
        return Matcher(
            ANYTHING_BUT,
            inner,
            predicate=lambda c: isinstance(c, str) and not any(m.test(c) for m in inner),
        )
    values = operand if isinstance(operand, list) else [operand]
    if not values:
        raise RuleError("'anything-but' needs at least one value")
    for value in values:
        if not isinstance(value, str) and not is_number(value):
            raise RuleError(f"'anything-but' values must be strings or numbers, got {value!r}")
    if dialect == EVENT_PATTERN:
        if len({isinstance(value, str) for value in values}) > 1:
            raise RuleError("'anything-but' takes all strings or all numbers, not both")
        values = [v if isinstance(v, str) else _rule_number(v, dialect) for v in values]
    excluded = tuple(_exact(value, dialect) for value in values)
    keys = frozenset(matcher.operand for matcher in excluded)
    return Matcher(ANYTHING_BUT, excluded, predicate=lambda c: value_key(c) not in keys)


def _anything_but_object(operand: Mapping[str, Any], dialect: str) -> tuple[Matcher, ...]:
    """The rules an `anything-but` object excludes (one operator, maybe a list for some)."""
    allowed = (PREFIX,) if dialect == SNS else (PREFIX, SUFFIX, EQUALS_IGNORE_CASE, WILDCARD)
    if len(operand) != 1 or next(iter(operand)) not in allowed:
        names = " or ".join(repr(name) for name in allowed)
        raise RuleError(f"'anything-but' accepts an object with only {names}")
    ((name, value),) = operand.items()
    if isinstance(value, list) and name in (EQUALS_IGNORE_CASE, WILDCARD):
        if not value:
            raise RuleError(f"'anything-but' {name!r} needs at least one value")
        return tuple(_excluded(name, item, dialect) for item in value)
    return (_excluded(name, value, dialect),)


def _excluded(name: str, value: Any, dialect: str) -> Matcher:
    if name == EQUALS_IGNORE_CASE:
        return _equals_ignore_case(value)
    if name == WILDCARD:
        return _wildcard(value)
    if dialect == EVENT_PATTERN and value == "":
        raise RuleError(f"'anything-but' {name!r} must not be empty")
    return _affix(name, value, ignore_case=False)


def _numeric(operand: Any, dialect: str) -> Matcher:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise RuleError("'numeric' takes [op, number] or [op, number, op, number]")
    pairs: list[tuple[str, float]] = []
    for operator, value in zip(operand[::2], operand[1::2], strict=True):
        if operator not in ("=", *_LOWER_BOUNDS, *_UPPER_BOUNDS):
            raise RuleError(f"unrecognized numeric operator {operator!r}")
        if not is_number(value):
            raise RuleError(f"numeric operator {operator!r} needs a number, got {value!r}")
        pairs.append((operator, _rule_number(value, dialect)))
    if len(pairs) == 2:
        _check_range(pairs)
    tests = [_compare(operator, bound) for operator, bound in pairs]
    limit = EVENT_NUMBER_LIMIT if dialect == EVENT_PATTERN else math.inf
    return Matcher(
        NUMERIC,
        tuple(pairs),
        predicate=lambda c: is_number(c) and -limit <= c <= limit and all(t(c) for t in tests),
    )


def _check_range(pairs: list[tuple[str, float]]) -> None:
    (first, lower), (second, upper) = pairs
    if "=" in (first, second):
        raise RuleError("numeric '=' cannot be combined with another operator")
    if first not in _LOWER_BOUNDS or second not in _UPPER_BOUNDS:
        raise RuleError(
            "a numeric range gives its lower bound ('>' or '>=') first, then its upper "
            f"bound ('<' or '<='); got {first!r} then {second!r}"
        )
    if lower >= upper:
        raise RuleError(f"numeric range is empty: lower bound {lower} >= upper bound {upper}")


def _compare(operator: str, bound: float) -> Predicate:
    return {
        "=": lambda c: c == bound,
        ">": lambda c: c > bound,
        ">=": lambda c: c >= bound,
        "<": lambda c: c < bound,
        "<=": lambda c: c <= bound,
    }[operator]


def _cidr(operand: Any) -> Matcher:
    if not isinstance(operand, str) or operand.count("/") != 1:
        raise RuleError(f"'cidr' needs a network with one '/' and a prefix length, got {operand!r}")
    try:
        network = ipaddress.ip_network(operand, strict=False)
    except (TypeError, ValueError) as exc:
        raise RuleError(f"'cidr' needs an IPv4 or IPv6 network, got {operand!r}") from exc

    def contains(candidate: Any) -> bool:
        if not isinstance(candidate, str):
            return False
        try:
            return ipaddress.ip_address(candidate) in network
        except ValueError:
            return False

    return Matcher(CIDR, network, predicate=contains)


def _rule_number(value: Any, dialect: str) -> float:
    """A number written in a rule, within the dialect's range (and precision, for patterns)."""
    number = float(value)
    limit = SNS_NUMBER_LIMIT if dialect == SNS else EVENT_NUMBER_LIMIT
    if not math.isfinite(number) or abs(number) > limit:
        label = _LIMIT_LABELS[dialect]
        raise RuleError(f"number {value!r} is outside {label}, the range for filtering")
    if dialect == EVENT_PATTERN:
        exponent = Decimal(repr(value)).normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < -EVENT_NUMBER_DECIMALS:
            raise RuleError(
                f"number {value!r} has more than {EVENT_NUMBER_DECIMALS} decimal places"
            )
    return number


def _string(operator: str, operand: Any) -> str:
    if not isinstance(operand, str):
        raise RuleError(f"{operator!r} takes a string, got {describe(operand)}")
    return operand


def describe(value: Any) -> str:
    """A short name of a decoded JSON value's kind, for error messages."""
    names: dict[type, str] = {dict: "an object", list: "an array", str: "a string"}
    return names.get(type(value), repr(value))
