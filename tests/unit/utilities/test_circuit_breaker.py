"""The circuit breaker on a real SQLite table, with a controllable clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from fanstack import App, CircuitBreaker, CircuitOpen, InvalidParameterValue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(tmp_path: Path, clock: Clock) -> CircuitBreaker:
    app = App("cb", data_dir=tmp_path)
    return CircuitBreaker(
        app.table("breakers"), "payments", failure_threshold=3, reset_timeout=30, clock=clock
    )


def fail() -> None:
    raise ConnectionError("payments down")


def test_opens_after_threshold_then_half_opens_and_closes(tmp_path: Path) -> None:
    clock = Clock()
    cb = breaker(tmp_path, clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            cb.call(fail)
    assert cb.state() == "closed"
    with pytest.raises(ConnectionError):
        cb.call(fail)
    assert cb.state() == "open"
    with pytest.raises(CircuitOpen) as caught:
        cb.call(lambda: "not called")
    assert 0 < caught.value.delay <= 30
    clock.now += 30
    assert cb.state() == "half-open"
    assert cb.call(lambda: "ok") == "ok"
    assert cb.state() == "closed"


def test_a_failed_trial_reopens(tmp_path: Path) -> None:
    clock = Clock()
    cb = breaker(tmp_path, clock)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            cb.call(fail)
    clock.now += 31
    with pytest.raises(ConnectionError):
        cb.call(fail)
    assert cb.state() == "open"
    assert cb.retry_after() == pytest.approx(30)


def test_state_is_shared_through_the_table(tmp_path: Path) -> None:
    clock = Clock()
    one, two = breaker(tmp_path, clock), breaker(tmp_path, clock)
    for _ in range(3):
        with pytest.raises(ConnectionError), one:
            fail()
    assert not two.allows()


def test_success_resets_the_failure_count(tmp_path: Path) -> None:
    cb = breaker(tmp_path, Clock())
    for _ in range(2):
        with pytest.raises(ConnectionError):
            cb.call(fail)
    cb.call(lambda: None)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            cb.call(fail)
    assert cb.state() == "closed"


def test_parameters_are_validated(tmp_path: Path) -> None:
    app = App("cb", data_dir=tmp_path)
    with pytest.raises(InvalidParameterValue, match="failure_threshold"):
        CircuitBreaker(app.table("b"), "x", failure_threshold=0)
    with pytest.raises(InvalidParameterValue, match="reset_timeout"):
        CircuitBreaker(app.table("b"), "x", reset_timeout=0)


def test_half_open_lets_exactly_one_trial_through(tmp_path: Path) -> None:
    clock = Clock()
    one, two = breaker(tmp_path, clock), breaker(tmp_path, clock)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            one.call(fail)
    clock.now += 30
    one.check()  # the trial
    with pytest.raises(CircuitOpen, match="trial"):
        two.check()
    one.record_success()
    two.check()  # closed again: everyone passes
