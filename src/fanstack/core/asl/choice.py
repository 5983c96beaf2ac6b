"""Choice rules: their shapes checked at declaration, and their evaluation.

A JSONPath rule is a comparison (`Variable` plus one operator), or `And`/`Or` over rules, or
`Not` over one; a top-level rule also names its `Next`. Comparisons between mismatched types are
false, never errors; a `Variable` (or `...Path` operand) that selects nothing fails the state with
`States.Runtime`, which is why `IsPresent` exists. A JSONata rule is a `Condition` expression that
must yield a boolean.

`StringMatches` treats `*` as any run of characters (none included) and nothing else as special;
`\\*` matches a literal `*` and `\\\\` a literal backslash. Timestamps are RFC 3339 with an
uppercase `T` and `Z` (or a numeric offset), compared as instants.

Workflow variables are read in JSONPath as `$name` (`$name.field`...); `check_path` and
`read_path` at the end add them to what `paths` reads (the data, and `$$` the context object).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from fanstack.core.asl import jsonata, paths
from fanstack.core.asl.data import AslError, is_number

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "GreaterThan": operator.gt,
    "LessThanEquals": operator.le,
    "GreaterThanEquals": operator.ge,
}
_KINDS = ("String", "Numeric", "Boolean", "Timestamp")
COMPARISONS = frozenset(
    f"{kind}{name}{suffix}"
    for kind in _KINDS
    for name in _ORDER
    if kind != "Boolean" or name == "Equals"
    for suffix in ("", "Path")
) | {"StringMatches"}
TYPE_TESTS = frozenset({"IsPresent", "IsNull", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"})
COMBINATORS = frozenset({"And", "Or", "Not"})
OPERATORS = COMPARISONS | TYPE_TESTS | COMBINATORS
_RULE_EXTRAS = {"JSONPath": {"Next", "Comment", "Assign"}, "JSONata": {"Next", "Comment", "Assign",
                                                                         "Output", "Condition"}}

_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})"
)

_VARIABLE_PATH = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)(.*)", re.DOTALL)

Lookup = Callable[[str], Any]  # a path -> the value it selects; raises AslError if none


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A Choice rule: `operator` with its `operand` (nested rules for `And`/`Or`/`Not`)."""

    operator: str
    operand: Any
    variable: str | None = None
    next: str | None = None
    assign: Mapping[str, Any] | None = None
    output: Any = None
    has_output: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)


# -- parsing -------------------------------------------------------------------------------


def parse_rule(raw: Any, *, where: str, language: str, top: bool = True) -> Rule:
    """One Choice rule (`top`: an element of `Choices`, which needs a `Next`)."""
    if not isinstance(raw, dict):
        raise ValueError(f"field {where!r} must be an object")
    extras = _RULE_EXTRAS[language] if top else {"Comment"}
    if top and not (isinstance(raw.get("Next"), str) and raw["Next"]):
        raise ValueError(f"field '{where}.Next' must name a state")
    if language == "JSONata":
        return _parse_condition(raw, where, extras)
    names = [name for name in raw if name not in extras and name != "Variable"]
    unknown = [name for name in names if name not in OPERATORS]
    if unknown:
        raise ValueError(f"field '{where}.{unknown[0]}' is not a Choice rule field")
    if len(names) != 1:
        raise ValueError(f"field {where!r} must hold exactly one comparison operator, "
                         f"found {len(names)}")
    name = names[0]
    return Rule(
        operator=name,
        operand=_parse_operand(raw, name, where, language),
        variable=_parse_variable(raw, name, where),
        next=raw.get("Next"),
        assign=_assign(raw, where),
        raw=raw,
    )


def _parse_condition(raw: Mapping[str, Any], where: str, extras: set[str]) -> Rule:
    for name in raw:
        if name not in extras:
            raise ValueError(f"field '{where}.{name}' is not allowed in a JSONata Choice rule")
    condition = raw.get("Condition")
    if isinstance(condition, bool):
        operand: Any = condition
    elif isinstance(condition, str) and jsonata.is_expression(condition):
        jsonata.check_expression(condition, field=f"{where}.Condition")
        operand = condition
    else:
        raise ValueError(f"field '{where}.Condition' must be a JSONata expression or a boolean")
    return Rule(operator="Condition", operand=operand, next=raw.get("Next"),
                assign=_assign(raw, where), output=raw.get("Output"),
                has_output="Output" in raw, raw=raw)


def _assign(raw: Mapping[str, Any], where: str) -> Mapping[str, Any] | None:
    assign = raw.get("Assign")
    if assign is not None and not isinstance(assign, dict):
        raise ValueError(f"field '{where}.Assign' must be an object")
    return assign


def _parse_variable(raw: Mapping[str, Any], name: str, where: str) -> str | None:
    variable = raw.get("Variable")
    if name in COMBINATORS:
        if variable is not None:
            raise ValueError(f"field '{where}.Variable' is not allowed with {name}")
        return None
    if not isinstance(variable, str):
        raise ValueError(f"field '{where}.Variable' must be a path")
    check_path(variable, field=f"{where}.Variable", reference=True)
    return variable


def _parse_operand(raw: Mapping[str, Any], name: str, where: str, language: str) -> Any:
    value, here = raw[name], f"{where}.{name}"
    if name in ("And", "Or"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"field {here!r} must be a non-empty array of rules")
        return tuple(parse_rule(r, where=f"{here}[{i}]", language=language, top=False)
                     for i, r in enumerate(value))
    if name == "Not":
        return parse_rule(value, where=here, language=language, top=False)
    if name in TYPE_TESTS:
        if not isinstance(value, bool):
            raise ValueError(f"field {here!r} must be a boolean")
    elif name.endswith("Path"):
        if not isinstance(value, str):
            raise ValueError(f"field {here!r} must be a path")
        check_path(value, field=here, reference=True)
    else:
        _check_literal(name, value, here)
    return value


