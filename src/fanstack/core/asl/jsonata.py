"""JSONata data processing of JSONata states (`QueryLanguage: "JSONata"`), pure.

A field value written `{% expression %}` (the braces first and last, no blanks outside) is a
JSONata expression; objects and arrays are walked and each such string evaluated; any other
value is used as it is. Expressions are compiled once, with jsonata-python, and cached.

What an expression sees, from the AWS developer guide ("Transforming data with JSONata in Step
Functions"): `$states` (`input`, `result`, `errorOutput`, `context`), each workflow variable as
`$name`, and no input document (so `$` and bare field names select nothing). AWS adds
`$partition`, `$range`, `$hash`, `$random` (optional seed), `$uuid` and `$parse`, and removes
`$eval`; an expression that yields nothing, or fails, is `States.QueryEvaluationError`.
`$now()`/`$millis()` give the state's entry time (`$states.context.State.EnteredTime`), never a
clock, and `$random`/`$uuid` draw from the `rng` given, so an evaluation can be replayed.
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

import jsonata as jsonata_lib  # type: ignore[import-untyped]
from jsonata import functions, jexception, parser, utils

from fanstack.core.asl import intrinsics
from fanstack.core.asl.data import AslError, is_number, round_half_up

_OPEN, _CLOSE = "{%", "%}"
_ERROR = "States.QueryEvaluationError"
_REMOVED = frozenset({"eval"})


class _FunctionError(Exception):
    """An AWS-added function was called with arguments it refuses."""


def is_expression(value: Any) -> bool:
    """Whether `value` is a JSONata expression string, `{% ... %}`."""
    return (
        isinstance(value, str)
        and len(value) >= 4
        and value.startswith(_OPEN)
        and value.endswith(_CLOSE)
    )


def _inner(text: str) -> str:
    """The expression inside `{% %}` (or `text` itself), blanks trimmed."""
    return (text[2:-2] if is_expression(text) else text).strip()


@lru_cache(maxsize=4096)
def _compile(expression: str) -> jsonata_lib.Jsonata:
    """The compiled expression with AWS's functions bound; ValueError names the problem."""
    if not expression:
        raise ValueError("the expression is empty")
    try:
        compiled = jsonata_lib.Jsonata(expression)
    except jexception.JException as exc:
        raise ValueError(f"{exc.error}: {exc}") from None
    removed = _mentioned_functions(compiled.ast) & _REMOVED
    if removed:
        raise ValueError(f"${min(removed)} is not available in Step Functions")
    compiled.set_output_convert_nulls(False)
    compiled.set_validate_input(False)
    return compiled


def _mentioned_functions(node: Any) -> set[str]:
    """The names of the variables (`$name`) an expression's syntax tree refers to."""
    found: set[str] = set()
    stack, seen = [node], set()
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, parser.Parser.Symbol) and id(item) not in seen:
            seen.add(id(item))
            if item.type == "variable" and isinstance(item.value, str):
                found.add(item.value)
            stack.extend(v for k, v in vars(item).items() if k != "_outer_instance")
    return found


def check_expression(text: str, *, field: str) -> None:
    """Compile a JSONata expression (`{% %}` optional) at declaration; ValueError names `field`."""
    try:
        _compile(_inner(text))
    except ValueError as exc:
        raise ValueError(f"{field}: invalid JSONata expression {text!r}: {exc}") from None


def evaluate(
    value: Any,
    states: Mapping[str, Any],
    variables: Mapping[str, Any],
    *,
    rng: random.Random | None = None,
) -> Any:
    """Evaluate a JSONata field value: each `{% %}` string in it, walking objects and arrays."""
    if isinstance(value, list):
        return [evaluate(item, states, variables, rng=rng) for item in value]
    if isinstance(value, Mapping):
        return {key: evaluate(item, states, variables, rng=rng) for key, item in value.items()}
    if not is_expression(value):
        return value
    return _evaluate_expression(_inner(value), states, variables, rng)


