"""JSON as RFC 8259 defines it: no NaN or Infinity, no number beyond a double, bounded nesting.

Python's json reads `NaN`, `Infinity` and `-Infinity`, turns `1e999` into inf, and writes all of
them back out as tokens that are not JSON, so a message carrying one is not JSON to any other
reader. Nesting is bounded so that validation, which recurses, never exhausts the stack (a body
nested 1,000 deep used to escape as a RecursionError).
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

MAX_DEPTH = 100  # levels of arrays and objects; far beyond any API body, far below the stack


class InvalidJson(ValueError):
    """Text or a value that is not strict JSON; `pointer` names where (RFC 6901, "" = root)."""

    def __init__(self, pointer: str, reason: str) -> None:
        super().__init__(f"{pointer or 'body'}: {reason}")
        self.pointer = pointer
        self.reason = reason


class _Rejected:
    """Stands in, while parsing, for a token that is not JSON, so its place can be named."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def loads(text: str) -> Any:
    """Parse strict JSON; raise InvalidJson naming the offending field.

    msgspec reads a request body in a fifth of the time: it takes strict JSON only (no NaN,
    no number beyond a double) and gives what Python's json gives for it. Text it refuses,
    and the rare text it refuses where json does not (a lone surrogate escape), is read by
    `_loads_named`, which names the problem or takes the text as before.
    """
    try:
        value = msgspec.json.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return _loads_named(text)
    if text.count("[") + text.count("{") > MAX_DEPTH:
        problem = find_problem(value)
        if problem is not None:
            raise InvalidJson(*problem)
    return value


def _loads_named(text: str) -> Any:
    """`loads` with Python's json, each token that is not JSON named by where it is."""
    rejected: list[_Rejected] = []

    def constant(token: str) -> _Rejected:
        rejected.append(_Rejected(f"{token} is not valid JSON (JSON has no NaN or Infinity)"))
        return rejected[-1]

    def number(literal: str) -> float | _Rejected:
        value = float(literal)
        if math.isfinite(value):
            return value
        rejected.append(_Rejected(f"{literal} is out of range for a JSON number"))
        return rejected[-1]

    try:
        value = json.loads(text, parse_constant=constant, parse_float=number)
    except RecursionError:  # the C decoder's own depth check, far past MAX_DEPTH
        raise InvalidJson("", f"nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:
        raise InvalidJson("", f"not valid JSON: {exc}") from None
    if rejected or text.count("[") + text.count("{") > MAX_DEPTH:
        problem = find_problem(value)
        if problem is not None:
            raise InvalidJson(*problem)
    return value


def check(value: Any) -> None:
    """Raise InvalidJson if `value` would not serialize as strict JSON (NaN, a set, ...)."""
    dumps(value)


_COMPACT = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # made once, not per call


def dumps(value: Any) -> str:
    """`value` as compact JSON text (no spaces, as a message body is stored); InvalidJson if
    it would not be strict JSON."""
    try:
        return _COMPACT.encode(value)
    except (ValueError, TypeError, RecursionError):
        problem = find_problem(value) or ("", "not serializable as JSON")
        raise InvalidJson(*problem) from None


def find_problem(value: Any) -> tuple[str, str] | None:
    """The first place (pointer, reason) where `value` is not strict JSON, or None."""
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    while stack:
        pointer, node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                return "", f"nested more than {MAX_DEPTH} levels deep"
            items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            for key, item in reversed(items):  # reversed: the stack yields document order
                if not isinstance(key, str | int):
                    return pointer, f"object key {key!r} is not a string"
                stack.append((f"{pointer}/{_escape(str(key))}", item, depth + 1))
        elif isinstance(node, _Rejected):
            return pointer, node.reason
        elif isinstance(node, float) and not math.isfinite(node):
            return pointer, f"{node!r} is not a JSON number"
        elif node is not None and not isinstance(node, str | int | float):
            return pointer, f"a {type(node).__name__} is not a JSON value"
    return None


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
