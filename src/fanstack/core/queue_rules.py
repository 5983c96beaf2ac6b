"""Rules every queue engine applies the same way, as pure functions: what a send must satisfy,
receipt handles and their errors, the visibility timeout range, the purge interval, the receive
batch limit, expiry, when a message is dead-lettered and what it carries, FIFO eligibility.
Redrive takes dead letters in the order they went into the DLQ (each engine keeps that order).

A backend decides with these and only stores the outcome, so the backends cannot drift."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator

from fanstack.core.errors import (
    FanstackError,
    InvalidParameterValue,
    MissingParameter,
    PurgeQueueInProgress,
    ReceiptHandleIsInvalid,
)
from fanstack.core.fanout import content_hash
from fanstack.core.message import OutgoingMessage, check_message, check_ordering_id
from fanstack.core.specs import MAX_DELAY, MAX_VISIBILITY_TIMEOUT, QueueSpec

MAX_RECEIVE_BATCH = 10  # messages per ReceiveMessage
PURGE_INTERVAL = 60  # seconds between purges of one queue
MAX_EXCEEDED_REASON = "exceeded max_receive_count"  # a dead-letter with no recorded failure


def parse_receipt_handle(handle: str) -> tuple[int, str] | FanstackError:
    """(message sequence, receive token) from a `seq:token` handle, or the error to return."""
    seq, _, token = handle.partition(":") if isinstance(handle, str) else ("", "", "")
    if not seq.isdigit() or len(token) != 16:
        return ReceiptHandleIsInvalid(f"receipt handle {handle!r} is not one fanstack issued")
    return int(seq), token


def receipt_handle_expired(handle: str) -> InvalidParameterValue:
    """The error for a FIFO receipt handle whose visibility timeout ran out (as SQS answers)."""
    return InvalidParameterValue(
        f"receipt handle {handle!r} is invalid: the receipt handle has expired "
        "(its visibility timeout ran out)"
    )


def visibility_timeout_error(timeout: int) -> InvalidParameterValue | None:
    """The error for a visibility timeout outside SQS's 0 - 43 200 s, or None."""
    if 0 <= timeout <= MAX_VISIBILITY_TIMEOUT:
        return None
    return InvalidParameterValue(
        f"visibility_timeout is {timeout}; it must be between 0 and {MAX_VISIBILITY_TIMEOUT}"
    )


def check_purge_interval(queue: str, last_purge: float | None, now: float) -> None:
    """Raise PurgeQueueInProgress within 60 s of the queue's last purge."""
    if last_purge is not None and now - last_purge < PURGE_INTERVAL:
        raise PurgeQueueInProgress(
            f"queue {queue!r} was purged {now - last_purge:.0f} s ago; "
            f"only one purge per {PURGE_INTERVAL} s is allowed"
        )


def check_send(spec: QueueSpec, message: OutgoingMessage) -> OutgoingMessage:
    """The message as it is stored in `spec`'s queue, or the error a SendMessage gets.

    Checks the body, attributes, delay and ordering ids against the queue's rules; a FIFO
    message gets its content-based deduplication id here.
    """
    check_message(
        message.body,
        message.attributes,
        max_bytes=spec.max_message_size,
        where=f"queue {spec.name!r}",
    )
    delay = message.delay_seconds
    if delay is not None and not (0 <= delay <= MAX_DELAY):
        raise InvalidParameterValue(f"delay is {delay}; it must be between 0 and {MAX_DELAY}")
    if message.group_id is not None:  # standard queues take a group id too (fair queues)
        check_ordering_id("group_id", message.group_id)
    if message.deduplication_id is not None:
        check_ordering_id("deduplication_id", message.deduplication_id)
    if not spec.fifo:
        if message.deduplication_id is not None:
            raise InvalidParameterValue(
                f"queue {spec.name!r} is not FIFO: deduplication_id is only for FIFO queues"
            )
        return message
    if delay:
        raise InvalidParameterValue(
            f"FIFO queue {spec.name!r} takes a delay per queue only, not per message "
            f"(got {delay}; only 0 is accepted)"
        )
    if message.group_id is None:
        raise MissingParameter(f"FIFO queue {spec.name!r} needs a group_id on every message")
    if message.deduplication_id is None and not spec.content_based_deduplication:
        raise InvalidParameterValue(
            f"FIFO queue {spec.name!r} needs a deduplication_id "
            "(or content_based_deduplication=True on the queue)"
        )
    return dataclasses.replace(
        message,
        delay_seconds=None,  # a per-message 0 leaves the queue's delay in force
        deduplication_id=message.deduplication_id or content_hash(message.body),
    )


# -- receiving and dead-letters: the same decisions in every backend ---------------------------


def is_expired(stored_at: float, retention: int, now: float) -> bool:
    """A message stored (sent, or redriven) at `stored_at` is past the queue's retention."""
    return stored_at + retention <= now


def log_expired(log: logging.Logger, queue: str, count: int) -> None:
    """The one line an expiry writes (a warning: messages were lost to retention)."""
    log.warning("queue %s: %d message(s) expired past the retention period", queue, count)


def dead_letter_due(spec: QueueSpec, receives: int) -> bool:
    """A message already received `receives` times goes to the DLQ instead of a new receive."""
    return spec.max_receive_count is not None and receives >= spec.max_receive_count


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """What a dead-lettered message carries into its DLQ besides its body and attributes."""

    failure: str
    lost_receives: int


def dead_letter(*, failure: str | None, receive_count: int, failed_receives: int) -> DeadLetter:
    """The DLQ record: the last failure (or why none), and the receives that never settled."""
    return DeadLetter(
        failure=failure or MAX_EXCEEDED_REASON,
        lost_receives=max(receive_count - failed_receives, 0),
    )


def stale_handle(handle: str) -> ReceiptHandleIsInvalid:
    """The error for a receipt handle that is no longer the message's latest."""
    return ReceiptHandleIsInvalid(
        f"receipt handle {handle} is stale or belongs to another queue "
        "(the message was received again or moved)"
    )


def message_gone(handle: str) -> ReceiptHandleIsInvalid:
    """The error for a visibility change on a message that was deleted."""
    return ReceiptHandleIsInvalid(f"receipt handle {handle}: the message is gone")


@dataclasses.dataclass(frozen=True, slots=True)
class FifoCandidate:
    """A FIFO message as eligibility sees it."""

    position: tuple[int, ...]  # order in the queue (a sequence, or partition and sequence)
    group_id: str | None
    visible: bool  # False: in flight (or delayed)


def fifo_eligible(messages: Iterable[FifoCandidate]) -> Iterator[FifoCandidate]:
    """The messages a FIFO receive may take, in order: none of a group with one not visible.

    `messages` come in queue order; a group whose earliest message is in flight is blocked, so
    its later messages wait (SQS's in-flight blocking); several of one group may go together.
    """
    blocked: set[str | None] = set()
    for message in messages:
        if message.group_id in blocked:
            continue
        if not message.visible:
            blocked.add(message.group_id)
            continue
        yield message
