"""HTTP endpoint targets: the rate limit is a token bucket on an injected clock."""

from __future__ import annotations

import pytest

from fanstack.bus.api_destination import ApiCaller
from fanstack.bus.failures import DeliveryFailed
from fanstack.core.rules import API, TargetSpec

from ...support.clocks import FixedClock
from ...support.endpoints import Endpoint


def test_calls_over_the_rate_wait_for_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FixedClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    monkeypatch.setattr("fanstack.bus.api_destination.time.sleep", sleep)
    endpoint = Endpoint(status=200)
    try:
        target = TargetSpec(id="t", kind=API, resource=endpoint.url, rate_limit_per_second=2)
        caller = ApiCaller(clock=clock)
        for n in range(5):
            caller.call(target, f'{{"n": {n}}}')
        assert len(endpoint.requests) == 5
        assert sum(slept) == pytest.approx(1.5)  # 2 at once, then one every 0.5 s
    finally:
        endpoint.close()


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (500, "ERROR_FROM_TARGET", True),
        (429, "THROTTLING", True),
        (409, "ERROR_FROM_TARGET", True),
        (400, "ERROR_FROM_TARGET", False),
        (404, "ERROR_FROM_TARGET", False),
    ],
)
def test_failed_calls_say_whether_a_retry_can_help(status: int, code: str, retryable: bool) -> None:
    endpoint = Endpoint(status=status)
    try:
        target = TargetSpec(id="t", kind=API, resource=endpoint.url)
        with pytest.raises(DeliveryFailed) as caught:
            ApiCaller().call(target, "{}")
        assert (caught.value.code, caught.value.retryable) == (code, retryable)
    finally:
        endpoint.close()


def test_an_endpoint_that_is_not_there_is_a_retryable_connection_failure() -> None:
    endpoint = Endpoint()
    url = endpoint.url
    endpoint.close()
    with pytest.raises(DeliveryFailed) as caught:
        ApiCaller().call(TargetSpec(id="t", kind=API, resource=url), "{}")
    assert caught.value.code == "CONNECTION_FAILURE" and caught.value.retryable
