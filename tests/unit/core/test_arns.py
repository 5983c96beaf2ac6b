"""The process's ARNs: AWS's formats with one account and region, earlier ARNs still read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fanstack.bus.router import rule_labels
from fanstack.core import arns
from fanstack.core.errors import ValidationException
from fanstack.core.events import EventEntry, make_event
from fanstack.core.functions import FunctionSpec
from fanstack.core.rules import FUNCTION, TOPIC, WORKFLOW, TargetSpec, bus_arn, rule_arn
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec
from fanstack.notifications.subscriptions import redrive_queue
from fanstack.workflows.context import context_object
from fanstack.workflows.store import execution_key

OLD_RULE = "arn:fanstack:events:local:000000000000:rule/shop/orders"
OLD_EXECUTION = "arn:fanstack:states:local:000000000000:execution:saga:run-1"


@pytest.fixture
def configured() -> Iterator[None]:
    """This process's ARNs in account 123456789012, region eu-west-1, for one test."""
    arns.configure(account="123456789012", region="eu-west-1")
    try:
        yield
    finally:
        arns.configure()


def test_the_defaults_are_the_aws_apis() -> None:
    assert arns.queue_arn("orders") == "arn:aws:sqs:us-east-1:000000000000:orders"


@pytest.mark.usefixtures("configured")
def test_every_arn_the_core_makes_is_in_the_configured_account_and_region() -> None:
    assert TopicSpec(name="orders").arn == "arn:aws:sns:eu-west-1:123456789012:orders"
    subscription = SubscriptionSpec(topic="orders", queue="billing")
    assert subscription.arn == "arn:aws:sns:eu-west-1:123456789012:orders:billing"
    assert QueueSpec(name="billing").arn == "arn:aws:sqs:eu-west-1:123456789012:billing"
    assert FunctionSpec(name="bill").arn == "arn:aws:lambda:eu-west-1:123456789012:function:bill"
    assert bus_arn("shop") == "arn:aws:events:eu-west-1:123456789012:event-bus/shop"
    assert rule_arn("default", "all") == "arn:aws:events:eu-west-1:123456789012:rule/all"
    assert rule_arn("shop", "all") == "arn:aws:events:eu-west-1:123456789012:rule/shop/all"
    targets = {
        TOPIC: "arn:aws:sns:eu-west-1:123456789012:t",
        FUNCTION: "arn:aws:lambda:eu-west-1:123456789012:function:t",
        WORKFLOW: "arn:aws:states:eu-west-1:123456789012:stateMachine:t",
    }
    for kind, expected in targets.items():
        assert TargetSpec(id="x", kind=kind, resource="t").arn == expected


@pytest.mark.usefixtures("configured")
def test_events_and_workflow_contexts_carry_the_account_and_region() -> None:
    entry = EventEntry(source="shop", detail_type="OrderPlaced", detail={})
    event = make_event(entry, event_id="e1", now=0)
    assert (event["account"], event["region"]) == ("123456789012", "eu-west-1")
    context = context_object("saga:run-1", {}, 0, "Start", 0, 0)
    assert context["Execution"]["Id"] == (
        "arn:aws:states:eu-west-1:123456789012:execution:saga:run-1"
    )
    assert context["Execution"]["RoleArn"] == "arn:aws:iam::123456789012:role/fanstack"


@pytest.mark.parametrize(
    ("account", "region"), [("0", "us-east-1"), ("000000000000", "us:east"), ("", "")]
)
def test_an_account_or_region_that_would_break_an_arn_is_refused(account: str, region: str) -> None:
    with pytest.raises(ValidationException):
        arns.configure(account=account, region=region)
    assert arns.arn_scope() == arns.ArnScope()


def test_arns_stored_by_earlier_versions_are_still_read() -> None:
    assert rule_labels(OLD_RULE) == ("shop", "orders")
    assert execution_key(OLD_EXECUTION) == "saga:run-1"
    old_policy = '{"deadLetterTargetArn": "arn:fanstack:sqs:local:000000000000:dead"}'
    assert redrive_queue(old_policy) == "dead"
