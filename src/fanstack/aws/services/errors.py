"""fanstack's errors as a service's modeled errors, where a request leaves fanstack.

A `FanstackError` names what went wrong by its class (`QueueDoesNotExist`, `QueueNameExists`)
and carries the code a user knows. The service's model has an error shape of that name (or
code): the wire error takes the shape's name, so each SDK raises the exception class it would
against AWS. SQS answers its query-compatible clients with the codes of its query API as well
(`x-amzn-query-error`); botocore's current model no longer lists them, so they are kept here.
"""

from __future__ import annotations

import functools

from botocore.model import ServiceModel

from fanstack.aws.protocols.errors import AwsError
from fanstack.core.errors import FanstackError

# SQS error shape -> the code its query API (and `x-amzn-query-error`) reports.
SQS_QUERY_CODES = {
    "QueueDoesNotExist": "AWS.SimpleQueueService.NonExistentQueue",
    "QueueNameExists": "QueueAlreadyExists",
    "QueueDeletedRecently": "AWS.SimpleQueueService.QueueDeletedRecently",
    "MessageNotInflight": "AWS.SimpleQueueService.MessageNotInflight",
    "PurgeQueueInProgress": "AWS.SimpleQueueService.PurgeQueueInProgress",
    "BatchEntryIdsNotDistinct": "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    "BatchRequestTooLong": "AWS.SimpleQueueService.BatchRequestTooLong",
    "EmptyBatchRequest": "AWS.SimpleQueueService.EmptyBatchRequest",
    "InvalidBatchEntryId": "AWS.SimpleQueueService.InvalidBatchEntryId",
    "TooManyEntriesInBatchRequest": "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
    "UnsupportedOperation": "AWS.SimpleQueueService.UnsupportedOperation",
}
QUERY_CODES = {"sqs": SQS_QUERY_CODES}


def to_aws_error(model: ServiceModel, error: FanstackError) -> AwsError:
    """The wire error for `error` in the service `model` describes."""
    if isinstance(error, AwsError):
        return error
    names = set(model.shape_names)
    candidates = [cls.__name__ for cls in type(error).__mro__ if issubclass(cls, FanstackError)]
    # A code the model gives an exception shape of another name (SNS: NotFound is the
    # NotFoundException shape, answered 404) is that shape.
    by_code = _exceptions_by_code(model)
    for name in [*candidates, error.code, by_code.get(error.code, "")]:
        if name in names and model.shape_for(name).metadata.get("exception"):
            modeled = model.shape_for(name).metadata.get("error") or {}
            codes = QUERY_CODES.get(model.service_name, {})
            return AwsError(
                name,
                str(error),
                status=int(modeled.get("httpStatusCode", 400)),
                sender_fault=bool(modeled.get("senderFault", error.sender_fault)),
                query_code=codes.get(name) or modeled.get("code") or name,
            )
    status = 400 if error.sender_fault else 500
    return AwsError(
        error.code, str(error), status=status, sender_fault=error.sender_fault,
        query_code=error.code,
    )  # fmt: skip


@functools.cache
def _exceptions_by_code(model: ServiceModel) -> dict[str, str]:
    """The exception shapes of `model` by the error code they are answered with."""
    found = {}
    for name in model.shape_names:
        shape = model.shape_for(name)
        if shape.metadata.get("exception"):
            code = (shape.metadata.get("error") or {}).get("code")
            if code and code != name:
                found[str(code)] = name
    return found
