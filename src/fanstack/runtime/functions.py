"""Functions and their event sources, as declared with `@app.function`, `@app.consumer` and
`@app.subscriber`, and the three ways to run one: in a consumer, `invoke`, `invoke_async`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fanstack.core.errors import FunctionError, InvalidParameterValue
from fanstack.core.outcome import Outcome
from fanstack.core.retry import RetryPolicy
from fanstack.runtime.logs import current_fields

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

Handler = Callable[..., Any]


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
        """An ARN-like name, as a context and destination records carry it."""
        return f"arn:fanstack:lambda:local:000000000000:function:{self.name}"

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


class Breaker(Protocol):
    """A circuit breaker as a consumer sees it: while open, the consumer stops polling."""

    def allows(self) -> bool:
        """Whether a call may go through now."""
        ...

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial call through."""
        ...


class Invoker(Protocol):
    """How a declared function reaches the runtime that runs it (an App provides this)."""

    def run(self, function: Function, payload: Any, log_fields: Mapping[str, Any]) -> Outcome:
        """Run `payload` now in one of the function's workers, without waiting for one."""
        ...

    def enqueue(self, function: Function, body: str) -> None:
        """Store an asynchronous invocation durably in the function's queue."""
        ...


class Function:
    """A declared function: call it directly, `invoke` it, or `invoke_async` it."""

    def __init__(
        self,
        handler: Handler,
        spec: FunctionSpec,
        *,
        invoker: Invoker,
        use_store: Callable[[str | None, str | None], None] | None = None,
        on_success: Any = None,
        on_failure: Any = None,
        circuit_breaker: Breaker | None = None,
    ) -> None:
        self._invoker = invoker
        # In a worker process: open the store the dispatcher uses (data dir, backend URL).
        self.use_store = use_store
        self.handler = handler
        self.spec = spec
        self.name = spec.name
        self.on_success = on_success
        self.on_failure = on_failure
        self.circuit_breaker = circuit_breaker
        self.__doc__ = handler.__doc__
        self.__wrapped__ = handler

    def __repr__(self) -> str:
        return f"Function({self.name!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the handler in this process, as plain Python (for tests and composition)."""
        return self.handler(*args, **kwargs)

    @property
    def target(self) -> dict[str, Any]:
        """Where a worker process finds this function: module, file and qualified name."""
        import sys

        module = sys.modules.get(self.handler.__module__)
        return {
            "module": self.handler.__module__,
            "file": getattr(module, "__file__", None),
            "qualname": self.handler.__qualname__,
            "sys_path": [p for p in sys.path if p],
        }

    def invoke(self, payload: Any) -> Any:
        """Run synchronously in a worker: the result, or FunctionError / TooManyRequests."""
        # The caller's log context (a gateway request id, say) follows into the worker's lines.
        outcome = self._invoker.run(self, payload, current_fields())
        if outcome.ok:
            return outcome.result
        error = outcome.error or {}
        raise FunctionError(
            str(error.get("errorType", "Unhandled")),
            str(error.get("errorMessage", "")),
            [str(line) for line in error.get("stackTrace", [])],
        )

    def invoke_async(self, payload: Any) -> str:
        """Queue an asynchronous invocation durably; returns its request id."""
        request_id = str(uuid.uuid4())
        body = json.dumps({"requestId": request_id, "payload": payload, "enqueuedAt": time.time()})
        self._invoker.enqueue(self, body)
        return request_id
