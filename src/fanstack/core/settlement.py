"""Settling a batch after its invocation: what is deleted, what is retried and when, what is
handed back without counting. Pure policy; the dispatcher applies it to the backend.

- Success deletes the batch, except records a handler named in `batchItemFailures` (when the
  consumer reports item failures); an error fails the whole batch.
- A failure is retried after the consumer's backoff (none once the queue will dead-letter it),
  keeping the reason for the dead-letter queue.
- A retry-later signal, or an invocation stopped by the operator, hands messages back without
  counting the receive; a message that has asked for longer than the consumer allows
  (`deferral_expired`) fails instead.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fanstack.core.message import ReceivedMessage
from fanstack.core.outcome import Outcome
from fanstack.core.retry import RetryPolicy

REPORTED_FAILURE = "reported in batchItemFailures"


@dataclass(frozen=True, slots=True)
class Retry:
    """A failed message: visible again after `delay` seconds, `reason` kept for its DLQ."""

    receipt_handle: str
    delay: int
    reason: str


@dataclass(frozen=True, slots=True)
class Settlement:
    """What to do with each message of a settled batch."""

    delete: tuple[str, ...] = ()  # receipt handles
    retry: tuple[Retry, ...] = ()
    hand_back: tuple[tuple[str, int], ...] = ()  # (receipt handle, delay): receive not counted
    label: str = "success"  # success | partial | error | retry-later | interrupted

    @property
    def failed(self) -> int:
        """How many messages failed (and will count a receive)."""
        return len(self.retry)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerPolicy:
    """The settling rules of one consumer of one queue."""

    report_item_failures: bool
    retry: RetryPolicy
    max_receive_count: int | None
    retry_later_limit: float


def settle(
    batch: Sequence[ReceivedMessage],
    outcome: Outcome,
    policy: ConsumerPolicy,
    *,
    interrupted: bool = False,
    deferral_expired: Collection[str] = (),
    rng: random.Random | None = None,
) -> Settlement:
    """Decide every message's fate from the invocation's `outcome`."""
    if interrupted and not outcome.ok:
        # Stopped by the operator, not failed: the receive does not count.
        hand_back = tuple((m.receipt_handle, 0) for m in batch)
        return Settlement(hand_back=hand_back, label="interrupted")
    if outcome.signal is not None:
        return _retry_later(batch, outcome, policy, deferral_expired, rng)
    ids = [m.id for m in batch]
    if outcome.ok:
        failed = failed_item_ids(outcome.result, ids) if policy.report_item_failures else set()
        reason = REPORTED_FAILURE
    else:
        failed = set(ids)
        reason = outcome.error_summary
    label = "success" if not failed else ("partial" if outcome.ok else "error")
    return Settlement(
        delete=tuple(m.receipt_handle for m in batch if m.id not in failed),
        retry=tuple(_retry(m, reason, policy, rng) for m in batch if m.id in failed),
        label=label,
    )


def _retry_later(
    batch: Sequence[ReceivedMessage],
    outcome: Outcome,
    policy: ConsumerPolicy,
    deferral_expired: Collection[str],
    rng: random.Random | None,
) -> Settlement:
    delay = math.ceil(outcome.delay)
    limit = policy.retry_later_limit
    reason = f"{outcome.error_summary}\n(retried later for more than {limit:g} s)"
    return Settlement(
        hand_back=tuple((m.receipt_handle, delay) for m in batch if m.id not in deferral_expired),
        retry=tuple(_retry(m, reason, policy, rng) for m in batch if m.id in deferral_expired),
        label="retry-later" if len(deferral_expired) < len(batch) else "error",
    )


def _retry(
    message: ReceivedMessage, reason: str, policy: ConsumerPolicy, rng: random.Random | None
) -> Retry:
    return Retry(message.receipt_handle, retry_delay(message, policy, rng), reason)


def retry_delay(
    message: ReceivedMessage, policy: ConsumerPolicy, rng: random.Random | None = None
) -> int:
    """Backoff before the next attempt; none once the queue will dead-letter the message."""
    limit = policy.max_receive_count
    if limit is not None and message.receive_count >= limit:
        return 0
    return math.ceil(policy.retry.delay(message.receive_count, rng))


def failed_item_ids(response: Any, batch_ids: Sequence[str]) -> set[str]:
    """The ids a handler reported in `batchItemFailures`, as Lambda reads them.

    No `batchItemFailures` key, `None` or an empty list means success; a list naming an id that
    is not in the batch, or a malformed entry, fails the whole batch.
    """
    if not isinstance(response, Mapping) or "batchItemFailures" not in response:
        return set()
    failures = response["batchItemFailures"]
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(batch_ids)
    known = set(batch_ids)
    failed: set[str] = set()
    for failure in failures:
        item = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(item, str) or item not in known:
            return set(batch_ids)
        failed.add(item)
    return failed
