"""`@idempotent`: run a function once per key, return the stored result on every repeat.

Powertools' design, on a fanstack table: an IN_PROGRESS record is written with `if_absent` before
the function runs (and expires after `in_progress_ttl`, so a crashed run does not block forever),
replaced by COMPLETED with the result afterwards, or deleted if the function raised so a retry can
run. A concurrent duplicate finds IN_PROGRESS and gets IdempotencyInProgress.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from fanstack.core.errors import (
    ConditionalCheckFailed,
    IdempotencyInProgress,
    InvalidParameterValue,
)
from fanstack.table import Table

F = TypeVar("F", bound=Callable[..., Any])
IN_PROGRESS, COMPLETED = "IN_PROGRESS", "COMPLETED"
_MISSING: Any = object()


def idempotent(
    table: Table,
    *,
    key: str | Callable[[Any], Any],
    ttl: float = 3600,
    in_progress_ttl: float = 900,
) -> Callable[[F], F]:
    """Make a function idempotent on `key` (a dotted path into its first argument, or a function
    of it); its result must be JSON-serializable."""
    if ttl <= 0 or in_progress_ttl <= 0:
        raise InvalidParameterValue("idempotent: ttl and in_progress_ttl must be > 0")

    def decorate(function: F) -> F:
        name = f"{function.__module__}.{function.__qualname__}"

        def record_key(event: Any) -> str:
            value = key(event) if callable(key) else extract(event, key)
            if value is None:
                raise InvalidParameterValue(f"idempotent {name}: no idempotency key at {key!r}")
            canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
            return f"{name}#{hashlib.sha256(canonical.encode()).hexdigest()}"

        def begin(item_key: str) -> tuple[bool, Any, int]:
            """(run it?, stored result, in-progress version)."""
            try:
                claim = table.put(
                    item_key, {"status": IN_PROGRESS}, ttl=in_progress_ttl, if_absent=True
                )
                return True, None, claim.version
            except ConditionalCheckFailed:
                existing = table.get_item(item_key)
                if existing is None:  # expired between the two calls: claim again
                    return begin(item_key)
                if existing.value.get("status") == COMPLETED:
                    return False, existing.value.get("result"), existing.version
                raise IdempotencyInProgress(
                    f"{name}: another invocation with the same key is in progress"
                ) from None

        def finish(item_key: str, version: int, result: Any) -> None:
            # If our claim expired and another run took over, its record stands.
            with contextlib.suppress(ConditionalCheckFailed):
                table.put(
                    item_key, {"status": COMPLETED, "result": result}, ttl=ttl, if_version=version
                )

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                item_key = record_key(args[0] if args else None)
                fresh, stored, version = begin(item_key)
                if not fresh:
                    return stored
                try:
                    result = await function(*args, **kwargs)
                except BaseException:
                    table.delete(item_key)
                    raise
                finish(item_key, version, result)
                return result

            return cast(F, run_async)

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            item_key = record_key(args[0] if args else None)
            fresh, stored, version = begin(item_key)
            if not fresh:
                return stored
            try:
                result = function(*args, **kwargs)
            except BaseException:
                table.delete(item_key)
                raise
            finish(item_key, version, result)
            return result

        return cast(F, run)

    return decorate


def extract(event: Any, path: str) -> Any:
    """Follow a dotted path into `event`, decoding JSON strings met on the way."""
    value = event
    for part in path.split("."):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is _MISSING:
            return None
    return value
