"""Retry arithmetic: exponential backoff with full jitter, as a pure function of the attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass

from fanstack.core.errors import InvalidParameterValue

DEFAULT_BASE_DELAY = 1.0
DEFAULT_MAX_DELAY = 300.0
DEFAULT_MAX_ATTEMPTS = 3
MAX_ATTEMPTS = 1000  # SQS's maxReceiveCount ceiling


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a failed record is retried: `max_attempts` receives, backoff from `base_delay`."""

    base_delay: float = DEFAULT_BASE_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        if not 0 <= self.base_delay <= self.max_delay:
            raise InvalidParameterValue(
                f"retry base_delay is {self.base_delay}; it must be between 0 and max_delay "
                f"({self.max_delay})"
            )
        if not 0 <= self.max_delay <= 43_200:
            raise InvalidParameterValue(
                f"retry max_delay is {self.max_delay}; it must be between 0 and 43200 s "
                "(the longest visibility timeout)"
            )
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise InvalidParameterValue(
                f"retry max_attempts is {self.max_attempts}; it must be between 1 and "
                f"{MAX_ATTEMPTS}"
            )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based): full jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(attempt - 1, 0))
        return (rng or random).uniform(0, ceiling)
