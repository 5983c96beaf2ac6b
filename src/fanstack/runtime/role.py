"""Whether this process is a function worker (`runtime/worker.py`).

A function worker runs one function's handler and serves no HTTP: an app it loads takes the
declarations of its HTTP API and keeps none (`App.api`), because the dispatcher that started
the worker loaded the same app and checked them. The worker then neither imports the gateway
nor compiles request schemas, which took most of its start-up.
"""

from __future__ import annotations

_function_worker = False


def become_function_worker() -> None:
    """Mark this process as a function worker (before it loads the app)."""
    global _function_worker
    _function_worker = True


def is_function_worker() -> bool:
    """Whether this process is a function worker."""
    return _function_worker
