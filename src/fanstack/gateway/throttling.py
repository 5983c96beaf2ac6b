"""Usage plans: API Gateway's throttling (rate and burst) and daily quota, per API key.

Rates are token buckets kept per gateway process (as API Gateway's are approximate per node);
daily quotas are counted in the backend's table store, so every gateway shares them. Keys are
known here only by their `auth.key_id`, so the quota table never holds a key. Both read time from
a clock they are given (monotonic seconds for buckets, epoch seconds for days).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fanstack.core.errors import ConditionalCheckFailed, InvalidParameterValue
from fanstack.table import Table

Clock = Callable[[], float]

QUOTA_TABLE = "fanstack-api-quota"
SECONDS_PER_DAY = 86_400
QUOTA_RETENTION_SECONDS = 2 * SECONDS_PER_DAY
QUOTA_WRITE_ATTEMPTS = 20


class Throttled(Exception):
    """A request over its plan's rate or daily quota; `retry_after` is in whole seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True, kw_only=True)
class UsagePlan:
    """Throttling and quota for the API keys on this plan."""

    name: str
    rate: float  # steady requests per second
    burst: int
    quota_per_day: int | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise InvalidParameterValue(f"usage plan {self.name!r}: rate must be > 0")
        if self.burst < 1:
            raise InvalidParameterValue(f"usage plan {self.name!r}: burst must be >= 1")
        if self.quota_per_day is not None and self.quota_per_day < 1:
            raise InvalidParameterValue(f"usage plan {self.name!r}: quota_per_day must be >= 1")


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets, one per key: full at `burst`, refilled at `rate` tokens per second."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, identity: str, plan: UsagePlan) -> None:
        """Spend one token of `identity`'s bucket, or raise Throttled saying when one is back."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.setdefault(identity, _Bucket(float(plan.burst), now))
            bucket.tokens = min(plan.burst, bucket.tokens + (now - bucket.updated) * plan.rate)
            bucket.updated = now
            if bucket.tokens < 1:
                wait = (1 - bucket.tokens) / plan.rate
                raise Throttled(
                    f"Too Many Requests: usage plan {plan.name!r} allows {plan.rate:g} "
                    f"requests/s with a burst of {plan.burst}",
                    retry_after=max(1, round(wait + 0.5)),
                )
            bucket.tokens -= 1


class DailyQuota:
    """Requests per key per UTC day, counted in a table that every gateway process shares."""

    def __init__(self, table: Table, clock: Clock = time.time) -> None:
        self._table = table
        self._clock = clock

    def count(self, identity: str, plan: UsagePlan) -> None:
        """Count one request of `identity` today, or raise Throttled if the quota is used up."""
        if plan.quota_per_day is None:
            return
        today = datetime.fromtimestamp(self._clock(), UTC)
        item_key = f"{identity}#{today:%Y-%m-%d}"
        for _ in range(QUOTA_WRITE_ATTEMPTS):
            item = self._table.get_item(item_key)
            used = int(item.value["used"]) if item else 0
            if used >= plan.quota_per_day:
                midnight = today.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
                raise Throttled(
                    f"Limit Exceeded: usage plan {plan.name!r} allows {plan.quota_per_day} "
                    "requests per day",
                    retry_after=int(midnight + SECONDS_PER_DAY - today.timestamp()) + 1,
                )
            try:
                self._table.put(
                    item_key,
                    {"used": used + 1},
                    ttl=QUOTA_RETENTION_SECONDS,
                    if_absent=item is None,
                    if_version=item.version if item else None,
                )
                return
            except ConditionalCheckFailed:
                continue  # another request counted first; read again
        raise Throttled("Too Many Requests: quota counter is contended", retry_after=1)
