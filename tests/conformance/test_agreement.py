"""Two handles on one store agree, after every operation, on a queue's contents and order.

On NATS a process holds no queue state: messages, leases and counts live in JetStream, so a
second handle (another process, in effect) must see exactly what the first sees, and a message
received through one handle can be settled through the other. On SQLite both handles read one
database file. There is no way to look at a queue without changing it, so the handles are
compared through `stats()` after each step and through what they receive.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import pytest

from fanstack.backends.base import Backend
from fanstack.core.message import ReceivedMessage

from ..support.stores import Store
from .conftest import Clock, drain, publish, queue, receive, send, subscribe, topic


class Depths(NamedTuple):
    """What `stats()` says of a queue, less its oldest age (that moves with the clock)."""

    visible: int
    in_flight: int
    delayed: int
    dead_letter_depth: int | None
    dead_lettered: int


def depths(backend: Backend, name: str) -> Depths:
    s = backend.stats(name)
    return Depths(s.visible, s.in_flight, s.delayed, s.dead_letter_depth, s.dead_lettered)


def agree(handles: Sequence[Backend], name: str, expected: Depths) -> None:
    """Every handle reports `expected` for queue `name`."""
    seen = [depths(handle, name) for handle in handles]
    assert seen == [expected] * len(handles), f"{name}: handles report {seen}"


def bodies(messages: Sequence[ReceivedMessage]) -> list[str]:
    return [m.body for m in messages]


@pytest.fixture
def second(store: Store, clock: Clock) -> Iterator[Backend]:
    """Another handle on the test's store, opened before any traffic."""
    handle = store.open(clock)
    yield handle
    handle.close()


def test_two_handles_agree_on_a_queue_after_every_step(backend: Backend, second: Backend) -> None:
    a, b = backend, second
    queue(a, "q")
    agree([a, b], "q", Depths(0, 0, 0, None, 0))
    sent = [f"m{i}" for i in range(10)]
    ids = [send(a, "q", body) for body in sent]
    agree([a, b], "q", Depths(10, 0, 0, None, 0))

    from_a = receive(a, "q", 3)
    agree([a, b], "q", Depths(7, 3, 0, None, 0))
    from_b = receive(b, "q", 3)
    agree([a, b], "q", Depths(4, 6, 0, None, 0))
    assert not {m.id for m in from_a} & {m.id for m in from_b}
    # Oldest first whichever handle receives: B goes on where A stopped.
    assert bodies(from_a) + bodies(from_b) == sent[:6]
    assert [m.id for m in from_a + from_b] == ids[:6]
    assert all(m.receive_count == 1 for m in from_a + from_b)

    # A receipt handle works through the other handle.
    assert b.delete_messages("q", [from_a[0].receipt_handle]) == [None]
    agree([a, b], "q", Depths(4, 5, 0, None, 0))
    assert a.delete_messages("q", [from_b[0].receipt_handle]) == [None]
    agree([a, b], "q", Depths(4, 4, 0, None, 0))
    # A message handed back through the other handle is visible to both.
    assert a.set_visibility("q", [(from_b[1].receipt_handle, 0)]) == [None]
    agree([a, b], "q", Depths(5, 3, 0, None, 0))

    # What is left, received alternately: each remaining message exactly once.
    rest_b = receive(b, "q", 2)
    rest_a = receive(a, "q", 10)
    agree([a, b], "q", Depths(0, 8, 0, None, 0))
    remaining = {m.body for m in rest_a + rest_b}
    assert len(rest_a) + len(rest_b) == len(remaining) == 5
    assert remaining == {"m4"} | set(sent[6:])
    (again,) = [m for m in rest_a + rest_b if m.body == "m4"]
    assert again.receive_count == 2
    assert receive(a, "q") == [] and receive(b, "q") == []

    # Everything deleted, each message through the handle that did NOT receive it.
    held_by_a = from_a[1:] + rest_a
    held_by_b = [from_b[2], *rest_b]
    assert b.delete_messages("q", [m.receipt_handle for m in held_by_a]) == [None] * len(held_by_a)
    agree([a, b], "q", Depths(0, len(held_by_b), 0, None, 0))
    assert a.delete_messages("q", [m.receipt_handle for m in held_by_b]) == [None] * len(held_by_b)
    agree([a, b], "q", Depths(0, 0, 0, None, 0))


