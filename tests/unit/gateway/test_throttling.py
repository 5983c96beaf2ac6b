"""Usage plans with a clock the test moves: token buckets (rate, burst, Retry-After) and the
daily quota (counted per UTC day, by key id)."""

from __future__ import annotations

from typing import Any

import pytest

from fanstack.core.errors import ConditionalCheckFailed, InvalidParameterValue
from fanstack.gateway.throttling import (
    SECONDS_PER_DAY,
    DailyQuota,
    RateLimiter,
    Throttled,
    UsagePlan,
)

from .fakes import Clock, MemoryTable

TINY = UsagePlan(name="tiny", rate=1, burst=3, quota_per_day=5)


def test_a_burst_passes_then_429_until_the_rate_refills_the_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    for _ in range(3):
        limiter.take("k", TINY)  # the burst
    with pytest.raises(Throttled) as throttled:
        limiter.take("k", TINY)
    assert "1 requests/s with a burst of 3" in str(throttled.value)
    assert throttled.value.retry_after >= 1
    clock.now += 2.1  # 1 request/s refills two tokens
    limiter.take("k", TINY)
    limiter.take("k", TINY)
    with pytest.raises(Throttled):
        limiter.take("k", TINY)


def test_retry_after_is_long_enough_for_a_token_to_come_back() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    for plan in (
        UsagePlan(name="slow", rate=0.25, burst=1),
        UsagePlan(name="half", rate=0.5, burst=2),
        UsagePlan(name="fast", rate=50, burst=1),
    ):
        limiter.take(plan.name, plan)
        while True:  # spend the burst
            try:
                limiter.take(plan.name, plan)
            except Throttled as throttled:
                retry_after = throttled.retry_after
                break
        assert retry_after >= 1
        clock.now += retry_after
        limiter.take(plan.name, plan)  # waiting as told is enough


def test_the_bucket_never_holds_more_than_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    limiter.take("k", TINY)
    clock.now += 3600
    for _ in range(3):
        limiter.take("k", TINY)
    with pytest.raises(Throttled):
        limiter.take("k", TINY)


def test_each_key_has_its_own_bucket() -> None:
    limiter = RateLimiter(Clock())
    plan = UsagePlan(name="one", rate=1, burst=1)
    limiter.take("a", plan)
    limiter.take("b", plan)
    with pytest.raises(Throttled):
        limiter.take("a", plan)


def test_the_daily_quota_runs_out_until_utc_midnight() -> None:
    clock, table = Clock(), MemoryTable()  # noon UTC
    counter = DailyQuota(table, clock)
    plan = UsagePlan(name="daily", rate=1000, burst=1000, quota_per_day=2)
    counter.count("k", plan)
    counter.count("k", plan)
    with pytest.raises(Throttled) as over:
        counter.count("k", plan)
    assert "allows 2 requests per day" in str(over.value)
    assert over.value.retry_after == SECONDS_PER_DAY // 2 + 1  # to midnight, and a second
    assert {key: item.value for key, item in table.items.items()} == {"k#2024-05-01": {"used": 2}}
    clock.now += SECONDS_PER_DAY // 2  # midnight: a new day, a new count
    counter.count("k", plan)
    assert table.items["k#2024-05-02"].value == {"used": 1}


def test_a_plan_without_a_quota_counts_nothing() -> None:
    table = MemoryTable()
    DailyQuota(table, Clock()).count("k", UsagePlan(name="free", rate=1, burst=1))
    assert table.items == {}


def test_a_contended_quota_counter_answers_retry_after_one_second() -> None:
    class Contended(MemoryTable):
        def put(self, key: str, value: dict[str, Any], **conditions: Any) -> None:
            raise ConditionalCheckFailed(key)  # another gateway always counts first

    with pytest.raises(Throttled) as contended:
        DailyQuota(Contended(), Clock()).count("k", TINY)
    assert "contended" in str(contended.value)
    assert contended.value.retry_after == 1


def test_a_concurrent_count_is_read_again_not_lost() -> None:
    table = MemoryTable()
    clock = Clock()

    class Racing(MemoryTable):
        """Another gateway counts once between this one's read and its write."""

        raced = False

        def get_item(self, key: str) -> Any:
            item = table.get_item(key)
            if not self.raced:
                self.raced = True
                table.put(key, {"used": 1}, if_absent=True)
            return item

        def put(self, key: str, value: dict[str, Any], **conditions: Any) -> None:
            table.put(key, value, **conditions)

    DailyQuota(Racing(), clock).count("k", TINY)
    assert table.items["k#2024-05-01"].value == {"used": 2}


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"rate": 0, "burst": 1}, "rate must be > 0"),
        ({"rate": 1, "burst": 0}, "burst must be >= 1"),
        ({"rate": 1, "burst": 1, "quota_per_day": 0}, "quota_per_day must be >= 1"),
    ],
)
def test_a_usage_plan_out_of_range_is_refused_naming_the_field(
    options: dict[str, Any], problem: str
) -> None:
    with pytest.raises(InvalidParameterValue, match=problem):
        UsagePlan(name="p", **options)
