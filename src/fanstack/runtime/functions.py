"""A declared function (`@app.function`, `@app.consumer`, `@app.subscriber`) and the three ways
to run one: in a consumer, `invoke`, `invoke_async`. Its configuration is `core.functions`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from fanstack.core.errors import FunctionError
from fanstack.core.functions import FunctionSpec
from fanstack.core.outcome import Outcome
from fanstack.runtime.logs import current_fields

Handler = Callable[..., Any]


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
