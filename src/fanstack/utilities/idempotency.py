"""`@idempotent`: run a function once per key, return the stored result on every repeat.

Powertools' design, on a fanstack table: an IN_PROGRESS record is written with `if_absent` before
the function runs, replaced by COMPLETED with the result afterwards, or deleted if the function
raised so a retry can run. A concurrent duplicate finds IN_PROGRESS and gets IdempotencyInProgress.

A claim never outlives the invocation that made it: inside a worker it expires when the
invocation times out (not after `in_progress_ttl`), and the dispatcher deletes it at once when the
invocation's worker dies or is killed. Elsewhere `in_progress_ttl` bounds it.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from fanstack.core.errors import (
    ConditionalCheckFailed,
    IdempotencyInProgress,
    InvalidParameterValue,
)
from fanstack.runtime.context import Claim, current_invocation
from fanstack.table import Table

F = TypeVar("F", bound=Callable[..., Any])
IN_PROGRESS, COMPLETED = "IN_PROGRESS", "COMPLETED"
_MISSING: Any = object()
CLAIM_MARGIN = 1.0  # seconds a claim outlives its invocation's deadline (clock skew, settling)
log = logging.getLogger("fanstack.idempotency")


def idempotent(
    table: Table,
    *,
    key: str | Callable[[Any], Any],
    ttl: float = 3600,
    in_progress_ttl: float = 900,
) -> Callable[[F], F]:
    """Make a function idempotent on `key` (a dotted path into its first argument, or a function
    of it); its result must be JSON-serializable."""
    if ttl <= 0:
        raise InvalidParameterValue(f"idempotent: ttl is {ttl}; need > 0")
    if in_progress_ttl <= 0:
        raise InvalidParameterValue(f"idempotent: in_progress_ttl is {in_progress_ttl}; need > 0")

    def decorate(function: F) -> F:
        # The module keeps two handlers both named `handler` from sharing records.
        records = _Records(table, f"{function.__module__}.{function.__qualname__}", key)

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                claim = records.begin(args[0] if args else None, in_progress_ttl)
                if isinstance(claim, _Done):
                    return claim.result
                try:
                    result = await function(*args, **kwargs)
                except BaseException:
                    records.abandon(claim)
                    raise
                records.finish(claim, result, ttl)
                return result

            return cast(F, run_async)

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            claim = records.begin(args[0] if args else None, in_progress_ttl)
            if isinstance(claim, _Done):
                return claim.result
            try:
                result = function(*args, **kwargs)
            except BaseException:
                records.abandon(claim)
                raise
            records.finish(claim, result, ttl)
            return result

        return cast(F, run)

    return decorate


@dataclass(frozen=True, slots=True)
class _Done:
    """An earlier invocation completed; its stored result."""

    result: Any


class _Records:
    """The idempotency records of one function in its table."""

    def __init__(self, table: Table, name: str, key: str | Callable[[Any], Any]) -> None:
        self.table = table
        self.name = name
        self.key = key

    def item_key(self, event: Any) -> str:
        """`<function>#<sha256 of the key value's canonical JSON>`."""
        value = self.key(event) if callable(self.key) else extract(event, self.key)
        if value is None:
            raise InvalidParameterValue(
                f"idempotent {self.name}: no idempotency key at {self.key!r} in the event"
            )
        canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
        return f"{self.name}#{hashlib.sha256(canonical.encode()).hexdigest()}"

    def begin(self, event: Any, in_progress_ttl: float) -> Claim | _Done:
        """Claim the key with an IN_PROGRESS record, or find the completed result."""
        item_key = self.item_key(event)
        invocation = current_invocation()
        if invocation is not None:
            remaining = invocation.context.remaining_seconds()
            in_progress_ttl = min(in_progress_ttl, remaining + CLAIM_MARGIN)
        while True:
            try:
                item = self.table.put(
                    item_key, {"status": IN_PROGRESS}, ttl=in_progress_ttl, if_absent=True
                )
                claim = Claim(self.table.store_url, self.table.name, item_key, item.version)
                if invocation is not None:
                    invocation.holds(claim)
                return claim
            except ConditionalCheckFailed:
                existing = self.table.get_item(item_key)
            if existing is None:
                continue  # it expired between the put and the get: claim again
            if existing.value.get("status") == COMPLETED:
                return _Done(existing.value.get("result"))
            raise IdempotencyInProgress(
                f"{self.name}: another invocation with key {item_key!r} is in progress"
            )

    def finish(self, claim: Claim, result: Any, ttl: float) -> None:
        """Replace the claim with the COMPLETED record holding `result`."""
        try:
            self.table.put(
                claim.key,
                {"status": COMPLETED, "result": result},
                ttl=ttl,
                if_version=claim.version,
            )
        except ConditionalCheckFailed:
            # Our claim expired and another invocation took the key over: its record stands.
            log.warning(
                "%s: claim on %s expired before the result was stored", self.name, claim.key
            )
        except InvalidParameterValue:
            self.abandon(claim)  # an unstorable result: let a retry run rather than block
            raise
        _settled(claim)

    def abandon(self, claim: Claim) -> None:
        """Delete the claim so a retry can run (unless another invocation took it over)."""
        try:
            self.table.delete(claim.key, if_version=claim.version)
        except ConditionalCheckFailed:
            log.warning("%s: claim on %s expired before it was released", self.name, claim.key)
        _settled(claim)


def _settled(claim: Claim) -> None:
    invocation = current_invocation()
    if invocation is not None:
        invocation.released(claim)


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
