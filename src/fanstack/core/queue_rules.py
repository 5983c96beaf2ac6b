"""Rules every queue engine applies the same way, as pure functions: what a send must satisfy,
receipt handles, the visibility timeout range, the purge interval, the receive batch limit, the
dead-letter reason."""

from __future__ import annotations

import dataclasses

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
