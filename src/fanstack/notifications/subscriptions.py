"""SNS subscriptions whose endpoint is not a queue: a function (`lambda`) or a URL (`http(s)`).

Fan-out stores a publication only into queues, so each such subscription gets an internal queue
(`fanstack-sns-<id>`), subscribed to the topic with the subscription's filter policy and scope,
enveloped; a record in table `fanstack-sns-endpoints` names the endpoint kind, the endpoint,
the confirmation state and token, and the delivery settings. The delivery service
(`notifications.delivery`) reads the records and empties the queues into the endpoints.

A pending subscription (HTTP/S before `ConfirmSubscription`) has its queue but no topic
subscription yet, so what is published meanwhile never reaches it, as in SNS; its queue holds
the `SubscriptionConfirmation` to deliver. Confirming subscribes the queue to the topic.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.errors import (
    FanstackError,
    InvalidParameter,
    QueueDoesNotExist,
    TopicDoesNotExist,
)
from fanstack.core.message import OutgoingMessage
from fanstack.core.specs import ATTRIBUTES_SCOPE, MAX_RETENTION, QueueSpec, SubscriptionSpec
from fanstack.notifications.delivery_policy import (
    HTTP_DEFAULT_POLICY,
    LAMBDA_POLICY,
    DeliveryPolicy,
)

TABLE = "fanstack-sns-endpoints"
QUEUE_PREFIX = "fanstack-sns-"
LAMBDA, HTTP, HTTPS = "lambda", "http", "https"
PROTOCOLS = (LAMBDA, HTTP, HTTPS)
TOKEN_LIFETIME = 3 * 24 * 3600  # seconds: SNS's confirmation tokens are valid for three days


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointSubscription:
    """One `lambda` or `http(s)` subscription: its endpoint, state and delivery settings.

    ARNs and URLs are in the AWS formats of the endpoint that made it (the delivery service
    has no AWS settings of its own).
    """

    id: str
    arn: str
    topic: str
    topic_arn: str
    protocol: str
    endpoint: str
    owner: str
    token: str
    token_issued: float
    subscribe_url: str
    unsubscribe_url: str
    confirmed: bool = False
    raw: bool = False
    filter_policy: str | None = None
    filter_scope: str = ATTRIBUTES_SCOPE
    dead_letter: str | None = None  # the RedrivePolicy's queue
    delivery_policy: DeliveryPolicy = field(default=HTTP_DEFAULT_POLICY)

    @property
    def queue(self) -> str:
        """The internal queue that holds its deliveries."""
        return QUEUE_PREFIX + self.id

    @property
    def function(self) -> str:
        """The function a `lambda` endpoint names (`arn:aws:lambda:...:function:<name>`)."""
        return function_name(self.endpoint)

    @property
    def retry_policy(self) -> DeliveryPolicy:
        """How failed deliveries are retried: SNS's fixed policy for Lambda, else its own."""
        return LAMBDA_POLICY if self.protocol == LAMBDA else self.delivery_policy

    def spec(self) -> SubscriptionSpec:
        """The topic subscription of its internal queue (always enveloped)."""
        return SubscriptionSpec(
            topic=self.topic,
            queue=self.queue,
            filter_policy=self.filter_policy,
            filter_scope=self.filter_scope,
        )

    def to_dict(self) -> dict[str, Any]:
        """As its table item."""
        return {
            "id": self.id, "arn": self.arn, "topic": self.topic, "topic_arn": self.topic_arn,
            "protocol": self.protocol, "endpoint": self.endpoint, "owner": self.owner,
            "token": self.token, "token_issued": self.token_issued,
            "subscribe_url": self.subscribe_url, "unsubscribe_url": self.unsubscribe_url,
            "confirmed": self.confirmed, "raw": self.raw, "filter_policy": self.filter_policy,
            "filter_scope": self.filter_scope, "dead_letter": self.dead_letter,
            "delivery_policy": self.delivery_policy.to_dict(),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointSubscription:
        """Read back from its table item (unknown fields ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        policy = known.pop("delivery_policy", None)
        if policy is not None:
            known["delivery_policy"] = DeliveryPolicy.from_dict(policy)
        return cls(**known)


def function_name(endpoint: str) -> str:
    """The function name in a Lambda ARN (or a bare name), without a qualifier."""
    rest = endpoint.split(":function:", 1)[1] if ":function:" in endpoint else endpoint
    return rest.split(":", 1)[0]


class EndpointSubscriptions:
    """The endpoint subscriptions stored in a backend, and their internal queues."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def get(self, subscription_id: str) -> EndpointSubscription | None:
        """The subscription with this id, or None."""
        item = self.backend.table_get(TABLE, subscription_id)
        return EndpointSubscription.from_dict(dict(item.value)) if item is not None else None

    def all(self, topic: str | None = None) -> list[EndpointSubscription]:
        """Every stored subscription (of one topic), by id."""
        found = [
            EndpointSubscription.from_dict(dict(item.value))
            for item in self.backend.table_items(TABLE)
        ]
        return [s for s in found if topic is None or s.topic == topic]

    def create(self, subscription: EndpointSubscription, confirmation: str | None) -> None:
        """Store a new subscription with its queue; queue `confirmation` (a document's JSON)
        for delivery; subscribe the queue to the topic if it is confirmed already."""
        self.backend.declare_queue(QueueSpec(name=subscription.queue, retention=MAX_RETENTION))
        if confirmation is not None:
            self.request_confirmation(subscription, confirmation)
        self.backend.table_put(TABLE, subscription.id, subscription.to_dict())
        if subscription.confirmed:
            self.backend.subscribe(subscription.spec())

    def request_confirmation(self, subscription: EndpointSubscription, document: str) -> None:
        """Queue a `SubscriptionConfirmation` document for delivery to the endpoint."""
        message = OutgoingMessage(id=str(uuid.uuid4()), body=document)
        [result] = self.backend.send(subscription.queue, [message])
        if isinstance(result, FanstackError):
            raise result

    def confirm(self, subscription: EndpointSubscription) -> EndpointSubscription:
        """Confirm a pending subscription: from now on, publications reach it."""
        confirmed = replace(subscription, confirmed=True)
        self.backend.subscribe(confirmed.spec())
        self.backend.table_put(TABLE, confirmed.id, confirmed.to_dict())
        return confirmed

    def update(self, subscription: EndpointSubscription) -> None:
        """Store changed settings (filter policy, raw delivery, policies) and apply them."""
        if subscription.confirmed:
            self.backend.subscribe(subscription.spec())  # validates the filter policy first
        self.backend.table_put(TABLE, subscription.id, subscription.to_dict())

    def remove(self, subscription: EndpointSubscription) -> None:
        """Delete the subscription, its topic subscription and its queue (what it holds too)."""
        self.backend.table_delete(TABLE, subscription.id)
        with contextlib.suppress(TopicDoesNotExist):
            self.backend.delete_subscription(subscription.topic, subscription.queue)
        with contextlib.suppress(QueueDoesNotExist):
            self.backend.delete_queue(subscription.queue)


def is_internal_queue(name: str) -> bool:
    """Whether a queue is an endpoint subscription's (not a queue of the app's or a user's)."""
    return name.startswith(QUEUE_PREFIX)


def redrive_queue(text: str) -> str | None:
    """The queue a `RedrivePolicy` attribute names (`{"deadLetterTargetArn": <queue ARN>}`);
    None for an empty policy. InvalidParameter if it names no queue."""
    if not text:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    arn = document.get("deadLetterTargetArn") if isinstance(document, dict) else None
    if not isinstance(arn, str) or ":sqs:" not in arn or not arn.rsplit(":", 1)[-1]:
        raise InvalidParameter(
            "Invalid parameter: RedrivePolicy: deadLetterTargetArn must be the ARN of an SQS "
            f"queue, got {text!r}"
        )
    return arn.rsplit(":", 1)[-1]
