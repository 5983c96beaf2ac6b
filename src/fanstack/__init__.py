"""fanstack: serverless fan-out you run yourself — topics, filter policies, queues, DLQs."""

from fanstack.app import App, Queue, Topic
from fanstack.backends.base import Backend
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
    InvalidAttributeName,
    InvalidAttributeValue,
    InvalidFilterPolicy,
    InvalidMessageContents,
    InvalidParameter,
    InvalidParameterValue,
    MessageNotInflight,
    MessageTooLarge,
    MissingParameter,
    PurgeQueueInProgress,
    QueueDoesNotExist,
    QueueNameExists,
    ReceiptHandleIsInvalid,
    RetryLater,
    TooManyEntriesInBatchRequest,
    TooManyRequests,
    TopicDoesNotExist,
)
from fanstack.core.message import MessageAttribute, ReceivedMessage
from fanstack.core.records import QueueStats
from fanstack.core.retry import RetryPolicy
from fanstack.core.tables import TableItem
from fanstack.runtime.functions import Function
from fanstack.runtime.records import SQSRecord, records
from fanstack.table import Table
from fanstack.utilities.circuit_breaker import CircuitBreaker
from fanstack.utilities.idempotency import idempotent

__version__ = "0.1.0"

__all__ = [
    "App",
    "Backend",
    "BackendNotInstalled",
    "BackendUnavailable",
    "BatchEntryIdsNotDistinct",
    "BatchFailure",
    "BatchRequestTooLong",
    "BatchResult",
    "BatchSuccess",
    "CircuitBreaker",
    "CircuitOpen",
    "ConditionalCheckFailed",
    "EmptyBatchRequest",
    "FanstackError",
    "FanstackSignal",
    "Function",
    "FunctionDoesNotExist",
    "FunctionError",
    "IdempotencyInProgress",
    "InvalidAttributeName",
    "InvalidAttributeValue",
    "InvalidFilterPolicy",
    "InvalidMessageContents",
    "InvalidParameter",
    "InvalidParameterValue",
    "MessageAttribute",
    "MessageNotInflight",
    "MessageTooLarge",
    "MissingParameter",
    "PurgeQueueInProgress",
    "Queue",
    "QueueDoesNotExist",
    "QueueNameExists",
    "QueueStats",
    "ReceiptHandleIsInvalid",
    "ReceivedMessage",
    "RetryLater",
    "RetryPolicy",
    "SQSRecord",
    "Table",
    "TableItem",
    "TooManyEntriesInBatchRequest",
    "TooManyRequests",
    "Topic",
    "TopicDoesNotExist",
    "idempotent",
    "records",
]
