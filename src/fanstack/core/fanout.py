"""Topic fan-out, pure: which subscriptions a published message reaches, and in what form.

`plan_publication` validates one publish entry, finds the subscriptions whose filter policy it
matches through the topic's routes indexed once (`index_routes`, a `FilterIndex`) and returns a
`Publication`: the message id plus one `Delivery` per matching queue, each either the SNS envelope
(a JSON `Notification`) or, with raw delivery, the body and attributes themselves. A backend
stores a publication's deliveries in one atomic step.
"""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from fanstack.core.errors import InvalidParameter, MessageTooLarge, MissingParameter
from fanstack.core.filter_index import FilterIndex
from fanstack.core.filter_policy import FilterPolicy
from fanstack.core.message import (
    TOPIC_MAX_MESSAGE_BYTES,
    MessageAttribute,
    OutgoingMessage,
    check_message,
    check_ordering_id,
    user_attributes,
)
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec

MAX_SUBJECT_LENGTH = 100
# Unicode categories a Subject must not hold: line breaks, control characters, and lone
# surrogates (which no UTF-8 text holds: they could be neither stored nor sent).
_NOT_IN_SUBJECT = ("Cc", "Zl", "Zp", "Cs")


class Delivery(NamedTuple):
    """One copy of a publication bound for one queue (a tuple: built per subscription).

    `unsubscribe_url` is None for raw delivery (the body and attributes themselves); otherwise
    the queue gets the SNS envelope, completed with this subscription's `UnsubscribeURL`.
    """

    queue: str
    unsubscribe_url: str | None = None
    deduplication_id: str | None = None


@dataclass(frozen=True, slots=True)
class Publication:
    """Everything one publish (or send) stores, all or nothing.

    The message is stored once, whatever the number of deliveries; enveloped deliveries share
    `envelope_prefix`. `dedup_key` (scope, id) makes the whole publication a no-op when the key
    was seen within the deduplication interval; a delivery's own `deduplication_id` is checked
    per FIFO queue.
    """

    message: OutgoingMessage
    deliveries: Sequence[Delivery]
    envelope_prefix: str | None = None
    dedup_key: tuple[str, str] | None = None
    topic: str | None = None  # the topic published to (None: a send to a queue)
    subject: str | None = None  # the publish's SNS Subject


def delivered_body(body: str, envelope_prefix: str | None, unsubscribe_url: str | None) -> str:
    """The body a queue holds: the message itself, or its envelope for one subscription."""
    if unsubscribe_url is None or envelope_prefix is None:
        return body
    return f'{envelope_prefix},"UnsubscribeURL":"{unsubscribe_url}"}}'


@dataclass(frozen=True, slots=True)
class Route:
    """A subscription ready for fan-out: its spec, compiled policy and target queue."""

    subscription: SubscriptionSpec
    queue: QueueSpec
    policy: FilterPolicy | None = None
    unsubscribe_url: str = field(default="")


def content_hash(body: str) -> str:
    """SHA-256 of the body, the content-based deduplication id of SNS and SQS."""
    return hashlib.sha256(body.encode()).hexdigest()


