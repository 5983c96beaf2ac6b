"""Structured logs: JSON lines carrying the invocation's context, for fanstack and handlers.

`log_context` binds fields (function, invocation id, message ids, ...) to the current context;
every record logged inside it, by fanstack or by a handler's own `logging` calls, carries them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "fanstack_log_fields", default=None
)
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

logger = logging.getLogger("fanstack")


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` to every log line emitted inside the block."""
    token = _fields.set({**(_fields.get() or {}), **fields})
    try:
        yield
    finally:
        _fields.reset(token)


def current_fields() -> dict[str, Any]:
    """The fields bound by enclosing `log_context` blocks."""
    return dict(_fields.get() or {})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(current_fields())
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send every logger's records to `stream` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing.formatter, JsonFormatter):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