def _dead_letter_in_order(
    handles: Sequence[Backend], order: Sequence[int], held: Sequence[ReceivedMessage]
) -> list[str]:
    """Fail the held messages of `src` one at a time in `order`, each into the DLQ at once.

    The message is handed back with a failure through one handle and moved to the DLQ by the
    next receive, through the other (every other message is in flight, so that receive moves it
    and hands out nothing). Returns the bodies in the order they went into the DLQ."""
    went: list[str] = []
    for step, index in enumerate(order):
        settle, mover = handles[step % 2], handles[(step + 1) % 2]
        message = held[index]
        changed = settle.set_visibility("src", [(message.receipt_handle, 0)], failure="boom")
        assert changed == [None]
        assert receive(mover, "src") == []
        went.append(message.body)
        in_flight = len(held) - len(went)
        agree(handles, "src", Depths(0, in_flight, 0, len(went), len(went)))
        agree(handles, "dlq", Depths(len(went), 0, 0, None, 0))
    return went


def _dead_letters(a: Backend, b: Backend, count: int) -> tuple[list[str], list[ReceivedMessage]]:
    """`src` (max_receive_count=1, DLQ `dlq`) with `count` messages, all in flight: half
    received through each handle. Returns the bodies sent and the messages held, in send
    order."""
    queue(a, "dlq")
    queue(a, "src", max_receive_count=1, dead_letter="dlq")
    sent = [f"d{i}" for i in range(count)]
    for body in sent:
        send(a, "src", body)
    held = receive(a, "src", count // 2) + receive(b, "src", count - count // 2)
    assert bodies(held) == sent
    agree([a, b], "src", Depths(0, count, 0, 0, 0))
    return sent, held


def _redrive_from_b_and_drain_from_a(a: Backend, b: Backend, went: list[str]) -> None:
    count = len(went)
    assert b.redrive_dead_letters("src", batch=3) == count
    agree([a, b], "src", Depths(count, 0, 0, 0, count))
    agree([a, b], "dlq", Depths(0, 0, 0, None, 0))
    back = drain(a, "src")
    # The order they went into the DLQ, the same in the handle that moved them and in the
    # one that receives them (not a sorted comparison: that is what this is about).
    assert bodies(back) == went
    assert all(m.receive_count == 1 and m.failure is None for m in back)
    agree([a, b], "src", Depths(0, 0, 0, 0, count))


def test_dead_letters_and_their_redrive_agree_across_handles(
    backend: Backend, second: Backend
) -> None:
    a, b = backend, second
    sent, held = _dead_letters(a, b, 8)
    went = _dead_letter_in_order([a, b], range(len(held)), held)
    assert went == sent
    _redrive_from_b_and_drain_from_a(a, b, went)


def test_a_redrive_returns_dead_letters_in_the_order_they_went_into_the_dlq(
    backend: Backend, second: Backend
) -> None:
    """The same, dead-lettered in an order that is not the send order."""
    a, b = backend, second
    sent, held = _dead_letters(a, b, 8)
    order = [5, 2, 7, 0, 3, 6, 1, 4]
    went = _dead_letter_in_order([a, b], order, held)
    assert went == [sent[i] for i in order]
    _redrive_from_b_and_drain_from_a(a, b, went)


def test_a_dead_letter_received_and_handed_back_is_still_redriven(
    backend: Backend, second: Backend
) -> None:
    """A DLQ consumer that receives dead letters and gives them back (visibility 0, as a
    failing handler does) leaves them in the DLQ as dead letters of their source: the redrive,
    from the handle that received them, moves them all."""
    a, b = backend, second
    sent, held = _dead_letters(a, b, 6)
    went = _dead_letter_in_order([a, b], range(len(held)), held)
    from_dlq = receive(b, "dlq", 10)
    assert bodies(from_dlq) == went
    assert all(m.source_queue == "src" for m in from_dlq)
    changes = [(m.receipt_handle, 0) for m in from_dlq]
    assert a.set_visibility("dlq", changes) == [None] * len(went)
    agree([a, b], "dlq", Depths(len(went), 0, 0, None, 0))
    agree([a, b], "src", Depths(0, 0, 0, len(went), len(went)))
    assert b.redrive_dead_letters("src", batch=4) == len(went)
    agree([a, b], "dlq", Depths(0, 0, 0, None, 0))
    agree([a, b], "src", Depths(len(went), 0, 0, 0, len(went)))
    # The order after a hand-back is not what this test is about: the order test is above.
    assert sorted(bodies(drain(a, "src"))) == sorted(sent)


def test_a_handle_opened_late_sees_what_the_others_see(
    backend: Backend, second: Backend, store: Store, clock: Clock
) -> None:
    a, b = backend, second
    queue(a, "dlq")
    queue(a, "q", max_receive_count=1, dead_letter="dlq")
    send(a, "q", "l0")
    send(b, "q", "l1")
    (l0, l1) = receive(a, "q", 2)
    assert b.delete_messages("q", [l0.receipt_handle]) == [None]
    assert b.set_visibility("q", [(l1.receipt_handle, 0)], failure="boom") == [None]
    assert receive(a, "q") == []  # moves l1 to the DLQ
    sent = [f"l{i}" for i in range(12)]
    for i, body in enumerate(sent[2:], start=2):
        send(a if i % 2 else b, "q", body)
    held = receive(b, "q", 3)
    assert bodies(held) == sent[2:5]
    assert a.set_visibility("q", [(held[1].receipt_handle, 0)], uncount=True) == [None]
    # Now: l2 and l4 in flight, l3 back (uncounted), l5..l11 never received, l1 in the DLQ.
    expected = Depths(8, 2, 0, 1, 1)
    agree([a, b], "q", expected)

    third = store.open(clock)
    try:
        agree([a, b, third], "q", expected)
        agree([a, b, third], "dlq", Depths(1, 0, 0, None, 0))
        remaining = drain(third, "q")
        assert sorted(bodies(remaining)) == sorted(["l3", *sent[5:]])
        assert bodies([m for m in remaining if m.body != "l3"]) == sent[5:]
        assert [m.receive_count for m in remaining if m.body == "l3"] == [1]
        agree([a, b, third], "q", Depths(0, 2, 0, 1, 1))
        # The late handle settles what the others hold, and empties the DLQ.
        handles = [held[0].receipt_handle, held[2].receipt_handle]
        assert third.delete_messages("q", handles) == [None, None]
        (dead,) = drain(third, "dlq")
        assert (dead.body, dead.failure, dead.source_queue) == ("l1", "boom", "q")
        agree([a, b, third], "q", Depths(0, 0, 0, 0, 1))
    finally:
        third.close()


def test_a_topic_published_from_one_handle_is_seen_alike_from_another(
    backend: Backend, second: Backend
) -> None:
    a, b = backend, second
    topic(a, "orders")
    for name in ("all", "copy", "ru"):
        queue(a, name)
    subscribe(a, "orders", "all", raw=True)
    subscribe(a, "orders", "copy", raw=True)
    subscribe(a, "orders", "ru", raw=True, filter_policy='{"market": ["ru"]}')
    assert b.list_subscriptions("orders") == a.list_subscriptions("orders")

    markets = ["ru", "eu", "us", "ru", "eu", "ru"]
    published = [
        (publish(a, "orders", f"o{i}", attributes={"market": m}), f"o{i}", m)
        for i, m in enumerate(markets)
    ]
    everything = [body for _, body, _ in published]
    russian = [body for _, body, market in published if market == "ru"]
    for name, count in (("all", 6), ("copy", 6), ("ru", 3)):
        agree([a, b], name, Depths(count, 0, 0, None, 0))

    # Each queue holds its own copy: draining one through B leaves the others whole.
    from_all = drain(b, "all")
    assert bodies(from_all) == everything
    assert [m.id for m in from_all] == [message_id for message_id, _, _ in published]
    agree([a, b], "all", Depths(0, 0, 0, None, 0))
    agree([a, b], "copy", Depths(6, 0, 0, None, 0))
    agree([a, b], "ru", Depths(3, 0, 0, None, 0))
    head = receive(a, "copy", 2)
    agree([a, b], "copy", Depths(4, 2, 0, None, 0))
    tail = receive(b, "copy", 10)
    assert bodies(head) + bodies(tail) == everything
    assert bodies(drain(b, "ru")) == russian
    assert a.delete_messages("copy", [m.receipt_handle for m in head + tail]) == [None] * 6
    for name in ("all", "copy", "ru"):
        agree([a, b], name, Depths(0, 0, 0, None, 0))

    # B, having listed the subscriptions, publishes through the same routes.
    late = publish(b, "orders", "o6", attributes={"market": "ru"})
    for name in ("all", "copy", "ru"):
        agree([a, b], name, Depths(1, 0, 0, None, 0))
        assert [m.id for m in drain(a, name)] == [late]
