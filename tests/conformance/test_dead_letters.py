"""Redrive to the dead-letter queue and back (SQS RedrivePolicy, StartMessageMoveTask)."""

from __future__ import annotations

import pytest

from fanstack.backends.base import Backend
from fanstack.core.errors import InvalidParameterValue
from fanstack.core.message import with_trace_context
from fanstack.core.records import PublishRequest
from fanstack.core.specs import QueueSpec

from .conftest import Clock, publish, queue, receive, send, subscribe, topic


def _fail(backend: Backend, name: str, reason: str | None = None) -> None:
    """Receive one message and hand it back at once, as a failed handler would."""
    (message,) = receive(backend, name, 1)
    assert backend.set_visibility(name, [(message.receipt_handle, 0)], failure=reason) == [None]


def test_message_moves_to_dlq_after_max_receives_with_its_failure(backend: Backend) -> None:
    queue(backend, "orders-dlq")
    queue(backend, "orders", max_receive_count=3, dead_letter="orders-dlq")
    message_id = send(backend, "orders", "order", attributes={"market": "ru"})
    (first,) = receive(backend, "orders", 1)
    backend.set_visibility("orders", [(first.receipt_handle, 0)], failure="ValueError: attempt 1")
    for attempt in range(2, 4):
        _fail(backend, "orders", f"ValueError: attempt {attempt}")
    assert receive(backend, "orders") == []
    (dead,) = receive(backend, "orders-dlq")
    assert dead.id == message_id
    assert dead.body == "order"
    assert dead.attributes == {"market": "ru"}
    assert dead.failure == "ValueError: attempt 3"
    assert dead.source_queue == "orders"
    # As in SQS: ApproximateReceiveCount carries on (3 in the source, this is the 4th) and the
    # message names its source queue's ARN (DeadLetterQueueSourceArn).
    assert dead.receive_count == 4
    assert dead.first_receive_timestamp == first.first_receive_timestamp
    assert dead.dead_letter_queue_source_arn == QueueSpec(name="orders").arn
    stats = backend.stats("orders")
    assert stats.dead_lettered == 1
    assert stats.dead_letter_depth == 1


def test_dead_letter_without_a_recorded_failure_names_the_limit(
    backend: Backend, clock: Clock
) -> None:
    queue(backend, "dlq")
    queue(backend, "q", max_receive_count=1, dead_letter="dlq", visibility_timeout=5)
    send(backend, "q")
    receive(backend, "q")
    clock.advance(6)
    assert receive(backend, "q") == []
    (dead,) = receive(backend, "dlq")
    assert dead.failure == "exceeded max_receive_count"


def test_a_dead_letter_tells_failed_receives_from_lost_ones(backend: Backend, clock: Clock) -> None:
    queue(backend, "dlq")
    queue(backend, "q", max_receive_count=4, dead_letter="dlq", visibility_timeout=5)
    send(backend, "q")
    _fail(backend, "q", "ValueError: one")
    receive(backend, "q")  # a consumer crashes holding it: the lease runs out
    clock.advance(6)
    _fail(backend, "q", "ValueError: two")
    receive(backend, "q")  # lost again
    clock.advance(6)
    assert receive(backend, "q") == []
    (dead,) = receive(backend, "dlq")
    assert dead.failure == "ValueError: two"
    assert (dead.failed_receives, dead.lost_receives) == (2, 2)
    clock.advance(31)  # the DLQ's own visibility timeout
    backend.redrive_dead_letters("q")
    (back,) = receive(backend, "q")
    assert (back.failed_receives, back.lost_receives) == (0, None)


def test_an_uncounted_hand_back_is_neither_failed_nor_lost(backend: Backend) -> None:
    queue(backend, "dlq")
    queue(backend, "q", max_receive_count=1, dead_letter="dlq")
    send(backend, "q")
    for _ in range(3):  # retry-later: the receive is given back
        (message,) = receive(backend, "q")
        backend.set_visibility("q", [(message.receipt_handle, 0)], uncount=True)
    (message,) = receive(backend, "q")
    assert message.receive_count == 1


def test_redrive_moves_dead_letters_back_in_order(backend: Backend) -> None:
    queue(backend, "dlq")
    queue(backend, "q", max_receive_count=1, dead_letter="dlq")
    bodies = [f"m{i}" for i in range(5)]
    for body in bodies:
        send(backend, "q", body)
    for _ in bodies:
        _fail(backend, "q", "boom")
    assert receive(backend, "q") == []
    assert backend.stats("q").dead_letter_depth == 5
    assert backend.redrive_dead_letters("q", batch=2) == 5
    assert backend.stats("q").dead_letter_depth == 0
    back = receive(backend, "q")
    assert sorted(m.body for m in back) == bodies
    assert all(m.receive_count == 1 and m.failure is None for m in back)


