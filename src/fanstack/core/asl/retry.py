"""Retry and Catch: parsing retriers and catchers, matching error names, computing retry delays.

When a state fails, its retriers are scanned in order and the first whose `ErrorEquals` names
the error decides alone: it retries after `IntervalSeconds x BackoffRate^n` (capped at
`MaxDelaySeconds`, randomised in `[0, delay]` with `JitterStrategy: FULL`) until it has made
`MaxAttempts` retries, each retrier counting its own. Then the first matching catcher, if any,
moves on to its `Next` with the error output `{"Error": ..., "Cause": ...}` placed at its
`ResultPath` (JSONata: its `Output`). Parsing raises `ValueError` naming the field; the caller
adds the state's name.

Error names as AWS matches them: `States.ALL` matches every error but `States.Runtime` and
`States.DataLimitExceeded`; `States.TaskFailed` also matches every error a task reports itself
(a name outside the `States.` namespace); `States.Runtime` is never retried nor caught.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fanstack.core.asl.data import is_number

ALL = "States.ALL"
TASK_FAILED = "States.TaskFailed"
RUNTIME = "States.Runtime"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"

# Every error name in the reserved `States.` namespace; users may name no other.
PREDEFINED_ERRORS = frozenset({
    ALL,
    "States.BranchFailed",
    DATA_LIMIT_EXCEEDED,
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.Http.Socket",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.QueryEvaluationError",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    RUNTIME,
    TASK_FAILED,
    "States.Timeout",
})

DEFAULT_INTERVAL_SECONDS = 1
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF_RATE = 2.0
MAX_SECONDS = 99_999_999  # IntervalSeconds and MaxAttempts
MAX_DELAY_SECONDS = 31_622_401  # MaxDelaySeconds: a year and a second
JITTER_STRATEGIES = ("FULL", "NONE")

RETRIER_FIELDS = frozenset({
    "ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds",
    "JitterStrategy", "Comment",
})
CATCHER_FIELDS = {
    "JSONPath": frozenset({"ErrorEquals", "Next", "ResultPath", "Assign", "Comment"}),
    "JSONata": frozenset({"ErrorEquals", "Next", "Output", "Assign", "Comment"}),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrier:
    """One element of a state's `Retry`."""

    error_equals: tuple[str, ...]
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_rate: float = DEFAULT_BACKOFF_RATE
    max_delay_seconds: int | None = None
    jitter_strategy: str = "NONE"


