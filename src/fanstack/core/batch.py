"""Batch requests (SendMessageBatch, PublishBatch, DeleteMessageBatch, ...): shape and results."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fanstack.core.errors import (
    BatchEntryIdsNotDistinct,
    BatchRequestTooLong,
    EmptyBatchRequest,
    FanstackError,
    InvalidBatchEntryId,
    TooManyEntriesInBatchRequest,
)

MAX_BATCH_ENTRIES = 10
_ENTRY_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


@dataclass(frozen=True, slots=True)
class BatchSuccess:
    """An entry that was done; `message_id` for sends and publishes."""

    id: str
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class BatchFailure:
    """An entry that failed, with the AWS error code and a message naming the cause."""

    id: str
    code: str
    message: str
    sender_fault: bool = True


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Per-entry outcome of a batch call: `successful` and `failed`, by entry id."""

    successful: list[BatchSuccess] = field(default_factory=list)
    failed: list[BatchFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no entry failed."""
        return not self.failed

    @classmethod
    def collect(
        cls, ids: Sequence[str], outcomes: Iterable[str | FanstackError | None]
    ) -> BatchResult:
        """Pair entry ids with index-aligned backend results."""
        result = cls()
        for entry_id, outcome in zip(ids, outcomes, strict=True):
            if isinstance(outcome, FanstackError):
                result.failed.append(
                    BatchFailure(entry_id, outcome.code, str(outcome), outcome.sender_fault)
                )
            else:
                result.successful.append(BatchSuccess(entry_id, outcome))
        return result


def entry_ids(entries: Sequence[Any]) -> list[str]:
    """Validate the batch as a whole and return each entry's id (its index if none given)."""
    if not entries:
        raise EmptyBatchRequest("the batch has no entries; send 1 to 10")
    if len(entries) > MAX_BATCH_ENTRIES:
        raise TooManyEntriesInBatchRequest(
            f"the batch has {len(entries)} entries; the limit is {MAX_BATCH_ENTRIES}"
        )
    ids = []
    for index, entry in enumerate(entries):
        entry_id = str(entry.get("id", index)) if hasattr(entry, "get") else str(index)
        if not _ENTRY_ID.match(entry_id):
            raise InvalidBatchEntryId(
                f"batch entry id {entry_id!r} must be 1-80 letters, digits, '-' or '_'"
            )
        ids.append(entry_id)
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise BatchEntryIdsNotDistinct(f"batch entry id {duplicate!r} is used more than once")
    return ids


def check_batch_size(sizes: Iterable[int], *, max_bytes: int) -> None:
    """Raise `BatchRequestTooLong` when entries add up to more than `max_bytes`.

    The limits are `QUEUE_BATCH_MAX_BYTES` (1 MiB) and `TOPIC_BATCH_MAX_BYTES` (256 KiB).
    """
    total = sum(sizes)
    if total > max_bytes:
        raise BatchRequestTooLong(
            f"the batch is {total} bytes in all; the limit is {max_bytes} bytes"
        )