def iso_timestamp(epoch: float) -> str:
    """ISO 8601 with milliseconds and `Z`, as SNS writes `Timestamp`."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def envelope_prefix(
    topic: TopicSpec,
    message_id: str,
    body: str,
    attributes: Mapping[str, MessageAttribute],
    subject: str | None,
    now: float,
) -> str:
    """The SNS `Notification` JSON without its closing brace, shared by all subscriptions.

    fanstack delivers locally and does not sign: `Signature` is empty (a stated deviation).
    """
    document: dict[str, object] = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic.arn,
    }
    if subject is not None:
        document["Subject"] = subject
    document["Message"] = body
    document["Timestamp"] = iso_timestamp(now)
    document["SignatureVersion"] = "1"
    document["Signature"] = ""
    document["SigningCertURL"] = ""
    attributes = user_attributes(attributes)
    if attributes:
        document["MessageAttributes"] = {
            name: {
                "Type": a.data_type,
                "Value": a.string_value
                if a.binary_value is None
                else base64.b64encode(a.binary_value).decode(),
            }
            for name, a in attributes.items()
        }
    return json.dumps(document, separators=(",", ":"))[:-1]


def check_publish(
    topic: TopicSpec,
    body: str,
    attributes: Mapping[str, MessageAttribute],
    *,
    subject: str | None,
    group_id: str | None,
    deduplication_id: str | None,
) -> tuple[str | None, int]:
    """Validate a publish against the topic's rules; return the deduplication id (FIFO) and
    the message's size."""
    size = check_message(
        body, attributes, max_bytes=TOPIC_MAX_MESSAGE_BYTES, where=f"topic {topic.name!r}"
    )
    if subject is not None:
        check_subject(subject)
    if group_id is not None:
        check_ordering_id("group_id", group_id, error=InvalidParameter)
    if deduplication_id is not None:
        check_ordering_id("deduplication_id", deduplication_id, error=InvalidParameter)
    if not topic.fifo:
        if deduplication_id is not None:
            raise InvalidParameter(
                f"topic {topic.name!r} is not FIFO: deduplication_id is only for FIFO topics"
            )
        return None, size
    if group_id is None:
        raise MissingParameter(f"FIFO topic {topic.name!r} needs a group_id on every publish")
    if deduplication_id:
        return deduplication_id, size
    if topic.content_based_deduplication:
        return content_hash(body), size
    raise InvalidParameter(
        f"FIFO topic {topic.name!r} needs a deduplication_id "
        "(or content_based_deduplication=True on the topic)"
    )


def check_subject(subject: str) -> None:
    """Raise unless `subject` is 1-100 characters without line breaks or control characters."""
    if not isinstance(subject, str) or not 1 <= len(subject) <= MAX_SUBJECT_LENGTH:
        raise InvalidParameter(f"Subject must be 1-{MAX_SUBJECT_LENGTH} characters")
    bad = next((c for c in subject if unicodedata.category(c) in _NOT_IN_SUBJECT), None)
    if bad is not None:
        raise InvalidParameter(
            f"Subject holds U+{ord(bad):04X}; it must not hold line breaks, control characters "
            "or lone surrogates"
        )


def plan_publication(
    topic: TopicSpec,
    routes: FilterIndex[Route],
    *,
    message_id: str,
    body: str,
    attributes: Mapping[str, MessageAttribute],
    subject: str | None = None,
    group_id: str | None = None,
    deduplication_id: str | None = None,
    now: float,
) -> Publication:
    """Validate one publish and fan it out to every subscription whose policy matches."""
    dedup_id, raw_size = check_publish(
        topic,
        body,
        attributes,
        subject=subject,
        group_id=group_id,
        deduplication_id=deduplication_id,
    )
    deliveries: list[Delivery] = []
    prefix: str | None = None
    for route in routes.matching(attributes=attributes, body=body):
        queue = route.queue
        url: str | None = None
        size = raw_size
        if not route.subscription.raw:
            if prefix is None:
                prefix = envelope_prefix(topic, message_id, body, attributes, subject, now)
            url = route.unsubscribe_url
            size = len(delivered_body(body, prefix, url).encode())
        if size > queue.max_message_size:
            raise MessageTooLarge(
                f"delivery to queue {queue.name!r} would be {size} bytes; its "
                f"max_message_size is {queue.max_message_size}"
            )
        deliveries.append(Delivery(queue.name, url, dedup_id if queue.fifo else None))
    dedup_key = (f"topic:{topic.name}", dedup_id) if dedup_id else None
    message = OutgoingMessage(id=message_id, body=body, attributes=attributes, group_id=group_id)
    return Publication(message, deliveries, prefix, dedup_key, topic.name, subject)


def make_route(subscription: SubscriptionSpec, queue: QueueSpec) -> Route:
    """Compile a subscription's policy once, for repeated fan-out."""
    policy = (
        FilterPolicy.parse(subscription.filter_policy, scope=subscription.filter_scope)
        if subscription.filter_policy
        else None
    )
    url = f"fanstack://unsubscribe/{subscription.arn}"
    return Route(subscription, queue, policy, url)


def index_routes(routes: Sequence[Route]) -> FilterIndex[Route]:
    """A topic's routes indexed by filter policy, to plan many publications (in their order)."""
    return FilterIndex((route, route.policy) for route in routes)
