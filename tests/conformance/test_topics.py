"""Topics: fan-out through filter policies, envelopes, raw delivery, FIFO topics, atomicity."""

from __future__ import annotations

import json

import pytest

from fanstack.backends.base import Backend
from fanstack.core.errors import (
    InvalidFilterPolicy,
    InvalidParameterValue,
    MessageTooLarge,
    MissingParameter,
    TopicDoesNotExist,
)
from fanstack.core.message import to_attributes
from fanstack.core.records import PublishRequest

from .conftest import Clock, drain, publish, queue, receive, subscribe, topic


def _marketplace(backend: Backend) -> None:
    topic(backend, "orders")
    for name in ("process", "notify", "delivery", "reports", "compliance"):
        queue(backend, name)
    for name in ("process", "notify", "delivery", "reports"):
        subscribe(backend, "orders", name, raw=True)
    subscribe(backend, "orders", "compliance", raw=True, filter_policy='{"market": ["ru"]}')


def test_publish_reaches_every_matching_subscription(backend: Backend) -> None:
    _marketplace(backend)
    ru = publish(backend, "orders", '{"id": 1}', attributes={"market": "ru"})
    eu = publish(backend, "orders", '{"id": 2}', attributes={"market": "eu"})
    for name in ("process", "notify", "delivery", "reports"):
        assert sorted(m.id for m in drain(backend, name)) == sorted([ru, eu])
    assert [m.id for m in drain(backend, "compliance")] == [ru]


def test_enveloped_delivery_wraps_the_message_as_an_sns_notification(backend: Backend) -> None:
    topic(backend, "t")
    queue(backend, "q")
    subscribe(backend, "t", "q")
    message_id = publish(
        backend, "t", "hello", subject="greeting", attributes={"n": 5, "s": "x", "b": b"\x01"}
    )
    (message,) = drain(backend, "q")
    assert message.message_attributes == {}
    envelope = json.loads(message.body)
    assert envelope["Type"] == "Notification"
    assert envelope["MessageId"] == message_id == message.id
    assert envelope["TopicArn"].endswith(":t")
    assert envelope["Subject"] == "greeting"
    assert envelope["Message"] == "hello"
    assert envelope["Timestamp"].endswith("Z")
    assert envelope["MessageAttributes"] == {
        "n": {"Type": "Number", "Value": "5"},
        "s": {"Type": "String", "Value": "x"},
        "b": {"Type": "Binary", "Value": "AQ=="},
    }
    assert {"SignatureVersion", "Signature", "SigningCertURL", "UnsubscribeURL"} <= envelope.keys()


def test_raw_delivery_passes_body_and_attributes_through(backend: Backend) -> None:
    topic(backend, "t")
    queue(backend, "q")
    subscribe(backend, "t", "q", raw=True)
    publish(backend, "t", "hello", attributes={"tags": ["a", "b"], "n": 1.5})
    (message,) = drain(backend, "q")
    assert message.body == "hello"
    assert message.attributes == {"tags": ["a", "b"], "n": 1.5}


def test_body_scope_filter_policy_matches_nested_fields(backend: Backend) -> None:
    topic(backend, "t")
    queue(backend, "big")
    subscribe(
        backend,
        "t",
        "big",
        raw=True,
        filter_scope="MessageBody",
        filter_policy='{"order": {"total": [{"numeric": [">", 100]}]}}',
    )
    publish(backend, "t", '{"order": {"total": 150}}')
    publish(backend, "t", '{"order": {"total": 50}}')
    publish(backend, "t", '{"order": {"total": "150"}}')
    publish(backend, "t", "not json")
    assert [json.loads(m.body)["order"]["total"] for m in drain(backend, "big")] == [150]


def test_invalid_filter_policy_is_rejected_and_no_subscription_is_made(backend: Backend) -> None:
    topic(backend, "t")
    queue(backend, "q")
    with pytest.raises(InvalidFilterPolicy, match="price"):
        subscribe(backend, "t", "q", filter_policy='{"price": [{"numeric": [">", "x"]}]}')
    assert backend.list_subscriptions("t") == []


def test_a_publish_too_large_for_one_queue_reaches_none(backend: Backend) -> None:
    topic(backend, "t")
    queue(backend, "roomy")
    queue(backend, "small", max_message_size=1024)
    subscribe(backend, "t", "roomy", raw=True)
    subscribe(backend, "t", "small", raw=True)
    with pytest.raises(MessageTooLarge, match="small"):
        publish(backend, "t", "x" * 2000)
    assert drain(backend, "roomy") == []


