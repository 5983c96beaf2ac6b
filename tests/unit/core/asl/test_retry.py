"""Retry and Catch: retrier/catcher shapes, error-name matching, per-retrier counts, delays."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanstack.core.asl.retry import (
    Catcher,
    Retrier,
    backoff,
    error_output,
    find_catcher,
    matches,
    next_retry,
    parse_catch,
    parse_retry,
)

RNG = random.Random(0)


# https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
# ("Retry behavior": IntervalSeconds 1, MaxAttempts 3, BackoffRate 2.0 by default; MaxAttempts 0
# never retries; BackoffRate >= 1.0; MaxDelaySeconds caps the interval; JitterStrategy FULL|NONE)


def test_retrier_defaults() -> None:
    (retrier,) = parse_retry([{"ErrorEquals": ["States.ALL"]}])
    assert retrier == Retrier(error_equals=("States.ALL",), interval_seconds=1, max_attempts=3,
                              backoff_rate=2.0, max_delay_seconds=None, jitter_strategy="NONE")


def test_delays_grow_by_the_backoff_rate() -> None:
    retrier = Retrier(error_equals=("E",), interval_seconds=3, backoff_rate=1.5)
    assert [backoff(retrier, n, RNG) for n in range(4)] == [3.0, 4.5, 6.75, 10.125]


def test_max_delay_seconds_caps_the_interval() -> None:
    retrier = Retrier(error_equals=("E",), interval_seconds=1, backoff_rate=2.0,
                      max_delay_seconds=5)
    assert [backoff(retrier, n, RNG) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_full_jitter_draws_between_zero_and_the_backoff_from_the_rng_given() -> None:
    retrier = Retrier(error_equals=("E",), interval_seconds=4, jitter_strategy="FULL")
    first = [backoff(retrier, 2, random.Random(42)) for _ in range(3)]
    assert first[0] == first[1] == first[2]  # seeded: replayable
    assert first[0] == random.Random(42).uniform(0, 16)
    draws = [backoff(retrier, 2, random.Random(seed)) for seed in range(200)]
    assert all(0 <= d <= 16 for d in draws) and len(set(draws)) > 100


def test_max_attempts_zero_never_retries() -> None:
    retriers = parse_retry([{"ErrorEquals": ["E"], "MaxAttempts": 0}])
    assert next_retry(retriers, "E", {}, RNG) is None


# The developer guide's example: retriers [ErrorA, ErrorB] (MaxAttempts 2) and [ErrorC]
# (IntervalSeconds 5); errors ErrorA, ErrorB, ErrorC, ErrorB: waits 1 and 2 s, then 5 s, then
# the first retrier is spent, so the Catch takes the fourth error.
EXAMPLE_RETRY = [
    {"ErrorEquals": ["ErrorA", "ErrorB"], "IntervalSeconds": 1, "BackoffRate": 2.0,
     "MaxAttempts": 2},
    {"ErrorEquals": ["ErrorC"], "IntervalSeconds": 5},
]


def test_each_retrier_keeps_its_own_count_and_the_first_match_decides() -> None:
    retriers = parse_retry(EXAMPLE_RETRY)
    counts: dict[int, int] = {}
    waits = []
    for error in ("ErrorA", "ErrorB", "ErrorC"):
        decision = next_retry(retriers, error, counts, RNG)
        assert decision is not None
        counts[decision.retrier] = decision.attempt
        waits.append(decision.delay_seconds)
    assert waits == [1.0, 2.0, 5.0]
    assert counts == {0: 2, 1: 1}
    assert next_retry(retriers, "ErrorB", counts, RNG) is None  # spent: on to Catch


def test_a_spent_retrier_does_not_fall_through_to_a_later_one() -> None:
    retriers = parse_retry([{"ErrorEquals": ["E"], "MaxAttempts": 1},
                            {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}])
    assert next_retry(retriers, "E", {0: 1}, RNG) is None


# Matching: https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
# (States.ALL "cannot catch the States.DataLimitExceeded terminal error or Runtime error types";
# "A States.Runtime error isn't retriable, and will always cause the execution to fail").


@pytest.mark.parametrize(("names", "error", "expected"), [
    (["States.ALL"], "MyError", True),
    (["States.ALL"], "States.Timeout", True),
    (["States.ALL"], "States.DataLimitExceeded", False),
    (["States.ALL"], "States.Runtime", False),
    (["States.DataLimitExceeded"], "States.DataLimitExceeded", True),
    (["States.Runtime"], "States.Runtime", False),
    (["States.TaskFailed"], "Lambda.ServiceException", True),
    (["States.TaskFailed"], "States.TaskFailed", True),
    (["States.TaskFailed"], "States.Timeout", False),
    (["States.TaskFailed"], "States.QueryEvaluationError", False),
    (["ErrorA", "ErrorB"], "ErrorB", True),
    (["ErrorA"], "errora", False),  # names are case-sensitive
])
def test_error_name_matching(names: list[str], error: str, expected: bool) -> None:
    assert matches(names, error) is expected


def test_catchers_are_scanned_in_order() -> None:
    catchers = parse_catch([
        {"ErrorEquals": ["CustomError"], "Next": "A"},
        {"ErrorEquals": ["States.TaskFailed"], "Next": "B"},
        {"ErrorEquals": ["States.ALL"], "Next": "C", "ResultPath": "$.error"},
    ], language="JSONPath")
    assert find_catcher(catchers, "CustomError") == catchers[0]
    assert find_catcher(catchers, "Other") == catchers[1]
    assert find_catcher(catchers, "States.Timeout") == catchers[2]
    assert find_catcher(catchers, "States.Runtime") is None
    assert catchers[2].result_path == "$.error" and catchers[0].result_path == "$"


def test_catcher_result_path_null_is_kept() -> None:
    (catcher,) = parse_catch([{"ErrorEquals": ["E"], "Next": "A", "ResultPath": None}],
                             language="JSONPath")
    assert catcher.result_path is None


def test_jsonata_catcher_keeps_output_and_assign() -> None:
    (catcher,) = parse_catch([{"ErrorEquals": ["E"], "Next": "A", "Output": "{% 1 %}",
                               "Assign": {"x": 1}}], language="JSONata")
    assert isinstance(catcher, Catcher)
    assert catcher.has_output and catcher.output == "{% 1 %}" and catcher.assign == {"x": 1}


def test_error_output_shape() -> None:
    assert error_output("E", "why") == {"Error": "E", "Cause": "why"}


# -- shapes rejected at declaration --------------------------------------------------------


@pytest.mark.parametrize(("retry", "message"), [
    ({"ErrorEquals": ["E"]}, "field 'Retry' must be an array"),
    ([{}], "field 'Retry[0].ErrorEquals' must be a non-empty array"),
    ([{"ErrorEquals": []}], "field 'Retry[0].ErrorEquals' must be a non-empty array"),
    ([{"ErrorEquals": ["E"], "MaxAttempts": -1}], "field 'Retry[0].MaxAttempts' must be"),
    ([{"ErrorEquals": ["E"], "MaxAttempts": 1.5}], "field 'Retry[0].MaxAttempts' must be"),
    ([{"ErrorEquals": ["E"], "MaxAttempts": True}], "field 'Retry[0].MaxAttempts' must be"),
    ([{"ErrorEquals": ["E"], "IntervalSeconds": 0}], "field 'Retry[0].IntervalSeconds'"),
    ([{"ErrorEquals": ["E"], "BackoffRate": 0.5}], "field 'Retry[0].BackoffRate'"),
    ([{"ErrorEquals": ["E"], "MaxDelaySeconds": 0}], "field 'Retry[0].MaxDelaySeconds'"),
    ([{"ErrorEquals": ["E"], "JitterStrategy": "HALF"}], "field 'Retry[0].JitterStrategy'"),
    ([{"ErrorEquals": ["E"], "Next": "X"}], "field 'Retry[0].Next' is not allowed"),
    ([{"ErrorEquals": ["States.ALL", "E"]}], "must hold States.ALL alone"),
    ([{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["E"]}],
     "field 'Retry[0].ErrorEquals': States.ALL must be in the last one"),
    ([{"ErrorEquals": ["States.MyError"]}], "reserved for the predefined errors"),
])
def test_bad_retriers_are_rejected(retry: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_retry(retry)


@pytest.mark.parametrize(("catch", "language", "message"), [
    ([{"ErrorEquals": ["E"]}], "JSONPath", r"field 'Catch\[0\].Next' must name a state"),
    ([{"ErrorEquals": ["E"], "Next": "A", "Output": 1}], "JSONPath",
     r"field 'Catch\[0\].Output' is not allowed"),
    ([{"ErrorEquals": ["E"], "Next": "A", "ResultPath": "$.e"}], "JSONata",
     r"field 'Catch\[0\].ResultPath' is not allowed"),
    ([{"ErrorEquals": ["States.ALL"], "Next": "A"}, {"ErrorEquals": ["E"], "Next": "B"}],
     "JSONPath", "States.ALL must be in the last one"),
])
def test_bad_catchers_are_rejected(catch: Any, language: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_catch(catch, language=language)


@given(
    interval=st.integers(1, 100),
    rate=st.floats(1.0, 5.0),
    cap=st.integers(1, 1000),
    done=st.integers(0, 20),
    seed=st.integers(0, 2**32),
)
def test_delay_never_exceeds_the_cap_and_jitter_stays_below_the_backoff(
    interval: int, rate: float, cap: int, done: int, seed: int
) -> None:
    plain = Retrier(error_equals=("E",), interval_seconds=interval, backoff_rate=rate,
                    max_delay_seconds=cap)
    jittered = Retrier(error_equals=("E",), interval_seconds=interval, backoff_rate=rate,
                       max_delay_seconds=cap, jitter_strategy="FULL")
    delay = backoff(plain, done, random.Random(seed))
    assert delay <= cap
    assert 0 <= backoff(jittered, done, random.Random(seed)) <= delay