def _evaluate_expression(
    expression: str, states: Mapping[str, Any], variables: Mapping[str, Any],
    rng: random.Random | None,
) -> Any:
    """The JSON value of one expression, or States.QueryEvaluationError."""
    what = f"The JSONata expression {expression!r}"
    try:
        compiled = _compile(expression)
    except ValueError as exc:
        raise AslError(_ERROR, f"{what} is invalid: {exc}") from exc
    values = {name: utils.Utils.NULL_VALUE if v is None else v for name, v in variables.items()}
    bindings = {**_aws_functions(states, rng), **values, "states": states}
    instance = copy.copy(compiled)  # the library keeps per-evaluation state on the instance
    jsonata_lib.Jsonata.CURRENT.jsonata = instance
    try:
        raw = instance.evaluate(None, bindings)
    except (jexception.JException, _FunctionError) as exc:
        code = f"{exc.error}: " if isinstance(exc, jexception.JException) else ""
        raise AslError(_ERROR, f"{what} failed: {code}{exc}") from exc
    except Exception as exc:  # the library raises plain Python errors for some bad values
        raise AslError(_ERROR, f"{what} failed: {exc}") from exc
    if raw is None:
        raise AslError(_ERROR, f"{what} returned nothing (undefined)")
    try:
        return _to_json(utils.Utils.convert_nulls(raw))
    except ValueError as exc:
        raise AslError(_ERROR, f"{what} returned {exc}") from exc


def _to_json(value: Any) -> Any:
    """A fresh plain JSON value from a JSONata result; ValueError for what JSON cannot hold."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a number JSON cannot hold ({value})")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _to_json(item) for key, item in value.items()}
    raise ValueError(f"a {type(value).__name__} (a function?), which JSON cannot hold")


def _aws_functions(states: Mapping[str, Any], rng: random.Random | None) -> dict[str, Any]:
    """The functions Step Functions adds to (or changes in) JSONata, as bindings."""
    lambdas: dict[str, Callable[..., Any]] = {
        "partition": lambda array=None, size=None: intrinsics.partition(
            _array(array), _whole(size, "chunk size")
        ),
        "range": lambda start=None, end=None, step=None: intrinsics.integer_range(
            _whole(start, "start"), _whole(end, "end"), _whole(step, "step")
        ),
        "hash": lambda text=None, algorithm=None: intrinsics.digest(
            _text(text, "value"), _text(algorithm, "algorithm")
        ),
        "random": lambda seed=None: _random(seed, rng),
        "uuid": lambda: intrinsics.new_uuid(rng),
        "parse": lambda text=None: _parse(_text(text, "JSON text")),
        "now": lambda picture=None, timezone=None: _now(states, picture, timezone),
        "millis": lambda: _entered_millis(states),
        "eval": _removed,
    }
    return {name: jsonata_lib.Jsonata.JLambda(_guarded(name, f)) for name, f in lambdas.items()}


def _guarded(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` with bad arguments reported as a `_FunctionError` naming `$name`."""

    def call(*args: Any) -> Any:
        try:
            result = function(*(utils.Utils.convert_nulls(arg) for arg in args))
        except (ValueError, TypeError) as exc:
            raise _FunctionError(f"${name}: {exc}") from exc
        return utils.Utils.NULL_VALUE if result is None else result  # null, not undefined

    return call


def _array(value: Any) -> list[Any]:
    if value is None:
        raise ValueError("the array is missing")
    return _to_json(value) if isinstance(value, list | tuple) else [_to_json(value)]


def _whole(value: Any, what: str) -> int:
    if not is_number(value):
        raise ValueError(f"the {what} must be a number, got {value!r}")
    return round_half_up(value)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"the {what} must be a string, got {value!r}")
    return value


def _random(seed: Any, rng: random.Random | None) -> float:
    """A number in [0, 1): from `seed` when given, else from `rng`."""
    if seed is not None:
        return random.Random(_whole(seed, "seed")).random()
    return (rng or random.Random()).random()


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a JSON text: {exc}") from exc


def _removed(*_: Any) -> Any:
    raise ValueError("this function is not available in Step Functions")


def _entered_millis(states: Mapping[str, Any]) -> int:
    """The state's entry time, `$states.context.State.EnteredTime`, in epoch milliseconds."""
    context = states.get("context")
    state = context.get("State") if isinstance(context, Mapping) else None
    entered = state.get("EnteredTime") if isinstance(state, Mapping) else None
    if not isinstance(entered, str):
        raise ValueError("$states.context.State.EnteredTime is not set: there is no time")
    return round(datetime.fromisoformat(entered.replace("Z", "+00:00")).timestamp() * 1000)


def _now(states: Mapping[str, Any], picture: Any, timezone: Any) -> Any:
    """`$now()`: the entry time as ISO 8601 (or per `picture`/`timezone`, as JSONata does)."""
    return functions.Functions.datetime_from_millis(_entered_millis(states), picture, timezone)
