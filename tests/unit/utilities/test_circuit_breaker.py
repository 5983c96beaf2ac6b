"""The circuit breaker on a real SQLite table, with a clock the test moves."""

from __future__ import annotations

import pytest

from fanstack import CircuitBreaker, CircuitOpen, InvalidParameterValue, RetryLater, Table

from .conftest import Clock


def breaker(table: Table, clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(table, "payments", failure_threshold=3, reset_timeout=30, clock=clock)


def fail() -> None:
    raise ConnectionError("payments down")


def trip(cb: CircuitBreaker) -> None:
    for _ in range(cb.failure_threshold):
        with pytest.raises(ConnectionError):
            cb.call(fail)


def test_opens_after_threshold_then_half_opens_and_closes(table: Table, clock: Clock) -> None:
    cb = breaker(table, clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            cb.call(fail)
    assert cb.state() == "closed" and cb.retry_after() == 0
    with pytest.raises(ConnectionError):
        cb.call(fail)
    assert cb.state() == "open" and not cb.allows()
    with pytest.raises(CircuitOpen) as caught:
        cb.call(lambda: "not called")
    assert 0 < caught.value.delay <= 30
    clock.advance(10)
    assert cb.retry_after() == pytest.approx(20)
    clock.advance(20)
    assert cb.state() == "half-open" and cb.allows() and cb.retry_after() == 0
    assert cb.call(lambda: "ok") == "ok"
    assert cb.state() == "closed"


def test_a_failed_trial_reopens(table: Table, clock: Clock) -> None:
    cb = breaker(table, clock)
    trip(cb)
    clock.advance(31)
    with pytest.raises(ConnectionError):
        cb.call(fail)
    assert cb.state() == "open"
    assert cb.retry_after() == pytest.approx(30)


def test_state_is_shared_through_the_table(table: Table, clock: Clock) -> None:
    one, two = breaker(table, clock), breaker(table, clock)
    for _ in range(3):
        with pytest.raises(ConnectionError), one:
            fail()
    assert two.state() == "open" and not two.allows()
    with pytest.raises(CircuitOpen):
        two.call(lambda: None)
    clock.advance(30)
    two.call(lambda: None)
    assert one.state() == "closed"


def test_success_resets_the_failure_count(table: Table, clock: Clock) -> None:
    cb = breaker(table, clock)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            cb.call(fail)
    cb.call(lambda: None)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            cb.call(fail)
    assert cb.state() == "closed"


def test_half_open_lets_exactly_one_trial_through(table: Table, clock: Clock) -> None:
    one, two = breaker(table, clock), breaker(table, clock)
    trip(one)
    clock.advance(30)
    one.check()  # the trial
    assert not two.allows()
    with pytest.raises(CircuitOpen, match="trial"):
        two.check()
    one.record_success()
    two.check()  # closed again: everyone passes


def test_a_signal_from_the_block_is_not_a_failure(table: Table, clock: Clock) -> None:
    cb = CircuitBreaker(table, "payments", failure_threshold=1, clock=clock)
    with pytest.raises(RetryLater), cb:
        raise RetryLater(5)
    assert cb.state() == "closed"


def test_works_as_a_decorator(table: Table, clock: Clock) -> None:
    cb = CircuitBreaker(table, "payments", failure_threshold=1, clock=clock)

    @cb
    def charge(amount: int) -> int:
        if amount < 0:
            raise ValueError("negative")
        return amount

    assert charge(5) == 5
    with pytest.raises(ValueError):
        charge(-1)
    with pytest.raises(CircuitOpen):
        charge(5)


def test_breakers_of_other_names_are_independent(table: Table, clock: Clock) -> None:
    trip(breaker(table, clock))
    other = CircuitBreaker(table, "shipping", clock=clock)
    assert other.state() == "closed"


def test_parameters_are_validated(table: Table) -> None:
    with pytest.raises(InvalidParameterValue, match="failure_threshold"):
        CircuitBreaker(table, "x", failure_threshold=0)
    with pytest.raises(InvalidParameterValue, match="reset_timeout"):
        CircuitBreaker(table, "x", reset_timeout=0)
