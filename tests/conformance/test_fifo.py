"""FIFO queues: order per message group, in-flight blocking, 5-minute deduplication."""

from __future__ import annotations

import string
import threading
import time

import pytest

from fanstack.backends.base import Backend
from fanstack.core.errors import (
    InvalidParameterValue,
    MessageNotInflight,
    MissingParameter,
)
from fanstack.core.message import OutgoingMessage
from fanstack.core.records import new_message_id

from .conftest import Clock, drain, queue, receive, send


def test_messages_of_a_group_come_out_in_order(backend: Backend) -> None:
    queue(backend, "q.fifo", fifo=True, content_based_deduplication=True)
    for index in range(30):
        send(backend, "q.fifo", f"m{index}", group_id="g")
    bodies = [m.body for m in drain(backend, "q.fifo")]
    assert bodies == [f"m{index}" for index in range(30)]


def test_in_flight_message_blocks_its_group_but_not_others(backend: Backend) -> None:
    queue(backend, "q.fifo", fifo=True, content_based_deduplication=True)
    send(backend, "q.fifo", "a1", group_id="a")
    send(backend, "q.fifo", "a2", group_id="a")
    send(backend, "q.fifo", "b1", group_id="b")
    (first,) = receive(backend, "q.fifo", 1)
    assert first.body == "a1"
    assert [m.body for m in receive(backend, "q.fifo")] == ["b1"]
    assert receive(backend, "q.fifo") == []
    backend.delete_messages("q.fifo", [first.receipt_handle])
    assert [m.body for m in receive(backend, "q.fifo")] == ["a2"]


def test_a_batch_may_hold_several_messages_of_one_group_in_order(backend: Backend) -> None:
    queue(backend, "q.fifo", fifo=True, content_based_deduplication=True)
    for body in ("1", "2", "3"):
        send(backend, "q.fifo", body, group_id="g")
    messages = receive(backend, "q.fifo")
    assert [m.body for m in messages] == ["1", "2", "3"]
    assert [m.sequence_number for m in messages] == sorted(m.sequence_number for m in messages)  # type: ignore[type-var]


def test_a_failed_message_is_redelivered_before_later_ones(backend: Backend, clock: Clock) -> None:
    queue(backend, "q.fifo", fifo=True, content_based_deduplication=True, visibility_timeout=5)
    send(backend, "q.fifo", "first", group_id="g")
    send(backend, "q.fifo", "second", group_id="g")
    (message,) = receive(backend, "q.fifo", 1)
    clock.advance(6)
    again = receive(backend, "q.fifo", 1)
    assert [m.body for m in again] == ["first"]
    assert again[0].receive_count == 2
    assert message.id == again[0].id


def test_duplicates_within_five_minutes_are_accepted_but_not_delivered(
    backend: Backend, clock: Clock
) -> None:
    queue(backend, "q.fifo", fifo=True)
    first = send(backend, "q.fifo", "one", group_id="g", deduplication_id="d1")
    send(backend, "q.fifo", "one again", group_id="g", deduplication_id="d1")
    assert [m.body for m in drain(backend, "q.fifo")] == ["one"]
    clock.advance(299)
    send(backend, "q.fifo", "still a duplicate", group_id="g", deduplication_id="d1")
    assert drain(backend, "q.fifo") == []
    clock.advance(2)
    second = send(backend, "q.fifo", "after the interval", group_id="g", deduplication_id="d1")
    assert second != first
    assert [m.body for m in drain(backend, "q.fifo")] == ["after the interval"]


def test_content_based_deduplication_uses_the_body(backend: Backend) -> None:
    queue(backend, "q.fifo", fifo=True, content_based_deduplication=True)
    send(backend, "q.fifo", "same", group_id="a")
    send(backend, "q.fifo", "same", group_id="b")
    send(backend, "q.fifo", "other", group_id="a")
    assert [m.body for m in drain(backend, "q.fifo")] == ["same", "other"]


def test_fifo_sends_need_a_group_and_a_deduplication_id(backend: Backend) -> None:
    queue(backend, "q.fifo", fifo=True)
    with pytest.raises(MissingParameter, match="group_id"):
        send(backend, "q.fifo", "x", deduplication_id="d")
    with pytest.raises(InvalidParameterValue, match="deduplication_id"):
        send(backend, "q.fifo", "x", group_id="g")
    with pytest.raises(InvalidParameterValue, match="per queue only"):
        send(backend, "q.fifo", "x", group_id="g", deduplication_id="d", delay_seconds=5)


def test_standard_queue_rejects_a_deduplication_id(backend: Backend) -> None:
    queue(backend, "q")
    with pytest.raises(InvalidParameterValue, match="only for FIFO"):
        send(backend, "q", "x", deduplication_id="d")


def test_fifo_dead_letter_keeps_the_group(backend: Backend) -> None:
    queue(backend, "dlq.fifo", fifo=True)
    queue(backend, "q.fifo", fifo=True, max_receive_count=1, dead_letter="dlq.fifo")
    send(backend, "q.fifo", "a", group_id="g", deduplication_id="1")
    send(backend, "q.fifo", "b", group_id="g", deduplication_id="2")
    (message,) = receive(backend, "q.fifo", 1)
    backend.set_visibility("q.fifo", [(message.receipt_handle, 0)], failure="boom")
    # The head moves to the DLQ on its next receive and the group continues with "b".
    assert [m.body for m in receive(backend, "q.fifo")] == ["b"]
    (dead,) = receive(backend, "dlq.fifo")
    assert (dead.body, dead.group_id, dead.failure) == ("a", "g", "boom")


