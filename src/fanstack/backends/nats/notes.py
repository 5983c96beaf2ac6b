"""What fanstack keeps beside the streams, on JetStream key-value, for the rare paths.

- **Notes** (`<namespace>_NOTES`, key `n.<partition>.<sequence>.<consumer>`): a stored
  message's history in one queue that JetStream does not keep — its latest delivery count once
  it was delivered again, its first receive time, the last failure reported for it, how many
  receives failed and how many were handed back uncounted. One per consumer: a topic message
  is one stored message that each subscribed queue's consumer receives on its own. Written
  only when a message is redelivered, fails, or is handed back; the common path (receive, then
  delete within the lease) writes none.
- **Counters** (`<namespace>_COUNTS`, key `<queue>`): messages expired and dead-lettered.
- **Deduplication records** (`<namespace>_DEDUP`): FIFO deduplication ids with the first
  message's id and the end of their interval on the fanstack clock.
- **FIFO holders** (in the notes bucket, key `hold.<queue>`): which process serves a FIFO queue.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from typing import Any

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError

from fanstack.backends.nats.layout import token
from fanstack.core.errors import BackendUnavailable
from fanstack.core.specs import DEDUPLICATION_INTERVAL, MAX_RETENTION

CAS_ATTEMPTS = 100
NOTES_AGE = MAX_RETENTION + 86_400  # a note outlives any message it describes
DEDUP_AGE = 2 * DEDUPLICATION_INTERVAL


async def open_bucket(js: Any, name: str, replicas: int, max_age: float | None = None) -> Any:
    """A key-value bucket of the namespace, created on first use (one value per key)."""
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=name, history=1, storage=StorageType.FILE, replicas=replicas, ttl=max_age
            )
        )


class Bucket:
    """One key-value bucket, created on first use, with compare-and-set updates of JSON."""

    def __init__(self, js: Any, name: str, replicas: int, max_age: float | None = None) -> None:
        self._js = js
        self.name = name
        self.replicas = replicas
        self.max_age = max_age
        self.kv: Any = None

    async def open(self) -> None:
        self.kv = await open_bucket(self._js, self.name, self.replicas, self.max_age)

    async def get(self, key: str) -> tuple[dict[str, Any] | None, int | None]:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None, None
        return (json.loads(entry.value) if entry.value else None), entry.revision

    async def update(
        self, key: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Apply `change` to the value atomically (compare-and-set); None from it keeps it."""
        for _ in range(CAS_ATTEMPTS):
            current, revision = await self.get(key)
            new = change(current)
            if new is None:
                return current
            data = json.dumps(new, separators=(",", ":")).encode()
            try:
                if revision is None:
                    await self.kv.create(key, data)
                else:
                    await self.kv.update(key, data, last=revision)
            except KeyWrongLastSequenceError:
                continue
            return new
        raise BackendUnavailable(f"NATS: {self.name} key {key} changed too often to update")

    async def delete(self, key: str) -> None:
        with contextlib.suppress(KeyNotFoundError):
            await self.kv.delete(key)


def note_key(partition: int, sequence: int, consumer: str) -> str:
    """The note of one stored message in one queue (its consumer's)."""
    return f"n.{partition}.{sequence}.{consumer}"


def dedup_key(scope: str, dedup_id: str) -> str:
    kind, _, name = scope.partition(":")
    digest = hashlib.sha256(dedup_id.encode()).hexdigest()[:40]
    return f"{kind}.{token(name)}.{digest}"


async def remember(
    dedup: Bucket, scope: str, dedup_id: str, message_id: str, now: float
) -> tuple[str, int]:
    """Record a deduplication id; (the first message's id, the record's generation).

    The id returned is `message_id` unless the id was seen within the interval. The generation
    changes each time the id starts a new interval, so a store made under it can carry a
    JetStream message id that deduplicates retries of the same store and nothing else.
    """
    seen: dict[str, Any] = {}

    def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
        if current is not None and current["until"] > now:
            seen.update(current)
            return None
        generation = 1 if current is None else current["generation"] + 1
        record = {"id": message_id, "until": now + DEDUPLICATION_INTERVAL}
        record["generation"] = generation
        seen.update(record)
        return record

    await dedup.update(dedup_key(scope, dedup_id), change)
    return seen["id"], seen["generation"]


def noting(
    *,
    delivered: int = 0,
    first: float | None = None,
    failure: str | None = None,
    uncount: bool = False,
) -> Callable[[dict[str, Any] | None], dict[str, Any]]:
    """The change a note takes: a delivery seen, its first receive, a failure, a hand-back."""

    def change(current: dict[str, Any] | None) -> dict[str, Any]:
        note = dict(current or {})
        if delivered:
            note["dc"] = max(note.get("dc", 0), delivered)
        if first is not None:
            note.setdefault("first", first)
        if failure is not None:
            note["failure"] = failure
            note["failed"] = note.get("failed", 0) + 1
        if uncount:
            note["uncounted"] = note.get("uncounted", 0) + 1
        return note

    return change
