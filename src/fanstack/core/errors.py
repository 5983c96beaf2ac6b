"""The error hierarchy: every error fanstack raises derives from `FanstackError`.

Each class carries `code`, the AWS error code a user of SNS/SQS already knows, and a message that
names the offending value and the limit it broke.
"""

from __future__ import annotations


class FanstackError(Exception):
    """Root of every error fanstack raises on purpose."""

    code = "InternalError"
    sender_fault = False


class InvalidParameterValue(FanstackError):
    """A value is outside what the API accepts (range, type, format)."""

    code = "InvalidParameterValue"
    sender_fault = True


class InvalidParameter(InvalidParameterValue):
    """An SNS parameter is invalid (SNS spells this code differently from SQS)."""

    code = "InvalidParameter"


class InvalidFilterPolicy(InvalidParameter):
    """A filter policy is malformed or exceeds a limit; names the key and the reason."""


class ValidationException(InvalidParameterValue):
    """An EventBridge request parameter is invalid (EventBridge's code for a bad value)."""

    code = "ValidationException"


class InvalidEventPattern(ValidationException):
    """An event pattern is malformed or exceeds a limit; names the key and the reason."""

    code = "InvalidEventPatternException"


class InputTransformError(ValidationException):
    """A target's input (constant, path or transformer) is invalid, or failed to render."""


class LimitExceeded(ValidationException):
    """A quota of the event bus is exceeded (targets per rule, rules per bus)."""

    code = "LimitExceededException"


class ResourceNotFound(FanstackError):
    """A bus, rule, archive or replay of that name does not exist."""

    code = "ResourceNotFoundException"
    sender_fault = True


class ResourceAlreadyExists(FanstackError):
    """A bus, rule, archive or replay of that name already exists."""

    code = "ResourceAlreadyExistsException"
    sender_fault = True


class InvalidDefinition(ValidationException):
    """A state machine definition is not valid Amazon States Language; names the state and field."""

    code = "InvalidDefinition"


class ExecutionAlreadyExists(FanstackError):
    """An execution of that name already ran (or runs) with a different input."""

    code = "ExecutionAlreadyExists"
    sender_fault = True


class ExecutionDoesNotExist(FanstackError):
    """No execution has this name or ARN."""

    code = "ExecutionDoesNotExist"
    sender_fault = True


class StateMachineDoesNotExist(FanstackError):
    """No state machine (workflow) has this name or ARN."""

    code = "StateMachineDoesNotExist"
    sender_fault = True


class InvalidToken(FanstackError):
    """A task token is malformed or names no waiting task."""

    code = "InvalidToken"
    sender_fault = True


class TaskTimedOut(FanstackError):
    """A task token's task already ended (timed out, or completed)."""

    code = "TaskTimedOut"
    sender_fault = True


class InvalidAttributeName(InvalidParameterValue):
    """A message attribute name is not allowed."""

    code = "InvalidAttributeName"


class InvalidAttributeValue(InvalidParameterValue):
    """A message attribute value does not fit its data type."""

    code = "InvalidParameterValue"


class InvalidMessageContents(InvalidParameterValue):
    """The body holds characters SQS does not allow."""

    code = "InvalidMessageContents"


class MessageTooLarge(InvalidParameterValue):
    """Body plus attributes exceed the size limit of the queue or topic.

    AWS answers `InvalidParameterValue` (SNS: `InvalidParameter`); fanstack uses SQS's code for
    both, as it does for the other errors the two services share.
    """

    code = "InvalidParameterValue"


class MissingParameter(InvalidParameterValue):
    """A required parameter (a FIFO message group id, a message body) is absent or empty."""

    code = "MissingParameter"


class BatchRequestError(InvalidParameterValue):
    """A batch request is malformed as a whole; nothing in it was done."""


class EmptyBatchRequest(BatchRequestError):
    """A batch request with no entries."""

    code = "EmptyBatchRequest"


class TooManyEntriesInBatchRequest(BatchRequestError):
    """A batch request with more than 10 entries."""

    code = "TooManyEntriesInBatchRequest"


class BatchEntryIdsNotDistinct(BatchRequestError):
    """Two entries of one batch share an id."""

    code = "BatchEntryIdsNotDistinct"


class BatchRequestTooLong(BatchRequestError):
    """The entries of one batch add up to more than its limit (queues 1 MiB, topics 256 KiB)."""

    code = "BatchRequestTooLong"


