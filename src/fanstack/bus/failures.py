"""Why a delivery to a target failed: EventBridge's DLQ error code, and whether to retry."""

from __future__ import annotations

from fanstack.core.errors import FanstackError, QueueDoesNotExist, TopicDoesNotExist


class DeliveryFailed(Exception):
    """A delivery that did not happen: an EventBridge DLQ error code, and whether to retry."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


def classify(error: FanstackError) -> DeliveryFailed:
    """The DLQ error code of a store error, and whether retrying may help.

    A missing target is not retried (EventBridge: "missing resources skip retries"), nor is a
    message the target rejects as invalid; anything else (the store unavailable) is.
    """
    if isinstance(error, QueueDoesNotExist | TopicDoesNotExist):
        return DeliveryFailed("NO_RESOURCE", str(error), retryable=False)
    if error.sender_fault:
        return DeliveryFailed("INVALID_PARAMETER", str(error), retryable=False)
    return DeliveryFailed("INTERNAL_ERROR", str(error), retryable=True)