def test_a_redriven_message_is_a_new_message(backend: Backend, clock: Clock) -> None:
    """As SQS's redrive: a new message id, sent at the redrive and kept for the source's
    retention from then; its body, attributes and SNS envelope as they were. The copy another
    queue of the same topic message holds keeps its id."""
    queue(backend, "dlq")
    queue(backend, "q", max_receive_count=1, dead_letter="dlq", retention=120)
    queue(backend, "audit")
    topic(backend, "events")
    subscribe(backend, "events", "q")
    subscribe(backend, "events", "audit")
    published = publish(backend, "events", "order-1", attributes={"market": "eu"})
    (first,) = receive(backend, "q")
    backend.set_visibility("q", [(first.receipt_handle, 0)], failure="boom")
    assert receive(backend, "q") == []
    clock.advance(100)  # most of the source's retention, spent before the redrive
    (dead,) = receive(backend, "dlq")
    backend.set_visibility("dlq", [(dead.receipt_handle, 0)], uncount=True)
    redriven_at = clock()
    assert backend.redrive_dead_letters("q") == 1
    clock.advance(60)  # past the original send's retention, within the redrive's
    (back,) = receive(backend, "q")
    assert back.id not in (published, first.id)
    assert back.sent_timestamp >= redriven_at - 1
    assert back.receive_count == 1
    assert back.failure is None
    assert back.body == first.body  # the same SNS envelope, naming the published message
    assert published in back.body
    assert back.attributes == first.attributes
    (kept,) = receive(backend, "audit")
    assert kept.id == first.id


def test_a_redriven_fifo_message_comes_after_those_its_group_got_meanwhile(
    backend: Backend,
) -> None:
    """A new message: a FIFO group's messages sent while it was in the DLQ come first."""
    queue(backend, "dlq.fifo", fifo=True)
    queue(backend, "q.fifo", fifo=True, max_receive_count=1, dead_letter="dlq.fifo")
    send(backend, "q.fifo", "m1", group_id="g", deduplication_id="1")
    _fail(backend, "q.fifo")
    assert receive(backend, "q.fifo") == []
    send(backend, "q.fifo", "m2", group_id="g", deduplication_id="2")
    assert backend.redrive_dead_letters("q.fifo") == 1
    order = []
    while batch := receive(backend, "q.fifo", 1):
        order.append(batch[0].body)
        backend.delete_messages("q.fifo", [batch[0].receipt_handle])
    assert order == ["m2", "m1"]


def test_redrive_only_moves_messages_from_that_source(backend: Backend) -> None:
    queue(backend, "dlq")
    queue(backend, "a", max_receive_count=1, dead_letter="dlq")
    queue(backend, "b", max_receive_count=1, dead_letter="dlq")
    send(backend, "a", "from-a")
    send(backend, "b", "from-b")
    _fail(backend, "a")
    _fail(backend, "b")
    receive(backend, "a")
    receive(backend, "b")
    assert backend.redrive_dead_letters("a") == 1
    assert [m.body for m in receive(backend, "a")] == ["from-a"]
    assert backend.stats("b").dead_letter_depth == 1


def test_redrive_needs_a_dead_letter_queue(backend: Backend) -> None:
    queue(backend, "q")
    with pytest.raises(InvalidParameterValue, match="no dead-letter queue"):
        backend.redrive_dead_letters("q")


def test_dead_letter_queue_must_match_fifo_ness(backend: Backend) -> None:
    queue(backend, "dlq")
    with pytest.raises(InvalidParameterValue, match="FIFO"):
        queue(backend, "q.fifo", fifo=True, max_receive_count=2, dead_letter="dlq")


def test_a_receive_with_no_visibility_timeout_holds_each_message_once(backend: Backend) -> None:
    """A visibility timeout of 0 leaves what a receive takes visible at once: the receive
    still hands each message out once, beside dead-lettering one that is due."""
    queue(backend, "jobs-dlq")
    queue(backend, "jobs", max_receive_count=1, dead_letter="jobs-dlq")
    due = send(backend, "jobs", "received once already")
    (first,) = receive(backend, "jobs", 1, visibility_timeout=0)
    assert first.id == due
    fresh = {send(backend, "jobs", f"fresh {n}") for n in range(3)}
    batch = receive(backend, "jobs", 10, visibility_timeout=0)
    assert sorted(m.id for m in batch) == sorted(fresh)  # each once; the due one moved
    assert [m.id for m in receive(backend, "jobs-dlq")] == [due]
    queue(backend, "plain")
    for n in range(3):
        send(backend, "plain", f"plain {n}")
    for _ in range(3):  # full batches and short ones alike
        again = receive(backend, "plain", 2, visibility_timeout=0)
        assert len({m.id for m in again}) == len(again) == 2


def test_an_enveloped_delivery_keeps_its_trace_context_through_retries_the_dlq_and_back(
    backend: Backend,
) -> None:
    queue(backend, "dlq")
    queue(backend, "q", max_receive_count=2, dead_letter="dlq")
    topic(backend, "t")
    subscribe(backend, "t", "q")
    context = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"
    backend.publish("t", [PublishRequest("hello", with_trace_context({}, context))])
    seen = []
    for _ in range(2):
        (message,) = receive(backend, "q")
        seen.append(message.trace_context)
        backend.set_visibility("q", [(message.receipt_handle, 0)], failure="boom")
    assert receive(backend, "q") == []
    (dead,) = receive(backend, "dlq")
    backend.set_visibility("dlq", [(dead.receipt_handle, 0)], uncount=True)
    assert backend.redrive_dead_letters("q") == 1
    (back,) = receive(backend, "q")
    assert [*seen, dead.trace_context, back.trace_context] == [context] * 4
    assert back.attributes == {}  # the user's attributes travel in the envelope
