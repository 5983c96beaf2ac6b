"""SNS subscriptions on the wire: SQS queues subscribed to fanstack topics.

A subscription is confirmed when made (an SQS endpoint needs no confirmation). Its ARN is its
topic's ARN and the queue's name. FilterPolicy, FilterPolicyScope and RawMessageDelivery are the
subscription's own; the attributes SNS has and fanstack only keeps live in a table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fanstack.aws.context import CallContext, name_from_arn
from fanstack.aws.services.sns_topics import (
    SUBSCRIPTION_EXTRAS_TABLE,
    boolean,
    extras_of,
    page_of,
    save,
    topic_name,
)
from fanstack.core.errors import InvalidParameter, SubscriptionDoesNotExist, TopicDoesNotExist
from fanstack.core.filter_policy import FilterPolicy
from fanstack.core.specs import SCOPE_ALIASES, SubscriptionSpec
from fanstack.resources import delete_subscription

SUBSCRIPTION_KEPT = {"DeliveryPolicy", "RedrivePolicy", "SubscriptionRoleArn", "ReplayPolicy"}


def _subscription_arn(call: CallContext, spec: SubscriptionSpec) -> str:
    return f"{call.arn('sns', spec.topic)}:{spec.queue}"


def _subscription(call: CallContext, arn: str) -> SubscriptionSpec:
    """The subscription an ARN names (NotFound if there is none)."""
    head, _, queue = str(arn).rpartition(":")
    topic = name_from_arn(head)
    try:
        found = [s for s in call.backend.list_subscriptions(topic) if s.queue == queue]
    except TopicDoesNotExist:
        found = []
    if not found:
        raise SubscriptionDoesNotExist(topic, queue)
    return found[0]


def subscribe(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    topic = topic_name(call, params)
    protocol = str(params.get("Protocol") or "").lower()
    if protocol != "sqs":
        raise InvalidParameter(
            f"Invalid parameter: Protocol Reason: {protocol!r} is not supported by fanstack; "
            "subscribe an SQS queue (protocol sqs) and consume it"
        )
    endpoint = str(params.get("Endpoint") or "")
    queue = name_from_arn(endpoint)
    call.backend.get_queue(queue)
    attributes = dict(params.get("Attributes") or {})
    spec = _with_attributes(SubscriptionSpec(topic=topic, queue=queue), attributes)
    existing = [s for s in call.backend.list_subscriptions(topic) if s.queue == queue]
    if existing and existing[0] != spec and attributes:
        raise InvalidParameter(
            "Invalid parameter: Attributes Reason: Subscription already exists with different "
            "attributes"
        )
    if not existing:
        call.backend.subscribe(spec)
    arn = _subscription_arn(call, spec)
    kept = {k: v for k, v in attributes.items() if k in SUBSCRIPTION_KEPT}
    if kept:
        extras = extras_of(call, SUBSCRIPTION_EXTRAS_TABLE, arn)
        extras["attributes"] = {**extras["attributes"], **kept}
        save(call, SUBSCRIPTION_EXTRAS_TABLE, arn, extras)
    return {"SubscriptionArn": arn}


def _with_attributes(spec: SubscriptionSpec, attributes: Mapping[str, str]) -> SubscriptionSpec:
    """A subscription with FilterPolicy, FilterPolicyScope and RawMessageDelivery applied."""
    known = {"FilterPolicy", "FilterPolicyScope", "RawMessageDelivery", *SUBSCRIPTION_KEPT}
    unknown = set(attributes) - known
    if unknown:
        raise InvalidParameter(
            f"Invalid parameter: Attributes Reason: Unknown attribute {min(unknown)}"
        )
    changes: dict[str, Any] = {}
    if "RawMessageDelivery" in attributes:
        changes["raw"] = boolean("RawMessageDelivery", attributes["RawMessageDelivery"])
    if "FilterPolicyScope" in attributes:
        scope = SCOPE_ALIASES.get(attributes["FilterPolicyScope"])
        if scope is None:
            raise InvalidParameter(
                "Invalid parameter: Attributes Reason: FilterPolicyScope must be "
                "MessageAttributes or MessageBody"
            )
        changes["filter_scope"] = scope
    scope = changes.get("filter_scope", spec.filter_scope)
    if "FilterPolicy" in attributes:
        text = attributes["FilterPolicy"]
        changes["filter_policy"] = FilterPolicy.parse(text, scope=scope).to_json() if text else None
    elif "filter_scope" in changes and spec.filter_policy:
        changes["filter_policy"] = FilterPolicy.parse(spec.filter_policy, scope=scope).to_json()
    return replace(spec, **changes)


def unsubscribe(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    arn = str(params.get("SubscriptionArn") or "")
    spec = _subscription(call, arn)
    delete_subscription(call.backend, spec.topic, spec.queue)
    call.backend.table_delete(SUBSCRIPTION_EXTRAS_TABLE, arn)
    return {}


def _listed(call: CallContext, spec: SubscriptionSpec) -> dict[str, Any]:
    return {
        "SubscriptionArn": _subscription_arn(call, spec),
        "Owner": call.settings.account,
        "Protocol": "sqs",
        "Endpoint": call.arn("sqs", spec.queue),
        "TopicArn": call.arn("sns", spec.topic),
    }


def list_subscriptions(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    specs = sorted(call.backend.list_subscriptions(), key=lambda s: (s.topic, s.queue))
    return _subscription_page(call, specs, params.get("NextToken"))


def list_subscriptions_by_topic(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    topic = topic_name(call, params)
    specs = sorted(call.backend.list_subscriptions(topic), key=lambda s: s.queue)
    return _subscription_page(call, specs, params.get("NextToken"))


def _subscription_page(
    call: CallContext, specs: list[SubscriptionSpec], token: Any
) -> dict[str, Any]:
    keys = [f"{s.topic}:{s.queue}" for s in specs]
    page, next_token = page_of(keys, token)
    chosen = set(page)
    answer: dict[str, Any] = {
        "Subscriptions": [_listed(call, s) for s in specs if f"{s.topic}:{s.queue}" in chosen]
    }
    if next_token:
        answer["NextToken"] = next_token
    return answer


def get_subscription_attributes(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    arn = str(params.get("SubscriptionArn") or "")
    spec = _subscription(call, arn)
    values = {
        **{k: str(v) for k, v in _listed(call, spec).items()},
        "ConfirmationWasAuthenticated": "true",
        "PendingConfirmation": "false",
        "RawMessageDelivery": str(spec.raw).lower(),
        "SubscriptionPrincipal": f"arn:aws:iam::{call.settings.account}:root",
    }
    if spec.filter_policy:
        values["FilterPolicy"] = spec.filter_policy
        values["FilterPolicyScope"] = spec.filter_scope
    values.update(extras_of(call, SUBSCRIPTION_EXTRAS_TABLE, arn)["attributes"])
    return {"Attributes": values}


def set_subscription_attributes(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    arn = str(params.get("SubscriptionArn") or "")
    spec = _subscription(call, arn)
    key = str(params.get("AttributeName") or "")
    value = str(params.get("AttributeValue") or "")
    if key in SUBSCRIPTION_KEPT:
        extras = extras_of(call, SUBSCRIPTION_EXTRAS_TABLE, arn)
        extras["attributes"] = {**extras["attributes"], key: value}
        save(call, SUBSCRIPTION_EXTRAS_TABLE, arn, extras)
        return {}
    call.backend.subscribe(_with_attributes(spec, {key: value}))
    return {}


def confirm_subscription(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """SQS subscriptions are confirmed when made: no token is ever pending."""
    topic_name(call, params)
    raise InvalidParameter("Invalid parameter: Token Reason: no subscription awaits this token")