def _check_literal(name: str, value: Any, here: str) -> None:
    if name.startswith("Numeric"):
        ok, what = is_number(value), "a number"
    elif name.startswith("Boolean"):
        ok, what = isinstance(value, bool), "a boolean"
    elif name.startswith("Timestamp"):
        ok, what = isinstance(value, str) and parse_timestamp(value) is not None, "a timestamp"
    else:
        ok, what = isinstance(value, str), "a string"
    if not ok:
        raise ValueError(f"field {here!r} must be {what}, not {value!r}")
    if name == "StringMatches":
        _pattern(value, here)


# -- evaluation ----------------------------------------------------------------------------


def holds(rule: Rule, lookup: Lookup) -> bool:
    """Whether a JSONPath rule holds; `lookup` reads paths (input, `$$` context, variables)."""
    name = rule.operator
    if name == "And":
        return all(holds(r, lookup) for r in rule.operand)
    if name == "Or":
        return any(holds(r, lookup) for r in rule.operand)
    if name == "Not":
        return not holds(rule.operand, lookup)
    assert rule.variable is not None
    if name == "IsPresent":
        return _is_present(rule.variable, lookup) is rule.operand
    value = lookup(rule.variable)
    if name in TYPE_TESTS:
        return _TYPE_TESTS[name](value) is rule.operand
    operand = lookup(rule.operand) if name.endswith("Path") else rule.operand
    return compare(name.removesuffix("Path"), value, operand)


def condition_holds(
    rule: Rule, states: Mapping[str, Any], variables: Mapping[str, Any], **options: Any
) -> bool:
    """Whether a JSONata rule's `Condition` holds (States.QueryEvaluationError if not boolean)."""
    if isinstance(rule.operand, bool):
        return rule.operand
    result = jsonata.evaluate(rule.operand, states, variables, **options)
    if not isinstance(result, bool):
        raise AslError("States.QueryEvaluationError",
                       f"The Condition {rule.operand!r} returned {result!r}, not a boolean")
    return result


def compare(name: str, value: Any, operand: Any) -> bool:
    """One comparison, e.g. `compare("NumericLessThan", 3, 4.5)`; false across types."""
    if name == "StringMatches":
        return isinstance(value, str) and isinstance(operand, str) and (
            _pattern(operand, "StringMatches").fullmatch(value) is not None)
    kind = next(k for k in _KINDS if name.startswith(k))
    test = _ORDER[name.removeprefix(kind)]
    if kind == "String":
        return isinstance(value, str) and isinstance(operand, str) and test(value, operand)
    if kind == "Numeric":
        return is_number(value) and is_number(operand) and test(value, operand)
    if kind == "Boolean":
        return isinstance(value, bool) and isinstance(operand, bool) and test(value, operand)
    left, right = _instant(value), _instant(operand)
    return left is not None and right is not None and test(left, right)


def _is_present(path: str, lookup: Lookup) -> bool:
    try:
        lookup(path)
    except AslError:
        return False
    return True


def _instant(value: Any) -> datetime | None:
    return parse_timestamp(value) if isinstance(value, str) else None


_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsNumeric": is_number,
    "IsString": lambda v: isinstance(v, str),
    "IsBoolean": lambda v: isinstance(v, bool),
    "IsTimestamp": lambda v: _instant(v) is not None,
}


def parse_timestamp(text: str) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime, or None if `text` is not one."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    day, clock, fraction, zone = match.groups()
    micros = (fraction or "").ljust(6, "0")[:6]
    offset = "+00:00" if zone == "Z" else zone
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}.{micros}{offset}")
    except ValueError:
        return None
    return moment.astimezone(UTC)


@lru_cache(maxsize=1024)
def _pattern(text: str, where: str) -> re.Pattern[str]:
    parts: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            parts.append(".*" if char == "*" else re.escape(char))
    if escaped:
        raise ValueError(f"field {where!r} ends with a lone backslash")
    return re.compile("".join(parts), re.DOTALL)


# -- JSONPath paths that may read a workflow variable (`$name`, `$name.field`) --------------
# (`paths` reads the state's data and the context object; variables are the interpreter's.)


def variable_reference(path: str) -> tuple[str, str] | None:
    """`(name, "$<rest>")` when `path` reads the variable `name`, else None."""
    match = _VARIABLE_PATH.fullmatch(path) if not path.startswith("$$") else None
    return (match[1], f"${match[2]}") if match else None


def check_path(text: str, *, field: str, reference: bool = False) -> None:
    """`paths.check_path`, which also accepts a path into a variable."""
    found = variable_reference(text) if isinstance(text, str) else None
    paths.check_path(found[1] if found else text, field=field, reference=reference)


def read_path(
    path: str, document: Any, context: Mapping[str, Any], variables: Mapping[str, Any]
) -> Any:
    """What `path` selects from the data (`$`), the context object (`$$`) or a variable."""
    found = variable_reference(path)
    if found is None:
        return paths.select_with_context(document, context, path)
    name, rest = found
    if name not in variables:
        raise AslError("States.Runtime", f"The variable ${name} of {path!r} is not assigned")
    return paths.select(variables[name], rest)
