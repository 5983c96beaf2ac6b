"""SNS subscriptions on the wire: SQS queues, fanstack functions and HTTP/S endpoints.

An `sqs` subscription is the app's own topic subscription, confirmed when made; its ARN is its
topic's ARN and the queue's name. A `lambda` (a function of the app) or `http(s)` subscription
is an endpoint subscription of `fanstack.notifications`: an internal queue the topic delivers
to and a record the worker role's delivery service reads; its ARN is the topic's ARN and an id.
A `lambda` subscription is confirmed when made. An `http(s)` one is pending until confirmed:
the endpoint is POSTed a `SubscriptionConfirmation` whose `SubscribeURL` is this endpoint's own
`ConfirmSubscription` (a GET works: it is a query-protocol call). FilterPolicy,
FilterPolicyScope and RawMessageDelivery are the subscription's own; DeliveryPolicy (HTTP/S)
and RedrivePolicy act on endpoint subscriptions; what SNS has and fanstack only keeps lives in
a table.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

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
from fanstack.notifications import (
    EndpointSubscription,
    EndpointSubscriptions,
    is_internal_queue,
    parse_delivery_policy,
)
from fanstack.notifications.messages import confirmation_document
from fanstack.notifications.subscriptions import (
    HTTP,
    HTTPS,
    LAMBDA,
    PROTOCOLS,
    TOKEN_LIFETIME,
    function_name,
    redrive_queue,
)
from fanstack.resources import delete_subscription

SUBSCRIPTION_KEPT = {"DeliveryPolicy", "RedrivePolicy", "SubscriptionRoleArn", "ReplayPolicy"}
PENDING = "pending confirmation"  # Subscribe's answer for an unconfirmed subscription
LISTED_PENDING = "PendingConfirmation"  # how the List operations show one
SNS_VERSION = "2010-03-31"  # names the service in the URLs fanstack hands out (GET calls)


def _subscription_arn(call: CallContext, spec: SubscriptionSpec) -> str:
    return f"{call.arn('sns', spec.topic)}:{spec.queue}"


def _endpoint(call: CallContext, arn: str) -> EndpointSubscription | None:
    """The endpoint subscription an ARN names, if it names one."""
    head, _, key = str(arn).rpartition(":")
    if not key or not head:
        return None
    found = EndpointSubscriptions(call.backend).get(key)
    return found if found is not None and found.topic == name_from_arn(head) else None


def _subscription(call: CallContext, arn: str) -> SubscriptionSpec:
    """The queue subscription an ARN names (NotFound if there is none)."""
    head, _, queue = str(arn).rpartition(":")
    topic = name_from_arn(head)
    try:
        found = [s for s in call.backend.list_subscriptions(topic) if s.queue == queue]
    except TopicDoesNotExist:
        found = []
    if not found or is_internal_queue(queue):
        raise SubscriptionDoesNotExist(topic, queue)
    return found[0]


def subscribe(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    topic = topic_name(call, params)
    protocol = str(params.get("Protocol") or "").lower()
    if protocol in PROTOCOLS:
        return _subscribe_endpoint(call, topic, protocol, params)
    if protocol != "sqs":
        raise InvalidParameter(
            f"Invalid parameter: Protocol Reason: {protocol!r} is not supported by fanstack; "
            "use sqs, lambda, http or https"
        )
    endpoint = str(params.get("Endpoint") or "")
    queue = name_from_arn(endpoint)
    call.backend.get_queue(queue)
    attributes = dict(params.get("Attributes") or {})
    spec = _with_attributes(SubscriptionSpec(topic=topic, queue=queue), attributes)
    existing = [s for s in call.backend.list_subscriptions(topic) if s.queue == queue]
    if existing and existing[0] != spec and attributes:
        raise _already_exists()
    if not existing:
        call.backend.subscribe(spec)
    arn = _subscription_arn(call, spec)
    _keep(call, arn, attributes)
    return {"SubscriptionArn": arn}


def _already_exists() -> InvalidParameter:
    return InvalidParameter(
        "Invalid parameter: Attributes Reason: Subscription already exists with different "
        "attributes"
    )


def _keep(call: CallContext, arn: str, attributes: Mapping[str, str]) -> None:
    """Store the attributes SNS has that fanstack keeps (and returns) as given."""
    kept = {k: v for k, v in attributes.items() if k in SUBSCRIPTION_KEPT}
    if kept:
        extras = extras_of(call, SUBSCRIPTION_EXTRAS_TABLE, arn)
        extras["attributes"] = {**extras["attributes"], **kept}
        save(call, SUBSCRIPTION_EXTRAS_TABLE, arn, extras)


def _subscribe_endpoint(
    call: CallContext, topic: str, protocol: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Subscribe a function or a URL: confirmed at once (lambda) or pending (http(s))."""
    endpoint = str(params.get("Endpoint") or "")
    _check_endpoint(call, protocol, endpoint)
    if call.backend.get_topic(topic).fifo:
        raise InvalidParameter(
            "Invalid parameter: Protocol Reason: a FIFO topic delivers to SQS queues, "
            f"not {protocol}"
        )
    attributes = dict(params.get("Attributes") or {})
    store = EndpointSubscriptions(call.backend)
    key = uuid.uuid4().hex
    topic_arn = call.arn("sns", topic)
    arn = f"{topic_arn}:{key}"
    token = secrets.token_hex(64)
    base = f"{call.scheme}://{call.host}/?Version={SNS_VERSION}"
    draft = EndpointSubscription(
        id=key, arn=arn, topic=topic, topic_arn=topic_arn, protocol=protocol, endpoint=endpoint,
        owner=call.settings.account, token=token, token_issued=time.time(),
        subscribe_url=f"{base}&Action=ConfirmSubscription&TopicArn={quote(topic_arn, safe='')}"
        f"&Token={token}",
        unsubscribe_url=f"{base}&Action=Unsubscribe&SubscriptionArn={quote(arn, safe='')}",
        confirmed=protocol == LAMBDA,
    )  # fmt: skip
    subscription = _with_endpoint_attributes(draft, attributes)
    same = [s for s in store.all(topic) if (s.protocol, s.endpoint) == (protocol, endpoint)]
    if same:
        subscription = same[0]
        if attributes and _with_endpoint_attributes(subscription, attributes) != subscription:
            raise _already_exists()
        if not subscription.confirmed:  # SNS sends the confirmation again
            store.request_confirmation(subscription, _confirmation(subscription))
    else:
        confirmation = None if subscription.confirmed else _confirmation(subscription)
        store.create(subscription, confirmation)
        _keep(call, subscription.arn, attributes)
    if subscription.confirmed or params.get("ReturnSubscriptionArn"):
        return {"SubscriptionArn": subscription.arn}
    return {"SubscriptionArn": PENDING}