class InvalidBatchEntryId(BatchRequestError):
    """A batch entry id is not 1-80 letters, digits, '-' or '_'."""

    code = "AWS.SimpleQueueService.InvalidBatchEntryId"  # SNS spells it InvalidBatchEntryId


class QueueDoesNotExist(FanstackError):
    """No queue has this name."""

    code = "AWS.SimpleQueueService.NonExistentQueue"
    sender_fault = True

    def __init__(self, name: str) -> None:
        super().__init__(f"queue {name!r} does not exist")
        self.name = name


class TopicDoesNotExist(FanstackError):
    """No topic has this name."""

    code = "NotFound"
    sender_fault = True

    def __init__(self, name: str) -> None:
        super().__init__(f"topic {name!r} does not exist")
        self.name = name


class QueueInUse(FanstackError):
    """A queue to delete is still referenced: a subscription, a redrive policy or a consumer
    points at it. Names each reference; `force` deletes it anyway."""

    code = "ResourceInUseException"
    sender_fault = True


class SubscriptionDoesNotExist(FanstackError):
    """A topic has no subscription for this queue."""

    code = "NotFound"
    sender_fault = True

    def __init__(self, topic: str, queue: str) -> None:
        super().__init__(f"topic {topic!r} has no subscription for queue {queue!r}")
        self.topic = topic
        self.queue = queue


class AppImportFailed(FanstackError):
    """An app module could not be imported: names its file, line and the error raised there."""

    code = "InvalidApp"
    sender_fault = True


class QueueNameExists(FanstackError):
    """A queue of this name exists with different attributes."""

    code = "QueueAlreadyExists"
    sender_fault = True


class ReceiptHandleIsInvalid(FanstackError):
    """The receipt handle is malformed, belongs to another queue, or went stale."""

    code = "ReceiptHandleIsInvalid"
    sender_fault = True


class MessageNotInflight(FanstackError):
    """A FIFO message is not in flight (its timeout ran out), so its visibility cannot change."""

    code = "AWS.SimpleQueueService.MessageNotInflight"
    sender_fault = True


class PurgeQueueInProgress(FanstackError):
    """The queue was purged less than 60 seconds ago."""

    code = "AWS.SimpleQueueService.PurgeQueueInProgress"
    sender_fault = True


class BackendUnavailable(FanstackError):
    """The storage backend cannot be reached or cannot store right now."""

    code = "ServiceUnavailable"


class UnsupportedServer(FanstackError):
    """The backend's server lacks a feature fanstack relies on; nothing was changed."""

    code = "UnsupportedServer"


class IncompatibleStore(FanstackError):
    """The store was written by a layout this version does not read; nothing was changed."""

    code = "IncompatibleStore"


class BackendNotInstalled(FanstackError):
    """A backend was asked for whose optional driver is not installed."""

    code = "BackendNotInstalled"


class ConditionalCheckFailed(FanstackError):
    """A conditional write to a table did not hold (the item exists, or its version moved)."""

    code = "ConditionalCheckFailedException"
    sender_fault = True


class IdempotencyInProgress(FanstackError):
    """Another invocation with the same idempotency key is running right now."""

    code = "IdempotencyAlreadyInProgress"


class FunctionError(FanstackError):
    """A function's handler failed; carries Lambda's `errorType`, `errorMessage`, `stackTrace`."""

    code = "Unhandled"

    def __init__(self, error_type: str, error_message: str, stack_trace: list[str]) -> None:
        super().__init__(f"{error_type}: {error_message}")
        self.error_type = error_type
        self.error_message = error_message
        self.stack_trace = stack_trace

    def to_dict(self) -> dict[str, object]:
        """Lambda's error payload shape."""
        return {
            "errorType": self.error_type,
            "errorMessage": self.error_message,
            "stackTrace": self.stack_trace,
        }


class FunctionDoesNotExist(FanstackError):
    """No function of this name is declared."""

    code = "ResourceNotFoundException"
    sender_fault = True


class TooManyRequests(FanstackError):
    """A function is at its concurrency limit; the invocation was throttled."""

    code = "TooManyRequestsException"
    sender_fault = True


# -- control-flow signals: not errors, so `except FanstackError` never swallows them -----------


class FanstackSignal(Exception):
    """Root of control-flow signals the runtime acts on (retry later, leave in the queue)."""


class RetryLater(FanstackSignal):
    """Put the messages back without counting this attempt; try again after `delay` seconds."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {delay:.1f} s")
        self.delay = delay


class CircuitOpen(RetryLater):
    """A circuit breaker is open: the dependency is failing, so do not burn receive counts."""
