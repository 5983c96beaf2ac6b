"""SNS delivery policies, pure: how often and how far apart a failed delivery is tried again.

An HTTP/S subscription's `DeliveryPolicy` attribute is SNS's JSON (`healthyRetryPolicy`,
`requestPolicy`, `throttlePolicy`); without one, SNS's default for HTTP/S applies: three retries
20 seconds apart. A retry falls in one of four phases, in order: without delay, at the minimum
delay, backing off from the minimum to the maximum delay, and at the maximum delay. Lambda
subscriptions have SNS's fixed policy for AWS-managed endpoints (`LAMBDA_POLICY`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from fanstack.core.errors import InvalidParameter

DEFAULT_CONTENT_TYPE = "text/plain; charset=UTF-8"
CONTENT_TYPES = frozenset(
    {
        "application/json", "application/xml", "text/html", "text/plain",
        "text/xml", "application/x-www-form-urlencoded", "text/css", "text/csv",
        "text/javascript", "application/javascript", "application/octet-stream",
    }
)  # fmt: skip
BACKOFF_FUNCTIONS = frozenset({"linear", "arithmetic", "geometric", "exponential"})
MAX_RETRIES = 100
MAX_DELAY = 3600  # seconds; also SNS's bound on a policy's total retry time


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryPolicy:
    """A healthy retry policy and the content type of HTTP/S requests."""

    num_retries: int = 3
    no_delay_retries: int = 0
    min_delay_retries: int = 0
    max_delay_retries: int = 0
    min_delay: int = 20
    max_delay: int = 20
    backoff: str = "linear"
    content_type: str = DEFAULT_CONTENT_TYPE

    def delay(self, retry: int) -> int:
        """Seconds to wait before retry number `retry` (1 is the first retry)."""
        if retry <= self.no_delay_retries:
            return 0
        if retry <= self.no_delay_retries + self.min_delay_retries:
            return self.min_delay
        steps = self.num_retries - self.no_delay_retries - self.min_delay_retries
        steps -= self.max_delay_retries
        step = retry - self.no_delay_retries - self.min_delay_retries
        if steps <= 0 or step > steps:
            return self.max_delay
        share = step / steps
        if self.backoff == "linear" or self.min_delay == self.max_delay:
            return math.ceil(self.min_delay + (self.max_delay - self.min_delay) * share)
        # arithmetic, geometric and exponential all grow faster than linear: one curve for them
        growth: float = (self.max_delay / self.min_delay) ** share
        return math.ceil(self.min_delay * growth)

    def to_dict(self) -> dict[str, Any]:
        """As a table item's field."""
        return {
            "numRetries": self.num_retries,
            "numNoDelayRetries": self.no_delay_retries,
            "numMinDelayRetries": self.min_delay_retries,
            "numMaxDelayRetries": self.max_delay_retries,
            "minDelayTarget": self.min_delay,
            "maxDelayTarget": self.max_delay,
            "backoffFunction": self.backoff,
            "headerContentType": self.content_type,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeliveryPolicy:
        """Read back from `to_dict`."""
        return cls(
            num_retries=int(data["numRetries"]),
            no_delay_retries=int(data.get("numNoDelayRetries", 0)),
            min_delay_retries=int(data.get("numMinDelayRetries", 0)),
            max_delay_retries=int(data.get("numMaxDelayRetries", 0)),
            min_delay=int(data["minDelayTarget"]),
            max_delay=int(data["maxDelayTarget"]),
            backoff=str(data.get("backoffFunction", "linear")),
            content_type=str(data.get("headerContentType", DEFAULT_CONTENT_TYPE)),
        )


HTTP_DEFAULT_POLICY = DeliveryPolicy()
# SNS's policy for AWS-managed endpoints: 3 immediate retries, 2 a second apart, 10 backing off
# from 1 to 20 seconds, then 20 seconds apart (SNS: 100,000 times; here: what the fanstack
# queue's 14-day retention holds).
LAMBDA_POLICY = DeliveryPolicy(
    num_retries=3 + 2 + 10 + 60_000,
    no_delay_retries=3,
    min_delay_retries=2,
    max_delay_retries=60_000,
    min_delay=1,
    max_delay=20,
    backoff="exponential",
)


def parse_delivery_policy(text: str) -> DeliveryPolicy:
    """An HTTP/S `DeliveryPolicy` attribute's policy (InvalidParameter naming what is wrong)."""
    if not text:
        return HTTP_DEFAULT_POLICY
    try:
        document = json.loads(text)
    except ValueError:
        raise _invalid("the value is not JSON") from None
    if not isinstance(document, dict):
        raise _invalid("the value is not a JSON object")
    healthy = document.get("healthyRetryPolicy") or {}
    request = document.get("requestPolicy") or {}
    if not isinstance(healthy, dict) or not isinstance(request, dict):
        raise _invalid("healthyRetryPolicy and requestPolicy must be objects")
    policy = DeliveryPolicy(
        num_retries=_count(healthy, "numRetries", HTTP_DEFAULT_POLICY.num_retries),
        no_delay_retries=_count(healthy, "numNoDelayRetries", 0),
        min_delay_retries=_count(healthy, "numMinDelayRetries", 0),
        max_delay_retries=_count(healthy, "numMaxDelayRetries", 0),
        min_delay=_count(healthy, "minDelayTarget", HTTP_DEFAULT_POLICY.min_delay),
        max_delay=_count(healthy, "maxDelayTarget", HTTP_DEFAULT_POLICY.max_delay),
        backoff=str(healthy.get("backoffFunction", "linear")),
        content_type=str(request.get("headerContentType", DEFAULT_CONTENT_TYPE)),
    )
    _check(policy)
    return policy


def _count(policy: dict[str, Any], key: str, default: int) -> int:
    value = policy.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid(f"{key} must be a whole number >= 0, got {value!r}")
    return value


def _check(policy: DeliveryPolicy) -> None:
    if policy.num_retries > MAX_RETRIES:
        raise _invalid(f"numRetries is {policy.num_retries}; it must be 0-{MAX_RETRIES}")
    phases = policy.no_delay_retries + policy.min_delay_retries + policy.max_delay_retries
    if phases > policy.num_retries:
        raise _invalid("the retries of the delay phases add up to more than numRetries")
    if not 1 <= policy.min_delay <= policy.max_delay <= MAX_DELAY:
        raise _invalid(
            f"minDelayTarget ({policy.min_delay}) and maxDelayTarget ({policy.max_delay}) must "
            f"satisfy 1 <= minDelayTarget <= maxDelayTarget <= {MAX_DELAY}"
        )
    if policy.backoff not in BACKOFF_FUNCTIONS:
        raise _invalid(f"backoffFunction must be one of {', '.join(sorted(BACKOFF_FUNCTIONS))}")
    total = sum(policy.delay(retry) for retry in range(1, policy.num_retries + 1))
    if total > MAX_DELAY:
        raise _invalid(f"the retries take {total} s in all; the limit is {MAX_DELAY} s")
    if policy.content_type.split(";")[0].strip() not in CONTENT_TYPES:
        raise _invalid(f"headerContentType {policy.content_type!r} is not supported")


def _invalid(reason: str) -> InvalidParameter:
    return InvalidParameter(f"Invalid parameter: Attributes Reason: DeliveryPolicy: {reason}")
