"""SNS topics on the wire: create, describe, list, delete, attributes and tags.

A topic made here is the one an app declares with `app.topic(...)`: the same spec in the same
store. What SNS has and fanstack keeps without acting on (a topic's Policy or DisplayName,
tags) lives in a table row per topic; the helpers here serve the other SNS modules too.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from fanstack.aws.context import CallContext, name_from_arn
from fanstack.core.errors import (
    InvalidParameter,
    TopicDoesNotExist,
)
from fanstack.core.specs import (
    TopicSpec,
)

Handler = Callable[[CallContext, Mapping[str, Any]], dict[str, Any]]
TOPIC_EXTRAS_TABLE = "fanstack-aws-topics"
SUBSCRIPTION_EXTRAS_TABLE = "fanstack-aws-subscriptions"
PAGE = 100
# Delivery status logging (`<Protocol>SuccessFeedbackRoleArn` and the like): kept and answered,
# not acted on (fanstack logs every delivery itself). Terraform sets the sample rates on every
# topic it makes, 0 when not configured.
FEEDBACK_PROTOCOLS = ("Application", "Firehose", "HTTP", "Lambda", "SQS")
FEEDBACK_RATES = {f"{protocol}SuccessFeedbackSampleRate" for protocol in FEEDBACK_PROTOCOLS}
TOPIC_KEPT = {
    "DisplayName", "Policy", "DeliveryPolicy", "KmsMasterKeyId", "SignatureVersion",
    "TracingConfig", "ArchivePolicy", "FifoThroughputScope", "DataProtectionPolicy",
    *FEEDBACK_RATES,
    *(f"{p}{kind}FeedbackRoleArn" for p in FEEDBACK_PROTOCOLS for kind in ("Success", "Failure")),
}  # fmt: skip


def topic_name(call: CallContext, params: Mapping[str, Any], key: str = "TopicArn") -> str:
    arn = params.get(key)
    if not arn:
        raise InvalidParameter(f"Invalid parameter: {key}")
    name = name_from_arn(str(arn))
    call.backend.get_topic(name)
    return name


def extras_of(call: CallContext, table: str, key: str) -> dict[str, Any]:
    item = call.backend.table_get(table, key)
    return dict(item.value) if item is not None else {"attributes": {}, "tags": {}}


def save(call: CallContext, table: str, key: str, value: Mapping[str, Any]) -> None:
    call.backend.table_put(table, key, dict(value))


def checked_topic_attribute(name: str, value: Any) -> str:
    """A kept topic attribute's value as SNS stores it (a sample rate: a whole percentage)."""
    text = str(value)
    if name in FEEDBACK_RATES:
        if not text.strip().isdigit() or not 0 <= int(text) <= 100:
            raise InvalidParameter(
                f"Invalid parameter: Attributes Reason: {name} must be an integer from 0 to 100"
            )
        return str(int(text))
    return text


def boolean(name: str, text: Any) -> bool:
    lowered = str(text).strip().lower()
    if lowered not in ("true", "false"):
        raise InvalidParameter(
            f"Invalid parameter: Attributes Reason: {name} must be true or false"
        )
    return lowered == "true"


# -- topics -------------------------------------------------------------------------------


