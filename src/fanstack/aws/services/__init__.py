"""The AWS services fanstack answers for, one module a service.

Each maps its operations (botocore's names; the model's parameters in, the model's output out)
onto fanstack's resources, in `OPERATIONS`; `SERVICES` names them by botocore's service name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.services import (
    events,
    lambda_invoke,
    scheduler,
    sns,
    sqs,
    sqs_messaging,
    stepfunctions,
    sts,
)

Operation = Callable[[CallContext, Mapping[str, Any]], dict[str, Any]]

SERVICES: dict[str, Mapping[str, Operation]] = {
    "sns": sns.OPERATIONS,
    "sqs": sqs.OPERATIONS,
    "events": events.OPERATIONS,
    "stepfunctions": stepfunctions.OPERATIONS,
    "lambda": lambda_invoke.OPERATIONS,
    "sts": sts.OPERATIONS,
    "scheduler": scheduler.OPERATIONS,
}

# Operations that only store or read messages: answered on the event loop when the backend's
# writes do not wait (see `AwsEndpoint._at_once`), unless their check says this call waits.
ANSWERED_AT_ONCE: dict[str, frozenset[str]] = {
    "sqs": frozenset(
        {
            "SendMessage",
            "SendMessageBatch",
            "ReceiveMessage",
            "DeleteMessage",
            "DeleteMessageBatch",
            "ChangeMessageVisibility",
            "ChangeMessageVisibilityBatch",
            "GetQueueUrl",
            "GetQueueAttributes",
        }
    ),
    "sns": frozenset({"Publish", "PublishBatch"}),
    "sts": frozenset({"GetCallerIdentity"}),
}
WAITING_CHECKS: dict[tuple[str, str], Callable[[CallContext, Mapping[str, Any]], bool]] = {
    ("sqs", "ReceiveMessage"): sqs_messaging.receive_waits,
}