def test_fifo_accepts_a_per_message_delay_of_zero(backend: Backend, clock: Clock) -> None:
    queue(backend, "q.fifo", fifo=True)
    queue(backend, "slow.fifo", fifo=True, delay=10)
    send(backend, "q.fifo", "now", group_id="g", deduplication_id="1", delay_seconds=0)
    assert [m.body for m in receive(backend, "q.fifo")] == ["now"]
    # 0 is "not given": the queue's own delay still applies.
    send(backend, "slow.fifo", "later", group_id="g", deduplication_id="1", delay_seconds=0)
    assert receive(backend, "slow.fifo") == []
    clock.advance(11)
    assert [m.body for m in receive(backend, "slow.fifo")] == ["later"]


def test_fifo_delete_with_an_expired_receipt_handle_fails(backend: Backend, clock: Clock) -> None:
    queue(backend, "q.fifo", fifo=True, content_based_deduplication=True, visibility_timeout=5)
    send(backend, "q.fifo", "x", group_id="g")
    (message,) = receive(backend, "q.fifo")
    clock.advance(6)
    (outcome,) = backend.delete_messages("q.fifo", [message.receipt_handle])
    assert isinstance(outcome, InvalidParameterValue)
    assert outcome.code == "InvalidParameterValue"
    assert "receipt handle has expired" in str(outcome)
    (again,) = receive(backend, "q.fifo")
    assert again.id == message.id
    assert backend.delete_messages("q.fifo", [again.receipt_handle]) == [None]


def test_fifo_change_visibility_needs_the_message_in_flight(backend: Backend, clock: Clock) -> None:
    queue(backend, "q.fifo", fifo=True, content_based_deduplication=True, visibility_timeout=5)
    send(backend, "q.fifo", "x", group_id="g")
    (message,) = receive(backend, "q.fifo")
    clock.advance(6)
    (outcome,) = backend.set_visibility("q.fifo", [(message.receipt_handle, 30)])
    assert isinstance(outcome, MessageNotInflight)


@pytest.mark.parametrize("bad", ["group 123", "x" * 129, "", "new\nline", "caf\u00e9"])
def test_group_and_deduplication_ids_are_1_to_128_letters_digits_or_punctuation(
    backend: Backend, bad: str
) -> None:
    queue(backend, "q.fifo", fifo=True)
    with pytest.raises(InvalidParameterValue, match="group_id"):
        send(backend, "q.fifo", group_id=bad, deduplication_id="d")
    with pytest.raises(InvalidParameterValue, match="deduplication_id"):
        send(backend, "q.fifo", group_id="g", deduplication_id=bad)
    assert backend.stats("q.fifo").visible == 0


def test_ids_of_128_punctuation_characters_are_accepted(backend: Backend) -> None:
    queue(backend, "q.fifo", fifo=True)
    longest = (string.punctuation + string.ascii_letters + string.digits) * 2
    longest = longest[:128]
    send(backend, "q.fifo", group_id=longest, deduplication_id=longest)
    (message,) = receive(backend, "q.fifo")
    assert (message.group_id, message.deduplication_id) == (longest, longest)


def test_a_batch_send_keeps_its_group_order(backend: Backend) -> None:
    queue(backend, "q.fifo", fifo=True)
    for start in range(0, 100, 10):
        batch = [
            OutgoingMessage(
                id=new_message_id(), body=str(n), group_id="g", deduplication_id=str(n)
            )
            for n in range(start, start + 10)
        ]
        assert backend.send("q.fifo", batch) == [m.id for m in batch]
    assert [int(m.body) for m in drain(backend, "q.fifo")] == list(range(100))


def test_threads_receiving_at_once_keep_groups_in_order_one_in_flight(backend: Backend) -> None:
    queue(backend, "q.fifo", fifo=True, content_based_deduplication=True, visibility_timeout=30)
    for n in range(60):
        send(backend, "q.fifo", f"{n % 3}:{n}", group_id=str(n % 3))
    lock = threading.Lock()
    in_flight: set[str] = set()
    seen: dict[str, list[int]] = {"0": [], "1": [], "2": []}
    problems: list[str] = []

    def work() -> None:
        idle = 0
        while idle < 20:
            try:
                batch = receive(backend, "q.fifo", 3)
            except Exception as error:
                problems.append(repr(error))
                return
            if not batch:
                idle += 1
                time.sleep(0.01)
                continue
            idle = 0
            groups = {m.group_id for m in batch}
            with lock:
                if groups & in_flight:
                    problems.append(f"{groups & in_flight} handed out while in flight")
                in_flight.update(g for g in groups if g is not None)
                for m in batch:
                    group, number = m.body.split(":")
                    seen[group].append(int(number))
            with lock:  # before the delete: once it is done, another thread may take the group
                in_flight.difference_update(groups)
            handles = [m.receipt_handle for m in batch]
            assert backend.delete_messages("q.fifo", handles) == [None] * len(batch)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert problems == []
    for group, numbers in seen.items():
        assert numbers == list(range(int(group), 60, 3))