def create_topic(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = str(params.get("Name") or "")
    attributes = dict(params.get("Attributes") or {})
    unknown = set(attributes) - TOPIC_KEPT - {"FifoTopic", "ContentBasedDeduplication"}
    if unknown:
        raise InvalidParameter(
            f"Invalid parameter: Attributes Reason: Unknown attribute {min(unknown)}"
        )
    spec = TopicSpec(
        name=name,
        fifo=boolean("FifoTopic", attributes.get("FifoTopic", "false")),
        content_based_deduplication=boolean(
            "ContentBasedDeduplication", attributes.get("ContentBasedDeduplication", "false")
        ),
    )
    try:
        existing = call.backend.get_topic(name)
    except TopicDoesNotExist:
        existing = None
    if existing is not None and existing != spec:
        raise InvalidParameter(
            "Invalid parameter: Attributes Reason: Topic already exists with different attributes"
        )
    if existing is None:
        call.backend.create_topic(spec)
    extras = extras_of(call, TOPIC_EXTRAS_TABLE, name)
    kept = {k: checked_topic_attribute(k, v) for k, v in attributes.items() if k in TOPIC_KEPT}
    extras["attributes"] = {**extras["attributes"], **kept}
    extras["tags"] = {**extras["tags"], **tags_of(params.get("Tags"))}
    save(call, TOPIC_EXTRAS_TABLE, name, extras)
    return {"TopicArn": call.arn("sns", name)}


def delete_topic(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = name_from_arn(str(params.get("TopicArn") or ""))
    with contextlib.suppress(TopicDoesNotExist):  # as SNS: deleting no topic succeeds
        call.backend.delete_topic(name)
    call.backend.table_delete(TOPIC_EXTRAS_TABLE, name)
    return {}


def list_topics(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    names = sorted(t.name for t in call.backend.list_topics())
    page, token = page_of(names, params.get("NextToken"))
    answer: dict[str, Any] = {"Topics": [{"TopicArn": call.arn("sns", n)} for n in page]}
    if token:
        answer["NextToken"] = token
    return answer


def get_topic_attributes(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = topic_name(call, params)
    spec = call.backend.get_topic(name)
    subscriptions = call.backend.list_subscriptions(name)
    account = call.settings.account
    arn = call.arn("sns", name)
    values = {
        "TopicArn": arn,
        "Owner": account,
        "SubscriptionsConfirmed": str(len(subscriptions)),
        "SubscriptionsPending": "0",
        "SubscriptionsDeleted": "0",
        "DisplayName": "",
        "Policy": json.dumps(_default_policy(arn, account)),
        "EffectiveDeliveryPolicy": json.dumps(
            {"http": {"defaultHealthyRetryPolicy": {"numRetries": 3}}}
        ),
    }
    if spec.fifo:
        values["FifoTopic"] = "true"
        values["ContentBasedDeduplication"] = str(spec.content_based_deduplication).lower()
    values.update(extras_of(call, TOPIC_EXTRAS_TABLE, name)["attributes"])
    return {"Attributes": values}


def set_topic_attributes(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = topic_name(call, params)
    key = str(params.get("AttributeName") or "")
    value = str(params.get("AttributeValue") or "")
    if key == "ContentBasedDeduplication":
        spec = call.backend.get_topic(name)
        if not spec.fifo:
            raise InvalidParameter(
                "Invalid parameter: ContentBasedDeduplication Reason: for FIFO topics only"
            )
        # create_topic replaces a topic's spec; its subscriptions stay
        call.backend.create_topic(replace(spec, content_based_deduplication=boolean(key, value)))
        return {}
    if key not in TOPIC_KEPT:
        raise InvalidParameter(f"Invalid parameter: AttributeName Reason: {key} is not settable")
    extras = extras_of(call, TOPIC_EXTRAS_TABLE, name)
    extras["attributes"] = {**extras["attributes"], key: checked_topic_attribute(key, value)}
    save(call, TOPIC_EXTRAS_TABLE, name, extras)
    return {}


def _default_policy(arn: str, account: str) -> dict[str, Any]:
    return {
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [
            {
                "Sid": "__default_statement_ID",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["SNS:Publish", "SNS:Subscribe", "SNS:GetTopicAttributes"],
                "Resource": arn,
                "Condition": {"StringEquals": {"AWS:SourceOwner": account}},
            }
        ],
    }


# -- tags ---------------------------------------------------------------------------------


def tags_of(tags: Any) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags or []}


def _tagged(call: CallContext, params: Mapping[str, Any]) -> str:
    name = topic_name(call, params, "ResourceArn")
    return name


def tag_resource(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = _tagged(call, params)
    extras = extras_of(call, TOPIC_EXTRAS_TABLE, name)
    extras["tags"] = {**extras["tags"], **tags_of(params.get("Tags"))}
    if len(extras["tags"]) > 50:
        raise InvalidParameter("Could not complete request: tag quota of per resource exceeded")
    save(call, TOPIC_EXTRAS_TABLE, name, extras)
    return {}


def untag_resource(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = _tagged(call, params)
    extras = extras_of(call, TOPIC_EXTRAS_TABLE, name)
    removed = set(params.get("TagKeys") or [])
    extras["tags"] = {k: v for k, v in extras["tags"].items() if k not in removed}
    save(call, TOPIC_EXTRAS_TABLE, name, extras)
    return {}


def list_tags_for_resource(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    tags = extras_of(call, TOPIC_EXTRAS_TABLE, _tagged(call, params))["tags"]
    return {"Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}


def page_of(keys: list[str], token: Any) -> tuple[list[str], str | None]:
    """A page of sorted `keys` after `token`, and the token of the next page."""
    after = str(token or "")
    rest = [key for key in keys if key > after]
    page = rest[:PAGE]
    return page, (page[-1] if len(rest) > PAGE else None)


