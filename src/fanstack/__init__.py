"""fanstack: serverless fan-out you run yourself — topics, queues, functions, an event bus."""

from fanstack.app import App, Queue, Topic
from fanstack.backends.base import Backend
from fanstack.bus import ApiDestination, Archive, Bus, PutEventsResult, Replay, Rule, Target
from fanstack.core.batch import BatchFailure, BatchResult, BatchSuccess
from fanstack.core.errors import (
    BackendNotInstalled,
    BackendUnavailable,
    BatchEntryIdsNotDistinct,
    BatchRequestTooLong,
    CircuitOpen,
    ConditionalCheckFailed,
    EmptyBatchRequest,
    FanstackError,
    FanstackSignal,
    FunctionDoesNotExist,
    FunctionError,
    IdempotencyInProgress,
    InputTransformError,
    InvalidAttributeName,
    InvalidAttributeValue,
    InvalidEventPattern,
    InvalidFilterPolicy,
    InvalidMessageContents,
    InvalidParameter,
    InvalidParameterValue,
    LimitExceeded,
    MessageNotInflight,
    MessageTooLarge,
    MissingParameter,
    PurgeQueueInProgress,
    QueueDoesNotExist,
    QueueNameExists,
    ReceiptHandleIsInvalid,
    ResourceAlreadyExists,
    ResourceNotFound,
    RetryLater,
    TooManyEntriesInBatchRequest,
    TooManyRequests,
    TopicDoesNotExist,
    ValidationException,
)
from fanstack.core.event_pattern import EventPattern, test_event_pattern
from fanstack.core.message import MessageAttribute, ReceivedMessage
from fanstack.core.records import QueueStats
from fanstack.core.retry import RetryPolicy
from fanstack.core.tables import TableItem
from fanstack.core.target_input import InputTransformer
from fanstack.runtime.functions import Function
from fanstack.runtime.records import SQSRecord, records
from fanstack.table import Table
from fanstack.utilities.circuit_breaker import CircuitBreaker
from fanstack.utilities.idempotency import idempotent

__version__ = "0.1.0"

__all__ = [
    "ApiDestination",
    "App",
    "Archive",
    "Backend",
    "BackendNotInstalled",
    "BackendUnavailable",
    "BatchEntryIdsNotDistinct",
    "BatchFailure",
    "BatchRequestTooLong",
    "BatchResult",
    "BatchSuccess",
    "Bus",
    "CircuitBreaker",
    "CircuitOpen",
    "ConditionalCheckFailed",
    "EmptyBatchRequest",
    "EventPattern",
    "FanstackError",
    "FanstackSignal",
    "Function",
    "FunctionDoesNotExist",
    "FunctionError",
    "IdempotencyInProgress",
    "InputTransformError",
    "InputTransformer",
    "InvalidAttributeName",
    "InvalidAttributeValue",
    "InvalidEventPattern",
    "InvalidFilterPolicy",
    "InvalidMessageContents",
    "InvalidParameter",
    "InvalidParameterValue",
    "LimitExceeded",
    "MessageAttribute",
    "MessageNotInflight",
    "MessageTooLarge",
    "MissingParameter",
    "PurgeQueueInProgress",
    "PutEventsResult",
    "Queue",
    "QueueDoesNotExist",
    "QueueNameExists",
    "QueueStats",
    "ReceiptHandleIsInvalid",
    "ReceivedMessage",
    "Replay",
    "ResourceAlreadyExists",
    "ResourceNotFound",
    "RetryLater",
    "RetryPolicy",
    "Rule",
    "SQSRecord",
    "Table",
    "TableItem",
    "Target",
    "TooManyEntriesInBatchRequest",
    "TooManyRequests",
    "Topic",
    "TopicDoesNotExist",
    "ValidationException",
    "idempotent",
    "records",
    "test_event_pattern",
]
