"""The delivery service of endpoint subscriptions (a worker service): queue to endpoint.

`EndpointDeliveries` looks at the subscription records every couple of seconds (they are made
at any time, over the AWS API) and runs a loop per subscription that long-polls its internal
queue and delivers what it leases: HTTP/S documents are POSTed (several at once), Lambda
notifications become asynchronous invocations. Delivered messages are deleted. A failed one
stays in the queue and becomes visible again after the retry policy's delay for its attempt
(`change_visibility`, not a sleep: at least once, across processes and restarts); when the
policy's retries are spent, or at once for a client error, it goes to the subscription's
RedrivePolicy queue with SNS's `ErrorCode` and `ErrorMessage` attributes, or is dropped with a
log line and a count. Several worker processes share a subscription's queue by leasing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import Counter

from fanstack.backends.base import Backend
from fanstack.core.errors import FanstackError, QueueDoesNotExist, TopicDoesNotExist
from fanstack.core.message import MessageAttribute, OutgoingMessage, ReceivedMessage
from fanstack.notifications.endpoints import DeliveryFailure, invoke_function, post
from fanstack.notifications.messages import NOTIFICATION, delivered_text, endpoint_document
from fanstack.notifications.signing import Signer, signed, signer_for
from fanstack.notifications.subscriptions import (
    LAMBDA,
    EndpointSubscription,
    EndpointSubscriptions,
)
from fanstack.observability.metrics import counting
from fanstack.runtime.services import Service

log = logging.getLogger("fanstack.sns")

LOOK_INTERVAL = 2.0  # seconds between two looks at the subscription records
POLL_WAIT = 1.0  # a long poll's wait: a loop notices stop or unsubscribe within it
LEASE = 30  # seconds a leased message stays hidden: one POST's timeout and then some
POST_THREADS = 16
BATCH = 10


class EndpointDeliveries:
    """Runs a delivery loop for each stored `lambda` and `http(s)` subscription."""

    name = "sns-endpoints"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._running: dict[str, tuple[threading.Event, threading.Thread]] = {}

    def run(self, backend: Backend, stopping: threading.Event) -> None:
        """Start and stop subscription loops as records appear and disappear, until stopped."""
        pool = ThreadPoolExecutor(POST_THREADS, thread_name_prefix="fanstack-sns-post")
        try:
            while not stopping.is_set():
                try:
                    self.look(backend, pool)
                except FanstackError:
                    log.exception("reading SNS endpoint subscriptions failed; looking again")
                stopping.wait(LOOK_INTERVAL)
        finally:
            for key in list(self._running):
                self._stop(key)
            pool.shutdown(wait=False, cancel_futures=True)

    def look(self, backend: Backend, pool: ThreadPoolExecutor) -> None:
        """Start loops for new subscriptions, stop those of removed ones; a subscription whose
        topic was deleted is removed with it (SNS deletes a topic's subscriptions)."""
        store = EndpointSubscriptions(backend)
        found: set[str] = set()
        for subscription in store.all():
            try:
                backend.get_topic(subscription.topic)
            except TopicDoesNotExist:
                store.remove(subscription)
                continue
            found.add(subscription.id)
        for key in sorted(found - set(self._running)):
            stopping = threading.Event()
            loop = _Loop(backend, key, pool, self.clock)
            thread = threading.Thread(
                target=loop.run, args=(stopping,), name=f"fanstack-sns-{key}", daemon=True
            )
            thread.start()
            self._running[key] = (stopping, thread)
        for key in set(self._running) - found:
            self._stop(key)

    def _stop(self, key: str) -> None:
        stopping, thread = self._running.pop(key)
        stopping.set()
        thread.join(timeout=POLL_WAIT * 5)


class _Loop:
    """Empties one subscription's queue into its endpoint."""

    def __init__(
        self, backend: Backend, key: str, pool: ThreadPoolExecutor, clock: Callable[[], float]
    ) -> None:
        self.backend = backend
        self.key = key
        self.pool = pool
        self.clock = clock
        self.store = EndpointSubscriptions(backend)

    def run(self, stopping: threading.Event) -> None:
        """Lease and deliver until stopped or the subscription is gone."""
        while not stopping.is_set():
            try:
                if not self.step():
                    return
            except Exception:
                log.exception("SNS endpoint delivery failed; trying again", extra={"id": self.key})
                stopping.wait(POLL_WAIT)

    def step(self) -> bool:
        """Lease a batch and deliver it; False once the subscription is gone."""
        subscription = self.store.get(self.key)
        if subscription is None:
            return False
        try:
            leased = self.backend.receive(
                subscription.queue, max_messages=BATCH, wait_seconds=POLL_WAIT,
                visibility_timeout=LEASE,
            )  # fmt: skip
        except QueueDoesNotExist:
            return False
        documents: list[tuple[ReceivedMessage, dict[str, Any]]] = []
        for message in leased:
            document = _document(subscription, message, signer_for(self.backend))
            if document is None:
                self.backend.delete_messages(subscription.queue, [message.receipt_handle])
            else:
                documents.append((message, document))
        if documents:
            failures = self._deliver(subscription, [d for _, d in documents])
            for (message, document), failure in zip(documents, failures, strict=True):
                settle(self.backend, subscription, message, document, failure)
        return True

    def _deliver(
        self, subscription: EndpointSubscription, documents: Sequence[dict[str, Any]]
    ) -> list[DeliveryFailure | None]:
        if subscription.protocol == LAMBDA:
            return invoke_function(self.backend, subscription, documents, self.clock())
        return list(self.pool.map(lambda document: post(subscription, document), documents))


def _document(
    subscription: EndpointSubscription, message: ReceivedMessage, signer: Signer
) -> Any:
    """The document a queued message holds, as the endpoint gets it, signed (None: not one)."""
    try:
        stored = json.loads(message.body)
    except ValueError:
        stored = None
    if not isinstance(stored, dict) or "Type" not in stored:
        log.error("dropping a message that is no SNS document", extra={"id": subscription.id})
        _count(subscription, "dropped")
        return None
    return signed(endpoint_document(subscription, stored), signer, subscription.subscribe_url)


def settle(
    backend: Backend,
    subscription: EndpointSubscription,
    message: ReceivedMessage,
    document: dict[str, Any],
    failure: DeliveryFailure | None,
) -> None:
    """After an attempt: delete a delivered message; retry a failed one after its delay; or,
    its retries spent, dead-letter it (a notification) or drop it."""
    queue = subscription.queue
    if failure is None:
        backend.delete_messages(queue, [message.receipt_handle])
        _count(subscription, "delivered")
        return
    policy = subscription.retry_policy
    retry = message.receive_count  # the first attempt was receive 1; this failure's retry next
    if failure.retryable and retry <= policy.num_retries:
        delay = policy.delay(retry)
        backend.set_visibility(queue, [(message.receipt_handle, delay)], failure.message)
        _count(subscription, "retried")
        return
    fields = {
        "subscription": subscription.arn,
        "message_id": document.get("MessageId"),
        "error_code": failure.code,
        "error": failure.message,
        "attempts": message.receive_count,
    }
    notification = document.get("Type") == NOTIFICATION
    if notification and _dead_letter(backend, subscription, document, failure):
        log.warning("SNS delivery dead-lettered", extra=fields)
        _count(subscription, "dead_lettered")
        backend.delete_messages(queue, [message.receipt_handle])
        return
    log.error("SNS delivery failed and is dropped", extra=fields)
    _count(subscription, "dropped")
    backend.delete_messages(queue, [message.receipt_handle])


def _dead_letter(
    backend: Backend,
    subscription: EndpointSubscription,
    document: dict[str, Any],
    failure: DeliveryFailure,
) -> bool:
    """Send what the endpoint would have got to the RedrivePolicy queue; False if there is
    none or it refused."""
    if subscription.dead_letter is None:
        return False
    attributes = {
        "RequestID": str(uuid.uuid4()),
        "ErrorCode": failure.code,
        "ErrorMessage": failure.message[:1000],
    }
    message = OutgoingMessage(
        id=str(uuid.uuid4()),
        body=delivered_text(subscription, document),
        attributes={k: MessageAttribute("String", v) for k, v in attributes.items()},
    )
    try:
        [result] = backend.send(subscription.dead_letter, [message])
    except FanstackError as error:
        result = error
    if isinstance(result, FanstackError):
        log.error("SNS dead-letter queue refused a message: %s", result)
        return False
    return True


_counter: Counter | None = None
_counter_lock = threading.Lock()


def _count(subscription: EndpointSubscription, outcome: str) -> None:
    """Count an attempt's outcome by topic, protocol and outcome (when metrics are on)."""
    global _counter
    instruments = counting()
    if instruments is None:
        return
    with _counter_lock:
        if _counter is None:
            _counter = Counter(
                "fanstack_sns_endpoint_deliveries",
                "Deliveries to lambda and http(s) subscriptions: delivered, retried, "
                "dead_lettered or dropped.",
                ["topic", "protocol", "outcome"],
                registry=instruments.registry,
            )
    _counter.labels(subscription.topic, subscription.protocol, outcome).inc()


class EndpointNotifications:
    """The capability behind SNS's `lambda` and `http(s)` subscriptions: nothing to provision
    (subscriptions are made at run time), one delivery service in the worker role."""

    def provision(self, backend: Backend) -> None:
        """Nothing: the records and queues are made by Subscribe."""

    def services(self) -> list[Service]:
        """The delivery service, always (a subscription may be made at any time)."""
        return [EndpointDeliveries()]
