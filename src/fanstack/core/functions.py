"""Functions and their event sources as declared: Lambda's configuration with its defaults and
ranges (`FunctionSpec`), and event source mappings from a queue (`ConsumerSpec`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fanstack.core.arns import function_arn
from fanstack.core.errors import InvalidParameterValue
from fanstack.core.retry import RetryPolicy

DEFAULT_TIMEOUT = 3.0
DEFAULT_MEMORY_MB = 128
DEFAULT_CONCURRENCY = 10
MAX_TIMEOUT = 900.0
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10_240
DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_MAX_EVENT_AGE = 21_600
MIN_MAX_EVENT_AGE, MAX_MAX_EVENT_AGE = 60, 21_600
MAX_BATCH_SIZE = 10_000
MAX_BATCH_WINDOW = 300
MIN_MAX_CONCURRENCY, MAX_MAX_CONCURRENCY = 2, 1000
ASYNC_QUEUE_PREFIX = "fanstack-async-"
DEFAULT_RETRY_LATER_LIMIT = 300.0
MAX_RETRY_LATER_LIMIT = 43_200.0

@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionSpec:
    """A function's configuration, with Lambda's defaults and ranges."""

    name: str
    timeout: float = DEFAULT_TIMEOUT
    memory_mb: int | None = DEFAULT_MEMORY_MB
    concurrency: int = DEFAULT_CONCURRENCY
    retry_attempts: int = DEFAULT_RETRY_ATTEMPTS
    max_event_age: int = DEFAULT_MAX_EVENT_AGE

    def __post_init__(self) -> None:
        if not 0 < self.timeout <= MAX_TIMEOUT:
            raise InvalidParameterValue(
                f"function {self.name!r}: timeout is {self.timeout}; it must be between 1 and "
                f"{MAX_TIMEOUT:.0f} seconds"
            )
        if self.memory_mb is not None and not MIN_MEMORY_MB <= self.memory_mb <= MAX_MEMORY_MB:
            raise InvalidParameterValue(
                f"function {self.name!r}: memory_mb is {self.memory_mb}; it must be between "
                f"{MIN_MEMORY_MB} and {MAX_MEMORY_MB}"
            )
        if not 1 <= self.concurrency <= MAX_MAX_CONCURRENCY:
            raise InvalidParameterValue(
                f"function {self.name!r}: concurrency is {self.concurrency}; it must be between "
                f"1 and {MAX_MAX_CONCURRENCY}"
            )
        if not 0 <= self.retry_attempts <= 2:
            raise InvalidParameterValue(
                f"function {self.name!r}: retry_attempts (MaximumRetryAttempts) is "
                f"{self.retry_attempts}; it must be between 0 and 2"
            )
        if not MIN_MAX_EVENT_AGE <= self.max_event_age <= MAX_MAX_EVENT_AGE:
            raise InvalidParameterValue(
                f"function {self.name!r}: max_event_age is {self.max_event_age}; it must be "
                f"between {MIN_MAX_EVENT_AGE} and {MAX_MAX_EVENT_AGE} seconds"
            )

    @property
    def arn(self) -> str:
        """The function's ARN, as a context and destination records carry it."""
        return function_arn(self.name)

    @property
    def async_queue(self) -> str:
        """The queue holding this function's asynchronous invocations."""
        return ASYNC_QUEUE_PREFIX + self.name


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerSpec:
    """An event source mapping: a queue feeding a function in batches."""

    queue: str
    function: str
    batch_size: int = 10
    batch_window: float = 0
    max_concurrency: int | None = None
    report_batch_item_failures: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # How long a message may ask to be retried later (RetryLater, an idempotency key in
    # progress elsewhere) before that counts as a failed receive.
    retry_later_limit: float = DEFAULT_RETRY_LATER_LIMIT

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise InvalidParameterValue(
                f"consumer of {self.queue!r}: batch_size is {self.batch_size}; it must be "
                f"between 1 and {MAX_BATCH_SIZE}"
            )
        if not 0 <= self.batch_window <= MAX_BATCH_WINDOW:
            raise InvalidParameterValue(
                f"consumer of {self.queue!r}: batch_window is {self.batch_window}; it must be "
                f"between 0 and {MAX_BATCH_WINDOW} seconds"
            )
        if self.batch_size > 10 and self.batch_window <= 0:
            raise InvalidParameterValue(
                f"consumer of {self.queue!r}: a batch_size over 10 needs a batch_window "
                "(MaximumBatchingWindowInSeconds) of at least 1 second"
            )
        if not 0 <= self.retry_later_limit <= MAX_RETRY_LATER_LIMIT:
            raise InvalidParameterValue(
                f"consumer of {self.queue!r}: retry_later_limit is {self.retry_later_limit}; it "
                f"must be between 0 and {MAX_RETRY_LATER_LIMIT:.0f} seconds"
            )
        limit = self.max_concurrency
        if limit is not None and not MIN_MAX_CONCURRENCY <= limit <= MAX_MAX_CONCURRENCY:
            raise InvalidParameterValue(
                f"consumer of {self.queue!r}: max_concurrency is {limit}; it must be between "
                f"{MIN_MAX_CONCURRENCY} and {MAX_MAX_CONCURRENCY}"
            )