def test_topic_message_limit_is_256_kib(backend: Backend) -> None:
    topic(backend, "t")
    publish(backend, "t", "x" * 262_144)
    with pytest.raises(MessageTooLarge, match="262144"):
        publish(backend, "t", "x" * 262_145)


def test_batch_publish_reports_each_entry(backend: Backend) -> None:
    topic(backend, "t")
    queue(backend, "q")
    subscribe(backend, "t", "q", raw=True)
    outcomes = backend.publish(
        "t",
        [PublishRequest("a"), PublishRequest("b" * 262_145), PublishRequest("c")],
    )
    assert isinstance(outcomes[0], str) and isinstance(outcomes[2], str)
    assert isinstance(outcomes[1], MessageTooLarge)
    assert sorted(m.body for m in drain(backend, "q")) == ["a", "c"]


def test_fifo_topic_deduplicates_and_keeps_group_order_in_fifo_queues(
    backend: Backend, clock: Clock
) -> None:
    topic(backend, "t.fifo", fifo=True, content_based_deduplication=True)
    queue(backend, "a.fifo", fifo=True)
    queue(backend, "b")
    subscribe(backend, "t.fifo", "a.fifo", raw=True)
    subscribe(backend, "t.fifo", "b", raw=True)
    first = publish(backend, "t.fifo", "one", group_id="g")
    assert publish(backend, "t.fifo", "one", group_id="g") == first
    publish(backend, "t.fifo", "two", group_id="g")
    assert [m.body for m in drain(backend, "a.fifo")] == ["one", "two"]
    assert sorted(m.body for m in drain(backend, "b")) == ["one", "two"]
    clock.advance(301)
    publish(backend, "t.fifo", "one", group_id="g")
    assert [m.body for m in drain(backend, "a.fifo")] == ["one"]


def test_fifo_topic_needs_a_group_id(backend: Backend) -> None:
    topic(backend, "t.fifo", fifo=True, content_based_deduplication=True)
    with pytest.raises(MissingParameter, match="group_id"):
        publish(backend, "t.fifo", "x")


def test_fifo_queue_cannot_subscribe_to_a_standard_topic(backend: Backend) -> None:
    topic(backend, "t")
    queue(backend, "q.fifo", fifo=True)
    with pytest.raises(InvalidParameterValue, match="FIFO"):
        subscribe(backend, "t", "q.fifo")


def test_publish_to_a_missing_topic_fails(backend: Backend) -> None:
    with pytest.raises(TopicDoesNotExist, match="ghost"):
        publish(backend, "ghost")


def test_new_subscriptions_are_seen_by_the_next_publish(backend: Backend) -> None:
    topic(backend, "t")
    queue(backend, "late")
    publish(backend, "t", "before")
    subscribe(backend, "t", "late", raw=True)
    publish(backend, "t", "after")
    assert [m.body for m in drain(backend, "late")] == ["after"]


def test_an_unsubscribed_queue_gets_no_more_and_keeps_what_it_has(backend: Backend) -> None:
    _marketplace(backend)
    publish(backend, "orders", "first", attributes={"market": "ru"})
    backend.delete_subscription("orders", "compliance")
    backend.delete_subscription("orders", "compliance")  # absent now: no error
    publish(backend, "orders", "second", attributes={"market": "ru"})
    assert [m.body for m in drain(backend, "compliance")] == ["first"]
    assert [m.body for m in drain(backend, "process")] == ["first", "second"]
    assert {s.queue for s in backend.list_subscriptions("orders")} == {
        "process",
        "notify",
        "delivery",
        "reports",
    }


def test_a_deleted_topic_takes_its_subscriptions_not_their_messages(backend: Backend) -> None:
    _marketplace(backend)
    publish(backend, "orders", "kept", attributes={"market": "ru"})
    backend.delete_topic("orders")
    assert "orders" not in {t.name for t in backend.list_topics()}
    assert backend.list_subscriptions("orders") == []
    with pytest.raises(TopicDoesNotExist):
        publish(backend, "orders")
    with pytest.raises(TopicDoesNotExist):
        backend.delete_topic("orders")
    assert [m.body for m in drain(backend, "process")] == ["kept"]


