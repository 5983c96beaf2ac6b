"""fanstack: serverless fan-out you run yourself — topics, filter policies, queues, DLQs."""

from fanstack.app import App, Queue, Topic
from fanstack.backends.base import Backend, QueueStats
from fanstack.core.batch import BatchFailure, BatchResult, BatchSuccess
from fanstack.core.errors import (
    BackendNotInstalled,
    BackendUnavailable,
    BatchEntryIdsNotDistinct,
    BatchRequestTooLong,
    EmptyBatchRequest,
    FanstackError,
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
    TooManyEntriesInBatchRequest,
    TopicDoesNotExist,
)
from fanstack.core.message import MessageAttribute, ReceivedMessage

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
    "EmptyBatchRequest",
    "FanstackError",
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
    "TooManyEntriesInBatchRequest",
    "Topic",
    "TopicDoesNotExist",
]
