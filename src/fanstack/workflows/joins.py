"""Fan-in: the counted join of a Parallel state's branches or a Map state's items.

A join survives restarts and scales to 10,000 items without one hot item: children are counted
in buckets of `BUCKET` (a conditional write adds the child's index to its bucket's set, so
counting twice is impossible), a full bucket is added to the join's set of full buckets (again
a set, again idempotent), and the child whose write fills the last bucket continues the parent.
Failures go into a set of their own; the first write that takes them past what the state
tolerates marks the join failed and fails the parent. Every step of this is safe to repeat:
a child that dies half way through is run again and redoes exactly what is missing.

A Map starts its first `MaxConcurrency` items; item i, when it ends, starts item
i + MaxConcurrency, so no more than MaxConcurrency run at once and each item is started by
exactly one predecessor. A Map's items are stored beside its join in chunks of `CHUNK` (a
distributed Map may read a million of them): written under a fresh id before the join that
names that id, so a join's items are complete the moment it exists, and a step run twice (its
item source read twice) leaves one set of items in use.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from fanstack.core.errors import ConditionalCheckFailed
from fanstack.workflows.store import JOINS_TABLE, Store

BUCKET = 256
CACHED_JOINS = 64
CHUNK = 500
CACHED_CHUNKS = 256


class Join:
    """The join of one Parallel or Map step.

    Its description never changes once created, so `cache` (shared by a process's steps) keeps
    it: a Map of 10,000 items reads its item list once, not once per item.
    """

    def __init__(
        self,
        store: Store,
        execution: str,
        step: str,
        cache: dict[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.store = store
        self.backend = store.backend
        self.execution = execution
        self.step = step
        self.key = f"{execution}/{step}"
        self.cache = cache if cache is not None else {}

    def create(self, value: Mapping[str, Any]) -> Mapping[str, Any]:
        """Create the join once; the stored value (the first one stands)."""
        try:
            self.backend.table_put(JOINS_TABLE, self.key, value, if_absent=True)
            return value
        except ConditionalCheckFailed:
            return self.value()

    def existing(self) -> Mapping[str, Any] | None:
        """The join's description, if it was created."""
        try:
            return self.value()
        except LookupError:
            return None

    def store_items(self, items: list[Any]) -> str:
        """Store a Map's items in chunks (before its join); the id the join names them by."""
        items_id = uuid.uuid4().hex
        for start in range(0, len(items), CHUNK):
            key = f"{self.key}/items/{items_id}/{start // CHUNK:08d}"
            self.backend.table_put(JOINS_TABLE, key, {"items": items[start : start + CHUNK]})
        return items_id

    def item(self, index: int) -> Any:
        """Item `index` of the Map (its chunk cached: items are read in order)."""
        key = f"{self.key}/items/{self.value()['items_id']}/{index // CHUNK:08d}"
        chunk = self.cache.get(key)
        if chunk is None:
            item = self.backend.table_get(JOINS_TABLE, key)
            assert item is not None, f"no items at {key}"
            chunk = item.value
            self._keep(key, chunk)
        return chunk["items"][index % CHUNK]

    def items(self) -> list[Any]:
        """Every item of the Map, in order."""
        return [self.item(index) for index in range(int(self.value()["total"]))]

    def value(self) -> Mapping[str, Any]:
        """The join's description: its kind, total, parent step, items, tolerance."""
        cached = self.cache.get(self.key)
        if cached is not None:
            return cached
        item = self.backend.table_get(JOINS_TABLE, self.key)
        if item is None:
            raise LookupError(f"no join {self.key}")
        self._keep(self.key, item.value)
        return item.value

    def _keep(self, key: str, value: Mapping[str, Any]) -> None:
        if len(self.cache) >= CACHED_JOINS + CACHED_CHUNKS:
            self.cache.pop(next(iter(self.cache)))
        self.cache[key] = value

    def count(self, index: int, ok: bool) -> str | None:
        """Count child `index` in; "complete" or "failed" when this child decides the join."""
        value = self.value()
        if not ok and self._add(f"{self.key}/failed", "failed", index, value):
            return "failed"
        bucket = index // BUCKET
        size = min(BUCKET, int(value["total"]) - bucket * BUCKET)
        full = self._add_to_bucket(bucket, index, size)
        if not full:
            return None
        buckets = -(-int(value["total"]) // BUCKET)
        if self._add_full_bucket(bucket, buckets):
            return "complete"
        return None

    def failed(self) -> bool:
        """Whether the join was decided by a failure."""
        item = self.backend.table_get(JOINS_TABLE, f"{self.key}/failed")
        return bool(item and item.value.get("over"))

    def _add(self, key: str, kind: str, index: int, value: Mapping[str, Any]) -> bool:
        """Add a failed child; True when this makes the failures exceed the tolerance first."""
        while True:
            item = self.backend.table_get(JOINS_TABLE, key)
            current: dict[str, Any] = (
                dict(item.value) if item is not None else {"members": [], "over": False}
            )
            members = {int(member) for member in current["members"]}
            if index in members:
                return bool(current.get("decided_by") == index)
            members.add(index)
            over = not current["over"] and exceeds(value, len(members))
            current["members"] = sorted(members)
            if over:
                current["over"], current["decided_by"] = True, index
            if self._write(key, current, item.version if item else None):
                return over

    def _add_to_bucket(self, bucket: int, index: int, size: int) -> bool:
        """Add a child to its bucket; True if the bucket is full (now or already)."""
        return len(self._add_member(f"{self.key}/bucket/{bucket:05d}", index)) >= size

    def _add_full_bucket(self, bucket: int, buckets: int) -> bool:
        """Record a full bucket; True if all are full and this bucket was the last (or is)."""
        return len(self._add_member(f"{self.key}/full", bucket)) == buckets

    def _add_member(self, key: str, member: int) -> set[int]:
        """Add `member` to the set stored at `key` (a conditional write); the set after."""
        while True:
            item = self.backend.table_get(JOINS_TABLE, key)
            members = {int(m) for m in item.value["members"]} if item is not None else set()
            if member in members:
                return members
            members.add(member)
            if self._write(key, {"members": sorted(members)}, item.version if item else None):
                return members

    def _write(self, key: str, value: Mapping[str, Any], version: int | None) -> bool:
        try:
            if version is None:
                self.backend.table_put(JOINS_TABLE, key, value, if_absent=True)
            else:
                self.backend.table_put(JOINS_TABLE, key, value, if_version=version)
            return True
        except ConditionalCheckFailed:
            return False


def exceeds(value: Mapping[str, Any], failures: int) -> bool:
    """Whether `failures` failed children are more than the state tolerates.

    A Parallel tolerates none; a Map its ToleratedFailureCount and/or Percentage (either
    exceeded fails it, as Step Functions counts them).
    """
    if value["kind"] == "parallel":
        return failures > 0
    count, percentage = value.get("tolerated_count"), value.get("tolerated_percentage")
    if count is None and percentage is None:
        return failures > 0
    total = int(value["total"])
    over_count = count is not None and failures > int(count)
    over_share = percentage is not None and failures * 100 > float(percentage) * total
    return over_count or over_share
