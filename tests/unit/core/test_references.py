"""What points at a queue, and when its delete is refused."""

from __future__ import annotations

import pytest

from fanstack.core.errors import QueueInUse
from fanstack.core.functions import ConsumerSpec
from fanstack.core.references import check_queue_deletable, queue_references
from fanstack.core.specs import QueueSpec, SubscriptionSpec

QUEUES = [
    QueueSpec(name="dlq"),
    QueueSpec(name="billing", max_receive_count=3, dead_letter="dlq"),
    QueueSpec(name="shipping", max_receive_count=3, dead_letter="dlq"),
    QueueSpec(name="spare"),
]
SUBSCRIPTIONS = [
    SubscriptionSpec(topic="orders", queue="billing"),
    SubscriptionSpec(topic="refunds", queue="billing"),
]


def test_a_dead_letter_queue_is_referenced_by_its_sources() -> None:
    references = queue_references("dlq", queues=QUEUES, subscriptions=SUBSCRIPTIONS)
    assert references.redrive_sources == ("billing", "shipping")
    assert references.describe() == "dead-letter queue of 'billing', 'shipping'"


def test_subscriptions_and_consumers_reference_a_queue() -> None:
    consumers = [ConsumerSpec(queue="billing", function="bill")]
    references = queue_references(
        "billing", queues=QUEUES, subscriptions=SUBSCRIPTIONS, consumers=consumers
    )
    assert references.topics == ("orders", "refunds")
    assert references.functions == ("bill",)
    assert "subscribed to topic 'orders', 'refunds'" in references.describe()


def test_an_unreferenced_queue_is_deletable_and_a_referenced_one_only_forced() -> None:
    spare = queue_references("spare", queues=QUEUES, subscriptions=SUBSCRIPTIONS)
    assert not spare
    check_queue_deletable(spare, force=False)
    dlq = queue_references("dlq", queues=QUEUES, subscriptions=SUBSCRIPTIONS)
    with pytest.raises(QueueInUse, match=r"queue 'dlq' is in use \(dead-letter queue of"):
        check_queue_deletable(dlq, force=False)
    check_queue_deletable(dlq, force=True)