def test_a_queue_deleted_and_made_again_gets_none_of_its_old_messages(backend: Backend) -> None:
    topic(backend, "orders")
    for name in ("keep", "gone"):
        queue(backend, name)
        subscribe(backend, "orders", name)
    publish(backend, "orders", "old")
    backend.delete_queue("gone")
    queue(backend, "gone")
    subscribe(backend, "orders", "gone")
    publish(backend, "orders", "new")
    assert [json.loads(m.body)["Message"] for m in drain(backend, "gone")] == ["new"]
    assert [json.loads(m.body)["Message"] for m in drain(backend, "keep")] == ["old", "new"]


def test_publishes_from_an_event_loop_are_stored_once_each_before_they_return(
    backend: Backend,
) -> None:
    """`publish_async`: 200 concurrent publishes on one loop, each acknowledged only once every
    matching queue holds it; a bad entry fails alone, a missing topic raises."""
    import asyncio

    _marketplace(backend)

    async def publish_all() -> list[object]:
        requests = [
            [PublishRequest(f'{{"n": {n}}}', to_attributes({"market": ("ru", "eu")[n % 2]}))]
            for n in range(200)
        ]
        requests[7] = [PublishRequest("")]  # an empty message: InvalidParameterValue
        results = await asyncio.gather(*[backend.publish_async("orders", r) for r in requests])
        return [outcome for (outcome,) in results]

    outcomes = asyncio.run(publish_all())
    assert isinstance(outcomes[7], InvalidParameterValue)
    stored = [o for n, o in enumerate(outcomes) if n != 7]
    assert all(isinstance(o, str) for o in stored) and len(set(stored)) == 199
    for name in ("process", "notify", "delivery", "reports"):
        assert sorted(m.id for m in drain(backend, name)) == sorted(stored)  # type: ignore[type-var]
    ru = {o for n, o in enumerate(outcomes) if n % 2 == 0 and n != 7}
    assert {m.id for m in drain(backend, "compliance")} == ru
    with pytest.raises(TopicDoesNotExist):
        asyncio.run(backend.publish_async("missing", [PublishRequest("x")]))


def test_each_queue_keeps_its_own_history_of_a_fanned_out_message(
    backend: Backend, clock: Clock
) -> None:
    """One publish, two queues: receives, lease ends and deletes in one queue change nothing of
    the message's receive count, first receive time or receipt handles in the other."""
    topic(backend, "orders")
    for name in ("a", "b"):
        queue(backend, name, visibility_timeout=30)
        subscribe(backend, "orders", name, raw=True)
    publish(backend, "orders", "one")
    for count in (1, 2, 3, 4):  # a's lease runs out three times
        (in_a,) = receive(backend, "a")
        assert in_a.receive_count == count
        if count < 4:
            clock.advance(31)
    first_in_b = clock()
    (in_b,) = receive(backend, "b")
    assert in_b.receive_count == 1
    assert in_b.first_receive_timestamp == pytest.approx(first_in_b, abs=1)
    assert in_b.first_receive_timestamp > in_a.first_receive_timestamp + 90
    clock.advance(31)  # b's lease runs out once (and a's again)
    (again_in_b,) = receive(backend, "b")
    assert again_in_b.receive_count == 2
    assert again_in_b.first_receive_timestamp == in_b.first_receive_timestamp
    (again_in_a,) = receive(backend, "a")
    assert again_in_a.receive_count == 5
    assert backend.delete_messages("b", [again_in_b.receipt_handle]) == [None]
    assert backend.delete_messages("a", [again_in_a.receipt_handle]) == [None]
    assert receive(backend, "a") == [] and receive(backend, "b") == []


def test_queues_of_one_publish_each_make_it_visible_again_at_once(backend: Backend) -> None:
    """Changing the visibility of a fanned-out message to 0 in each of its queues returns it to
    each of them: one queue's hand-back does not take the other's place."""
    topic(backend, "orders")
    for name in ("a", "b"):
        queue(backend, name)
        subscribe(backend, "orders", name, raw=True)
    publish(backend, "orders", "one")
    handles = {name: receive(backend, name)[0].receipt_handle for name in ("a", "b")}
    for name, handle in handles.items():
        assert backend.set_visibility(name, [(handle, 0)]) == [None]
    for name in ("a", "b"):
        (again,) = receive(backend, name)
        assert (again.body, again.receive_count) == ("one", 2)
        assert backend.delete_messages(name, [again.receipt_handle]) == [None]
