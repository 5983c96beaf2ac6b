"""What every piece of the ASL data side shares: the state failure it raises and the JSON rules.

`AslError` is not a `FanstackError`: it is the failure of one state (an error name such as
`States.Runtime` and a cause), which the interpreter routes to the state's `Retry` and `Catch`
fields like any task error, and which fails the execution when nothing catches it.

JSON values are Python's (`dict`, `list`, `str`, `int`, `float`, `bool`, `None`); a boolean is
never a number, and two numbers are equal when their values are (`1 == 1.0`).
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

MAX_PAYLOAD_BYTES = 262_144  # 256 KiB: a state's input, output, or a task's result
_CAUSE_EXCERPT = 256


class AslError(Exception):
    """A state failed: `error` is its States error name (`States.Runtime`...), `cause` says why."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


def to_json_text(value: Any) -> str:
    """Minified JSON, non-ASCII kept, as Step Functions writes data (`States.JsonToString`)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_size(value: Any) -> int:
    """The size in bytes of `value` as UTF-8 JSON text."""
    return len(to_json_text(value).encode("utf-8"))


def check_size(value: Any, where: str) -> None:
    """Raise States.DataLimitExceeded if `value` is over 256 KiB of JSON."""
    size = json_size(value)
    if size > MAX_PAYLOAD_BYTES:
        raise AslError(
            "States.DataLimitExceeded",
            f"The data of {where} is {size} bytes of JSON; "
            f"the limit is {MAX_PAYLOAD_BYTES} bytes (256 KiB)",
        )


def excerpt(value: Any) -> str:
    """`value` as JSON text cut to a readable length, for error causes."""
    try:
        text = to_json_text(value)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) <= _CAUSE_EXCERPT:
        return text
    return text[:_CAUSE_EXCERPT] + "..."


def is_number(value: Any) -> bool:
    """Whether `value` is a JSON number (a bool is not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_key(value: Any) -> Any:
    """A hashable key equal for equal JSON values (true != 1, 1 == 1.0, key order ignored)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if is_number(value):
        return ("number", value)
    if isinstance(value, list):
        return ("array", tuple(json_key(item) for item in value))
    if isinstance(value, dict):
        return ("object", frozenset((key, json_key(item)) for key, item in value.items()))
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def round_half_up(value: float) -> int:
    """The nearest integer, halves away from zero for positives and towards it for negatives.

    That is Java's `Math.round`, which Step Functions uses where its docs say "rounds it off to
    the nearest integer" (MathAdd with 2.5 gives 3, with -2.5 gives -2; LocalStack recorded it).
    """
    rounding = ROUND_HALF_UP if value >= 0 else ROUND_HALF_DOWN
    return int(Decimal(value).to_integral_value(rounding=rounding))
