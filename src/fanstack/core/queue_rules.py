"""Rules every queue engine applies the same way, as pure functions: receipt handles, the
visibility timeout range, the purge interval, the receive batch limit, the dead-letter reason."""

from __future__ import annotations

from fanstack.core.errors import (
    FanstackError,
    InvalidParameterValue,
    PurgeQueueInProgress,
    ReceiptHandleIsInvalid,
)
from fanstack.core.specs import MAX_VISIBILITY_TIMEOUT

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
