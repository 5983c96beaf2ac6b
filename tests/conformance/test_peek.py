"""Peek: look at what a queue holds without receiving it (the dashboard and `dlq peek`)."""

from __future__ import annotations

import pytest

from fanstack.backends.base import Backend
from fanstack.core.errors import QueueDoesNotExist

from .conftest import Clock, publish, queue, receive, send, subscribe, topic


def _dead_letter_three(backend: Backend) -> list[str]:
    queue(backend, "orders-dlq")
    queue(backend, "orders", max_receive_count=1, dead_letter="orders-dlq", visibility_timeout=5)
    ids = [send(backend, "orders", f"order {n}", attributes={"n": str(n)}) for n in range(3)]
    for _ in range(3):
        (message,) = receive(backend, "orders", 1)
        failure = f"ValueError: {message.body}"
        assert backend.set_visibility("orders", [(message.receipt_handle, 0)], failure) == [None]
    assert receive(backend, "orders") == []  # the next receive moves all three to the DLQ
    return ids


def test_peek_shows_dead_letters_in_order_with_their_failure(backend: Backend) -> None:
    ids = _dead_letter_three(backend)
    peeked = backend.peek("orders-dlq", 10)
    assert [m.id for m in peeked] == ids
    assert [m.body for m in peeked] == ["order 0", "order 1", "order 2"]
    assert peeked[0].attributes == {"n": "0"}
    assert peeked[0].failure == "ValueError: order 0"
    assert peeked[0].source_queue == "orders"
    assert all(m.receipt_handle == "" for m in peeked)


def test_peek_changes_nothing_a_receive_then_sees(backend: Backend) -> None:
    _dead_letter_three(backend)
    before = backend.stats("orders-dlq")
    first = backend.peek("orders-dlq", 10)
    second = backend.peek("orders-dlq", 10)
    assert [(m.id, m.receive_count) for m in second] == [(m.id, m.receive_count) for m in first]
    after = backend.stats("orders-dlq")
    assert (after.visible, after.in_flight) == (before.visible, before.in_flight) == (3, 0)
    received = receive(backend, "orders-dlq")
    assert sorted(m.id for m in received) == sorted(m.id for m in first)
    # a peek counts no receive: the dead letters carry on from the source's count
    assert {m.receive_count for m in received} == {m.receive_count + 1 for m in first}


def test_peek_stops_at_the_limit_oldest_first(backend: Backend) -> None:
    queue(backend, "q")
    ids = [send(backend, "q", f"m{n}") for n in range(5)]
    assert [m.id for m in backend.peek("q", 2)] == ids[:2]
    assert [m.id for m in backend.peek("q", 10)] == ids


def test_peek_shows_topic_messages_as_the_queue_receives_them(backend: Backend) -> None:
    topic(backend, "orders")
    queue(backend, "raw")
    queue(backend, "wrapped")
    subscribe(backend, "orders", "raw", raw=True)
    subscribe(backend, "orders", "wrapped")
    message_id = publish(backend, "orders", '{"id": 1}', attributes={"market": "ru"})
    (raw,) = backend.peek("raw", 10)
    assert (raw.id, raw.body, raw.attributes) == (message_id, '{"id": 1}', {"market": "ru"})
    (wrapped,) = backend.peek("wrapped", 10)
    assert wrapped.body == receive(backend, "wrapped")[0].body  # the SNS envelope
    assert '"TopicArn"' in wrapped.body


def test_peek_leaves_out_what_was_deleted_or_expired(backend: Backend, clock: Clock) -> None:
    queue(backend, "q", retention=60)
    send(backend, "q", "deleted")
    (message,) = receive(backend, "q")
    assert backend.delete_messages("q", [message.receipt_handle]) == [None]
    assert backend.peek("q", 10) == []
    send(backend, "q", "expires")
    clock.advance(61)
    assert backend.peek("q", 10) == []


def test_peek_of_an_unknown_queue_fails(backend: Backend) -> None:
    with pytest.raises(QueueDoesNotExist):
        backend.peek("nope", 10)
