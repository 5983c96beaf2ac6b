"""Delivering documents to endpoints: a POST to an HTTP/S endpoint, or a function's queue.

An HTTP/S delivery is one POST within `HTTP_TIMEOUT`; a 2xx answer delivers it, anything else
(another status, a redirect, a timeout, a refused connection) is a failure to retry. A Lambda
delivery stores an asynchronous invocation in the function's queue, as `invoke_async` and the
event bus do; a function that does not exist is a client error, not retried (as in SNS).

HTTP goes through the standard library (`urllib`), as the event bus's API destinations do:
fanstack's runtime dependencies do not include an HTTP client.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.errors import FanstackError, QueueDoesNotExist
from fanstack.core.functions import ASYNC_QUEUE_PREFIX
from fanstack.core.message import OutgoingMessage
from fanstack.notifications.messages import http_request, lambda_event
from fanstack.notifications.subscriptions import EndpointSubscription

HTTP_TIMEOUT = 15.0  # seconds SNS waits for an HTTP/S endpoint's answer


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """Why a delivery failed (`code` as a DLQ message's `ErrorCode`), and whether to retry."""

    code: str
    message: str
    retryable: bool = True


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """SNS does not follow redirects: a 3xx answer is a failed delivery."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def post(subscription: EndpointSubscription, document: dict[str, Any]) -> DeliveryFailure | None:
    """POST a document to the subscription's URL; None when the endpoint answered 2xx."""
    body, headers = http_request(subscription, document)
    request = urllib.request.Request(subscription.endpoint, data=body, headers=headers)
    try:
        with _OPENER.open(request, timeout=HTTP_TIMEOUT) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
        error.close()
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return DeliveryFailure("EndpointUnreachable", f"{subscription.endpoint}: {reason}")
    if 200 <= status < 300:
        return None
    return DeliveryFailure("EndpointError", f"{subscription.endpoint} answered HTTP {status}")


def invoke_function(
    backend: Backend,
    subscription: EndpointSubscription,
    documents: Sequence[dict[str, Any]],
    now: float,
) -> list[DeliveryFailure | None]:
    """Queue one asynchronous invocation per document, durably; a result per document."""
    queue = ASYNC_QUEUE_PREFIX + subscription.function
    try:
        backend.get_queue(queue)
    except QueueDoesNotExist:
        missing = DeliveryFailure(
            "ResourceNotFound", f"function {subscription.function!r} does not exist", False
        )
        return [missing for _ in documents]
    messages = []
    for document in documents:
        request_id = str(uuid.uuid4())
        invocation = {
            "requestId": request_id,
            "payload": lambda_event(subscription, document),
            "enqueuedAt": now,
        }
        messages.append(OutgoingMessage(id=request_id, body=json.dumps(invocation)))
    try:
        results = backend.send(queue, messages)
    except FanstackError as error:
        return [DeliveryFailure(error.code, str(error)) for _ in documents]
    return [
        DeliveryFailure(result.code, str(result)) if isinstance(result, FanstackError) else None
        for result in results
    ]
