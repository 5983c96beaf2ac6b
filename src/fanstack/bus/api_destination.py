"""HTTP endpoints as rule targets (EventBridge API destinations): calls, timeouts, rate limits.

Each call has EventBridge's 5-second timeout. A 2xx answer is a delivery. As EventBridge does,
fanstack retries 401, 407, 409, 429 and 5xx answers, timeouts and connection failures, and
dead-letters other 4xx answers at once. A target's `rate_limit_per_second` is a token bucket in
each process that delivers (a process over the rate waits for a token rather than failing).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fanstack.bus.failures import DeliveryFailed
from fanstack.core.rules import TargetSpec

TIMEOUT = 5.0
RETRYABLE_STATUS = frozenset({401, 407, 409, 429})
USER_AGENT = "fanstack-eventbridge"


class _Bucket:
    """A token bucket of `rate` tokens per second, holding at most `rate` tokens."""

    def __init__(self, rate: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.clock = clock
        self.updated = clock()

    def wait(self) -> float:
        """Seconds until a token is free (0: one was taken now)."""
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class ApiCaller:
    """Calls HTTP endpoint targets, each within its rate limit."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[tuple[str, int], _Bucket] = {}
        self._lock = threading.Lock()

    def call(self, target: TargetSpec, body: str) -> None:
        """Send the event's input to the endpoint; raises DeliveryFailed on a failure."""
        import urllib.error  # here, not at import: most processes call no endpoint
        import urllib.request

        self._take_token(target)
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
        headers.update(target.headers)
        method = target.http_method
        data = None if method in ("GET", "HEAD") else body.encode()
        request = urllib.request.Request(target.resource, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                response.read()
        except urllib.error.HTTPError as error:
            status = error.code
            retryable = status in RETRYABLE_STATUS or status >= 500
            code = "THROTTLING" if status == 429 else "ERROR_FROM_TARGET"
            raise DeliveryFailed(
                code, f"{target.resource} answered HTTP {status}", retryable=retryable
            ) from error
        except TimeoutError as error:
            raise DeliveryFailed(
                "TIMEOUT", f"{target.resource} did not answer within {TIMEOUT:g} s", retryable=True
            ) from error
        except (urllib.error.URLError, OSError) as error:
            raise DeliveryFailed(
                "CONNECTION_FAILURE", f"{target.resource}: {error}", retryable=True
            ) from error

    def _take_token(self, target: TargetSpec) -> None:
        key = (target.resource, target.rate_limit_per_second)
        while True:
            with self._lock:
                bucket = self._buckets.get(key)
                if bucket is None:
                    bucket = self._buckets[key] = _Bucket(target.rate_limit_per_second, self.clock)
                pause = bucket.wait()
            if pause <= 0:
                return
            time.sleep(pause)
