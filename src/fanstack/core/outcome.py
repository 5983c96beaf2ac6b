"""How one invocation of a function ended: a result, a handler error, or a signal to retry later."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Outcome:
    """The end of one invocation, as the worker pool reports it."""

    ok: bool
    result: Any = None
    error: Mapping[str, Any] | None = None  # Lambda's shape: errorType, errorMessage, stackTrace
    signal: str | None = None  # "RetryLater": hand the event back without counting the receive
    delay: float = 0.0  # for a signal: seconds before the event comes back
    duration: float = 0.0
    cold_start: bool = False
    invocation_id: str = ""

    @property
    def error_summary(self) -> str:
        """`Type: message` and the innermost frames, as kept with a dead-lettered message."""
        if self.error is None:
            return ""
        trace = [str(line) for line in self.error.get("stackTrace", [])][-3:]
        head = f"{self.error.get('errorType')}: {self.error.get('errorMessage')}"
        return "\n".join([head, *trace])
