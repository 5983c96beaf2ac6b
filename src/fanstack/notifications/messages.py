"""What an endpoint subscription's deliveries carry, pure: SNS's documents, headers and events.

The subscription's internal queue holds SNS `Notification` envelopes (written by fan-out) and
`SubscriptionConfirmation` documents (written on Subscribe). An HTTP/S endpoint gets either as
a JSON body (or, raw, the message itself) with SNS's `x-amz-sns-*` headers; a Lambda function
gets SNS's event, `{"Records": [{"EventSource": "aws:sns", ..., "Sns": {...}}]}`. Documents
are signed when delivered (`signing`); SNS envelopes in queues are not.
"""

from __future__ import annotations

import json
from typing import Any

from fanstack.core.fanout import iso_timestamp
from fanstack.notifications.subscriptions import EndpointSubscription

NOTIFICATION = "Notification"
CONFIRMATION = "SubscriptionConfirmation"
USER_AGENT = "Amazon Simple Notification Service Agent"


def confirmation_document(
    subscription: EndpointSubscription, *, message_id: str, now: float
) -> dict[str, Any]:
    """The `SubscriptionConfirmation` an HTTP/S endpoint gets when subscribed."""
    return {
        "Type": CONFIRMATION,
        "MessageId": message_id,
        "Token": subscription.token,
        "TopicArn": subscription.topic_arn,
        "Message": (
            f"You have chosen to subscribe to the topic {subscription.topic_arn}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message."
        ),
        "SubscribeURL": subscription.subscribe_url,
        "Timestamp": iso_timestamp(now),
        "SignatureVersion": "1",
        "Signature": "",
        "SigningCertURL": "",
    }


def endpoint_document(subscription: EndpointSubscription, stored: dict[str, Any]) -> dict[str, Any]:
    """A queued document as the endpoint sees it: a notification gets the subscription's
    `TopicArn` and `UnsubscribeURL` (fan-out wrote fanstack's own), in SNS's field order."""
    if stored.get("Type") != NOTIFICATION:
        return stored
    document: dict[str, Any] = {
        "Type": NOTIFICATION,
        "MessageId": stored.get("MessageId", ""),
        "TopicArn": subscription.topic_arn,
    }
    if "Subject" in stored:
        document["Subject"] = stored["Subject"]
    document["Message"] = stored.get("Message", "")
    for key in ("Timestamp", "SignatureVersion", "Signature", "SigningCertURL"):
        document[key] = stored.get(key, "")
    document["UnsubscribeURL"] = subscription.unsubscribe_url
    if stored.get("MessageAttributes"):
        document["MessageAttributes"] = stored["MessageAttributes"]
    return document


def http_request(
    subscription: EndpointSubscription, document: dict[str, Any]
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the POST that delivers `document` to an HTTP/S endpoint."""
    kind = str(document.get("Type", NOTIFICATION))
    headers = {
        "x-amz-sns-message-type": kind,
        "x-amz-sns-message-id": str(document.get("MessageId", "")),
        "x-amz-sns-topic-arn": subscription.topic_arn,
        "Content-Type": subscription.delivery_policy.content_type,
        "User-Agent": USER_AGENT,
    }
    if kind != NOTIFICATION:
        return json.dumps(document, indent=2).encode(), headers
    headers["x-amz-sns-subscription-arn"] = subscription.arn
    if subscription.raw:
        headers["x-amz-sns-rawdelivery"] = "true"
        return str(document.get("Message", "")).encode(), headers
    return json.dumps(document, indent=2).encode(), headers


def lambda_event(subscription: EndpointSubscription, document: dict[str, Any]) -> dict[str, Any]:
    """SNS's event for a Lambda function, holding one notification."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription.arn,
                "Sns": {
                    "Type": NOTIFICATION,
                    "MessageId": document.get("MessageId", ""),
                    "TopicArn": subscription.topic_arn,
                    "Subject": document.get("Subject"),
                    "Message": document.get("Message", ""),
                    "Timestamp": document.get("Timestamp", ""),
                    "SignatureVersion": document.get("SignatureVersion", "1"),
                    "Signature": document.get("Signature", ""),
                    "SigningCertUrl": document.get("SigningCertURL", ""),
                    "UnsubscribeUrl": subscription.unsubscribe_url,
                    "MessageAttributes": document.get("MessageAttributes") or {},
                },
            }
        ]
    }


def delivered_text(subscription: EndpointSubscription, document: dict[str, Any]) -> str:
    """What a dead-letter queue keeps of an undelivered document: what the endpoint would
    have got (the message itself for raw delivery, else the JSON document)."""
    if subscription.raw and document.get("Type") == NOTIFICATION:
        return str(document.get("Message", ""))
    return json.dumps(document, separators=(",", ":"))