@dataclass(frozen=True, slots=True, kw_only=True)
class Catcher:
    """One element of a state's `Catch`; `Assign` and `Output` are checked by the definition."""

    error_equals: tuple[str, ...]
    next: str
    result_path: str | None = "$"
    assign: Mapping[str, Any] | None = None
    output: Any = None
    has_output: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Retry with `retrier` after `delay_seconds`; `attempt` counts this retry in."""

    retrier: int
    attempt: int
    delay_seconds: float


# -- parsing -------------------------------------------------------------------------------


def parse_retry(raw: Any, *, field: str = "Retry") -> tuple[Retrier, ...]:
    """The retriers of a `Retry` field."""
    elements = _elements(raw, field)
    retriers = tuple(_parse_retrier(e, f"{field}[{i}]") for i, e in enumerate(elements))
    _check_all_last([r.error_equals for r in retriers], field)
    return retriers


def parse_catch(raw: Any, *, language: str, field: str = "Catch") -> tuple[Catcher, ...]:
    """The catchers of a `Catch` field (`ResultPath` is checked by the caller)."""
    elements = _elements(raw, field)
    catchers = tuple(
        _parse_catcher(e, f"{field}[{i}]", language) for i, e in enumerate(elements)
    )
    _check_all_last([c.error_equals for c in catchers], field)
    return catchers


def _elements(raw: Any, field: str) -> list[Mapping[str, Any]]:
    if not isinstance(raw, list):
        raise ValueError(f"field {field!r} must be an array")
    for index, element in enumerate(raw):
        if not isinstance(element, dict):
            raise ValueError(f"field '{field}[{index}]' must be an object")
    return raw


def _parse_retrier(raw: Mapping[str, Any], where: str) -> Retrier:
    _check_fields(raw, RETRIER_FIELDS, where)
    jitter = raw.get("JitterStrategy", "NONE")
    if jitter not in JITTER_STRATEGIES:
        raise ValueError(f"field '{where}.JitterStrategy' must be FULL or NONE, not {jitter!r}")
    rate = raw.get("BackoffRate", DEFAULT_BACKOFF_RATE)
    if not is_number(rate) or rate < 1.0:
        raise ValueError(f"field '{where}.BackoffRate' must be a number >= 1.0, not {rate!r}")
    max_delay = raw.get("MaxDelaySeconds")
    if max_delay is not None:
        _check_int(max_delay, f"{where}.MaxDelaySeconds", 1, MAX_DELAY_SECONDS)
    return Retrier(
        error_equals=_error_equals(raw, where),
        interval_seconds=_check_int(
            raw.get("IntervalSeconds", DEFAULT_INTERVAL_SECONDS), f"{where}.IntervalSeconds",
            1, MAX_SECONDS,
        ),
        max_attempts=_check_int(
            raw.get("MaxAttempts", DEFAULT_MAX_ATTEMPTS), f"{where}.MaxAttempts", 0, MAX_SECONDS
        ),
        backoff_rate=float(rate),
        max_delay_seconds=max_delay,
        jitter_strategy=jitter,
    )


def _parse_catcher(raw: Mapping[str, Any], where: str, language: str) -> Catcher:
    _check_fields(raw, CATCHER_FIELDS[language], where)
    target = raw.get("Next")
    if not isinstance(target, str) or not target:
        raise ValueError(f"field '{where}.Next' must name a state")
    assign = raw.get("Assign")
    if assign is not None and not isinstance(assign, dict):
        raise ValueError(f"field '{where}.Assign' must be an object")
    result_path = raw.get("ResultPath", "$")
    if result_path is not None and not isinstance(result_path, str):
        raise ValueError(f"field '{where}.ResultPath' must be a string or null")
    return Catcher(
        error_equals=_error_equals(raw, where),
        next=target,
        result_path=result_path,
        assign=assign,
        output=raw.get("Output"),
        has_output="Output" in raw,
        raw=raw,
    )


def _check_fields(raw: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for name in raw:
        if name not in allowed:
            raise ValueError(f"field '{where}.{name}' is not allowed here")


def _error_equals(raw: Mapping[str, Any], where: str) -> tuple[str, ...]:
    names = raw.get("ErrorEquals")
    if not isinstance(names, list) or not names:
        raise ValueError(f"field '{where}.ErrorEquals' must be a non-empty array of error names")
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f"field '{where}.ErrorEquals[{index}]' must be a non-empty string")
        if name.startswith("States.") and name not in PREDEFINED_ERRORS:
            raise ValueError(
                f"field '{where}.ErrorEquals[{index}]' names {name!r}: error names starting "
                "with 'States.' are reserved for the predefined errors"
            )
    if ALL in names and len(names) > 1:
        raise ValueError(f"field '{where}.ErrorEquals' must hold {ALL} alone")
    return tuple(names)


def _check_all_last(error_lists: Sequence[tuple[str, ...]], field: str) -> None:
    for index, names in enumerate(error_lists[:-1]):
        if ALL in names:
            raise ValueError(f"field '{field}[{index}].ErrorEquals': {ALL} must be in the last one")


def _check_int(value: Any, where: str, low: int, high: int) -> int:
    if not _is_integer(value) or not low <= value <= high:
        raise ValueError(f"field {where!r} must be an integer from {low} to {high}, not {value!r}")
    return int(value)


def _is_integer(value: Any) -> bool:
    return is_number(value) and float(value).is_integer()


# -- matching and delays -------------------------------------------------------------------


def matches(error_equals: Sequence[str], error: str) -> bool:
    """Whether an `ErrorEquals` list names `error`, with AWS's wildcards."""
    if error == RUNTIME:
        return False
    for name in error_equals:
        if name == error:
            return True
        if name == ALL and error != DATA_LIMIT_EXCEEDED:
            return True
        if name == TASK_FAILED and not error.startswith("States."):
            return True
    return False


def backoff(retrier: Retrier, retries_done: int, rng: random.Random) -> float:
    """The wait before a retrier's next retry, when it has made `retries_done` already."""
    delay = retrier.interval_seconds * retrier.backoff_rate**retries_done
    if retrier.max_delay_seconds is not None:
        delay = min(delay, retrier.max_delay_seconds)
    if retrier.jitter_strategy == "FULL":
        delay = rng.uniform(0, delay)
    return float(delay)


def next_retry(
    retriers: Sequence[Retrier], error: str, counts: Mapping[int, int], rng: random.Random
) -> RetryDecision | None:
    """Retry or not: the first retrier matching decides, by its own count of retries made."""
    for index, retrier in enumerate(retriers):
        if not matches(retrier.error_equals, error):
            continue
        done = counts.get(index, 0)
        if done >= retrier.max_attempts:
            return None
        return RetryDecision(index, done + 1, backoff(retrier, done, rng))
    return None


def find_catcher(catchers: Sequence[Catcher], error: str) -> Catcher | None:
    """The first catcher whose `ErrorEquals` names the error, if any."""
    return next((c for c in catchers if matches(c.error_equals, error)), None)


def error_output(error: str, cause: str) -> dict[str, str]:
    """What a catcher passes on: the error's name and cause."""
    return {"Error": error, "Cause": cause}
