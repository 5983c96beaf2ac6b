"""`AwsError`: an error as AWS reports it on the wire, whatever the protocol.

Services raise it (or let the parser raise it); each protocol's `serialize_error` renders it in
that protocol's exact shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fanstack.core.errors import FanstackError


class AwsError(FanstackError):
    """An AWS error code and message, with the HTTP status and fault side AWS answers with.

    `code` may be the wire code or the name of the service's modeled error shape (SNS's
    `NotFoundException` is sent as `NotFound`); `status` defaults to the shape's
    `httpStatusCode`, else 400.

    `query_code` is the code a query-compatible JSON service (SQS) also reports in its
    `x-amzn-query-error` header and over the query protocol, e.g.
    `AWS.SimpleQueueService.NonExistentQueue`; `fields` are further members of the error's
    modeled shape (rendered beside the message).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        sender_fault: bool = True,
        query_code: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else 400
        self.status_given = status is not None
        self.sender_fault = sender_fault
        self.query_code = query_code
        self.fields: Mapping[str, Any] = dict(fields or {})

    @property
    def fault(self) -> str:
        """`Sender` or `Receiver`, as the query protocol's `<Type>` and `x-amzn-query-error` say."""
        return "Sender" if self.sender_fault else "Receiver"


def serialization_error(message: str) -> AwsError:
    """A request body or value that cannot be read as the operation's input shape."""
    return AwsError("SerializationException", message)
