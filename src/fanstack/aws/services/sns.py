"""Amazon SNS's API on fanstack's topics: publish and publish-batch, and every operation by name.

Topics are in `sns_topics`, subscriptions in `sns_subscriptions`. A publish reaches every
subscribed queue whose filter policy matches, in one step, as `topic.publish` does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.services import sns_subscriptions as subscriptions
from fanstack.aws.services import sns_topics as topics
from fanstack.aws.services.sns_topics import topic_name
from fanstack.core.batch import BatchResult, entry_ids
from fanstack.core.errors import FanstackError, InvalidParameter
from fanstack.core.message import body_text, to_attributes
from fanstack.core.records import PublishRequest

Handler = Callable[[CallContext, Mapping[str, Any]], dict[str, Any]]


def _request(params: Mapping[str, Any]) -> PublishRequest:
    """A publish request from Publish's (or one batch entry's) parameters."""
    message = params.get("Message")
    if message is None:
        raise InvalidParameter("Invalid parameter: Message Reason: missing")
    if params.get("MessageStructure") == "json":
        try:
            structure = json.loads(message)
        except ValueError:
            raise InvalidParameter(
                "Invalid parameter: Message Structure - JSON message body failed to parse"
            ) from None
        if not isinstance(structure, dict) or "default" not in structure:
            raise InvalidParameter(
                "Invalid parameter: Message Structure - No default entry in JSON message body"
            )
        message = structure.get("sqs", structure["default"])
    elif params.get("MessageStructure") is not None:
        raise InvalidParameter("Invalid parameter: MessageStructure must be json")
    return PublishRequest(
        body_text(message),
        to_attributes(dict(params.get("MessageAttributes") or {})),
        params.get("Subject"),
        params.get("MessageGroupId"),
        params.get("MessageDeduplicationId"),
    )


def publish(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    if params.get("PhoneNumber"):
        raise InvalidParameter("Invalid parameter: PhoneNumber Reason: SMS is not supported")
    key = "TopicArn" if params.get("TopicArn") else "TargetArn"
    topic = topic_name(call, params, key)
    (outcome,) = call.backend.publish(topic, [_request(params)])
    if isinstance(outcome, FanstackError):
        raise outcome
    return {"MessageId": str(outcome)}


def publish_batch(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    topic = topic_name(call, params)
    entries = list(params.get("PublishBatchRequestEntries") or [])
    ids = entry_ids([{"id": e.get("Id")} for e in entries])
    built: list[PublishRequest | FanstackError] = []
    for entry in entries:
        try:
            built.append(_request(entry))
        except FanstackError as error:
            built.append(error)
    valid = [item for item in built if isinstance(item, PublishRequest)]
    stored = iter(call.backend.publish(topic, valid) if valid else [])
    outcomes = [item if isinstance(item, FanstackError) else next(stored) for item in built]
    result = BatchResult.collect(ids, outcomes)
    return {
        "Successful": [{"Id": s.id, "MessageId": s.message_id} for s in result.successful],
        "Failed": [
            {"Id": f.id, "Code": f.code, "Message": f.message, "SenderFault": f.sender_fault}
            for f in result.failed
        ],
    }



OPERATIONS: dict[str, Handler] = {
    "CreateTopic": topics.create_topic,
    "DeleteTopic": topics.delete_topic,
    "ListTopics": topics.list_topics,
    "GetTopicAttributes": topics.get_topic_attributes,
    "SetTopicAttributes": topics.set_topic_attributes,
    "TagResource": topics.tag_resource,
    "UntagResource": topics.untag_resource,
    "ListTagsForResource": topics.list_tags_for_resource,
    "Subscribe": subscriptions.subscribe,
    "Unsubscribe": subscriptions.unsubscribe,
    "ListSubscriptions": subscriptions.list_subscriptions,
    "ListSubscriptionsByTopic": subscriptions.list_subscriptions_by_topic,
    "GetSubscriptionAttributes": subscriptions.get_subscription_attributes,
    "SetSubscriptionAttributes": subscriptions.set_subscription_attributes,
    "ConfirmSubscription": subscriptions.confirm_subscription,
    "Publish": publish,
    "PublishBatch": publish_batch,
}