def _confirmation(subscription: EndpointSubscription) -> str:
    document = confirmation_document(subscription, message_id=str(uuid.uuid4()), now=time.time())
    return json.dumps(document)


def _check_endpoint(call: CallContext, protocol: str, endpoint: str) -> None:
    """Refuse an endpoint that does not fit its protocol, or a function the app lacks."""
    if protocol == LAMBDA:
        name = function_name(endpoint)
        if ":function:" not in endpoint or name not in call.app.functions:
            raise InvalidParameter(
                f"Invalid parameter: Endpoint Reason: {endpoint!r} names no function of this "
                "app (arn:aws:lambda:<region>:<account>:function:<name>)"
            )
    elif not endpoint.lower().startswith(f"{protocol}://") or len(endpoint) <= len(protocol) + 3:
        raise InvalidParameter(
            f"Invalid parameter: Endpoint Reason: an {protocol} endpoint must be a "
            f"{protocol}:// URL, got {endpoint!r}"
        )


def _with_endpoint_attributes(
    subscription: EndpointSubscription, attributes: Mapping[str, str]
) -> EndpointSubscription:
    """An endpoint subscription with its attributes applied (InvalidParameter if one is bad)."""
    if subscription.protocol == LAMBDA and attributes.get("RawMessageDelivery", "") == "true":
        raise InvalidParameter(
            "Invalid parameter: Attributes Reason: Delivery protocol [lambda] does not support "
            "raw message delivery"
        )
    current = SubscriptionSpec(
        topic=subscription.topic, queue=subscription.queue, raw=subscription.raw,
        filter_policy=subscription.filter_policy, filter_scope=subscription.filter_scope,
    )  # fmt: skip
    spec = _with_attributes(current, attributes)
    changes: dict[str, Any] = {
        "raw": spec.raw, "filter_policy": spec.filter_policy, "filter_scope": spec.filter_scope
    }  # fmt: skip
    if "DeliveryPolicy" in attributes and subscription.protocol in (HTTP, HTTPS):
        changes["delivery_policy"] = parse_delivery_policy(attributes["DeliveryPolicy"])
    if "RedrivePolicy" in attributes:
        changes["dead_letter"] = redrive_queue(attributes["RedrivePolicy"])
    return replace(subscription, **changes)


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
    endpoint = _endpoint(call, arn)
    if endpoint is not None:
        EndpointSubscriptions(call.backend).remove(endpoint)
    else:
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


