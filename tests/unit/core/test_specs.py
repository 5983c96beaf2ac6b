"""Resource specs: AWS defaults and every validated range."""

from __future__ import annotations

import pytest

from fanstack.core.errors import InvalidParameter, InvalidParameterValue
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec


def test_queue_defaults_follow_sqs() -> None:
    spec = QueueSpec(name="q")
    assert spec.visibility_timeout == 30
    assert spec.retention == 345_600
    assert spec.delay == 0
    assert spec.max_message_size == 1_048_576
    assert spec.max_receive_count is None


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        ("visibility_timeout", 43_201, "43200"),
        ("visibility_timeout", -1, "0"),
        ("delay", 901, "900"),
        ("retention", 59, "60"),
        ("retention", 1_209_601, "1209600"),
        ("max_message_size", 1023, "1024"),
        ("max_message_size", 1_048_577, "1048576"),
        ("receive_wait", 21, "20"),
    ],
)
def test_queue_attributes_out_of_range_name_the_limit(field: str, value: int, limit: str) -> None:
    with pytest.raises(InvalidParameterValue, match=rf"{field}.*{limit}"):
        QueueSpec(name="q", **{field: value})


def test_redrive_policy_needs_both_parts_and_a_valid_count() -> None:
    with pytest.raises(InvalidParameterValue, match="both"):
        QueueSpec(name="q", dead_letter="dlq")
    with pytest.raises(InvalidParameterValue, match=r"max_receive_count.*1000"):
        QueueSpec(name="q", dead_letter="dlq", max_receive_count=1001)
    with pytest.raises(InvalidParameterValue, match="own dead-letter"):
        QueueSpec(name="q", dead_letter="q", max_receive_count=3)


@pytest.mark.parametrize("name", ["", "has space", "x" * 81, "a/b"])
def test_bad_queue_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidParameterValue, match="name"):
        QueueSpec(name=name)


def test_topic_names_may_be_256_characters() -> None:
    TopicSpec(name="t" * 256)
    TopicSpec(name="t" * 251 + ".fifo", fifo=True)
    with pytest.raises(InvalidParameter, match="1-256"):
        TopicSpec(name="t" * 257)
    with pytest.raises(InvalidParameterValue, match="1-80"):
        QueueSpec(name="q" * 81)


def test_fifo_names_end_in_dot_fifo() -> None:
    QueueSpec(name="q.fifo", fifo=True)
    with pytest.raises(InvalidParameterValue, match=r"\.fifo"):
        QueueSpec(name="q", fifo=True)
    with pytest.raises(InvalidParameterValue, match=r"\.fifo"):
        QueueSpec(name="q.fifo")
    with pytest.raises(InvalidParameter, match="FIFO"):
        TopicSpec(name="t", content_based_deduplication=True)


def test_spec_json_round_trip_ignores_unknown_fields() -> None:
    spec = QueueSpec(name="q", visibility_timeout=5, max_receive_count=2, dead_letter="d")
    assert QueueSpec.from_json(spec.to_json()) == spec
    assert QueueSpec.from_json('{"name": "q", "future_field": 1}') == QueueSpec(name="q")


def test_subscription_scope_is_checked() -> None:
    with pytest.raises(InvalidParameter, match="filter_scope"):
        SubscriptionSpec(topic="t", queue="q", filter_scope="Headers")