def _listed_endpoint(call: CallContext, subscription: EndpointSubscription) -> dict[str, Any]:
    return {
        "SubscriptionArn": subscription.arn if subscription.confirmed else LISTED_PENDING,
        "Owner": subscription.owner,
        "Protocol": subscription.protocol,
        "Endpoint": subscription.endpoint,
        "TopicArn": call.arn("sns", subscription.topic),
    }


def list_subscriptions(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    topics = {t.name for t in call.backend.list_topics()}
    return _subscription_page(call, call.backend.list_subscriptions(), topics, None, params)


def list_subscriptions_by_topic(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    topic = topic_name(call, params)
    specs = call.backend.list_subscriptions(topic)
    return _subscription_page(call, specs, {topic}, topic, params)


def _subscription_page(
    call: CallContext,
    specs: list[SubscriptionSpec],
    topics: set[str],
    topic: str | None,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """A page of queue and endpoint subscriptions, in one order (topic, then queue or id)."""
    entries = {
        f"{s.topic}:{s.queue}": _listed(call, s) for s in specs if not is_internal_queue(s.queue)
    }
    for subscription in EndpointSubscriptions(call.backend).all(topic):
        if subscription.topic in topics:  # a deleted topic's wait for the service to go
            entries[f"{subscription.topic}:{subscription.id}"] = _listed_endpoint(
                call, subscription
            )
    page, next_token = page_of(sorted(entries), params.get("NextToken"))
    answer: dict[str, Any] = {"Subscriptions": [entries[key] for key in page]}
    if next_token:
        answer["NextToken"] = next_token
    return answer


def get_subscription_attributes(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    arn = str(params.get("SubscriptionArn") or "")
    endpoint = _endpoint(call, arn)
    if endpoint is not None:
        values = _endpoint_attributes(call, endpoint)
    else:
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


def _endpoint_attributes(call: CallContext, subscription: EndpointSubscription) -> dict[str, str]:
    values = {
        **{k: str(v) for k, v in _listed_endpoint(call, subscription).items()},
        "SubscriptionArn": subscription.arn,
        "ConfirmationWasAuthenticated": str(subscription.confirmed).lower(),
        "PendingConfirmation": str(not subscription.confirmed).lower(),
        "RawMessageDelivery": str(subscription.raw).lower(),
        "SubscriptionPrincipal": f"arn:aws:iam::{call.settings.account}:root",
    }
    if subscription.protocol in (HTTP, HTTPS):
        policy = subscription.delivery_policy.to_dict()
        content_type = policy.pop("headerContentType")
        values["EffectiveDeliveryPolicy"] = json.dumps(
            {"healthyRetryPolicy": policy, "requestPolicy": {"headerContentType": content_type}}
        )
    if subscription.filter_policy:
        values["FilterPolicy"] = subscription.filter_policy
        values["FilterPolicyScope"] = subscription.filter_scope
    return values


def set_subscription_attributes(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    arn = str(params.get("SubscriptionArn") or "")
    key = str(params.get("AttributeName") or "")
    value = str(params.get("AttributeValue") or "")
    endpoint = _endpoint(call, arn)
    if endpoint is not None:
        changed = _with_endpoint_attributes(endpoint, {key: value})
        EndpointSubscriptions(call.backend).update(changed)
        if key in SUBSCRIPTION_KEPT:
            _keep(call, arn, {key: value})
        return {}
    spec = _subscription(call, arn)
    if key in SUBSCRIPTION_KEPT:
        _keep(call, arn, {key: value})
        return {}
    call.backend.subscribe(_with_attributes(spec, {key: value}))
    return {}


def confirm_subscription(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Confirm the HTTP/S subscription a token was sent to (also a GET of its SubscribeURL);
    confirming again answers the same ARN, as SNS does."""
    topic = topic_name(call, params)
    token = str(params.get("Token") or "")
    store = EndpointSubscriptions(call.backend)
    found = [s for s in store.all(topic) if token and secrets.compare_digest(s.token, token)]
    if not found:
        raise InvalidParameter("Invalid parameter: Token")
    subscription = found[0]
    if not subscription.confirmed:
        if time.time() - subscription.token_issued > TOKEN_LIFETIME:
            raise InvalidParameter("Invalid parameter: Token Reason: the token has expired")
        subscription = store.confirm(subscription)
    return {"SubscriptionArn": subscription.arn}
