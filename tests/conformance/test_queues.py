"""Standard-queue semantics every backend keeps (SQS)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
import time

import pytest

from fanstack import App
from fanstack.backends.base import Backend
from fanstack.core.errors import (
    BatchRequestTooLong,
    InvalidMessageContents,
    InvalidParameterValue,
    MessageTooLarge,
    MissingParameter,
    PurgeQueueInProgress,
    QueueDoesNotExist,
    QueueNameExists,
    ReceiptHandleIsInvalid,
)
from fanstack.core.specs import QueueSpec

from .conftest import Clock, Store, drain, queue, receive, send


def test_sent_message_is_received_with_body_attributes_and_system_fields(backend: Backend) -> None:
    queue(backend, "q")
    before = backend.clock()
    message_id = send(
        backend,
        "q",
        "payload",
        attributes={"s": "x", "n": 7, "f": 2.5, "b": b"\x00\x01", "arr": ["a", 1, True, None]},
    )
    (message,) = receive(backend, "q")
    assert message.id == message_id
    assert message.body == "payload"
    assert message.attributes == {
        "s": "x",
        "n": 7,
        "f": 2.5,
        "b": b"\x00\x01",
        "arr": ["a", 1, True, None],
    }
    assert message.message_attributes["n"].data_type == "Number"
    assert message.receive_count == 1
    assert message.sent_timestamp >= before - 1
    assert message.first_receive_timestamp >= message.sent_timestamp
    assert message.queue == "q"


def test_received_message_is_invisible_until_visibility_timeout(
    backend: Backend, clock: Clock
) -> None:
    queue(backend, "q", visibility_timeout=30)
    send(backend, "q")
    (first,) = receive(backend, "q")
    assert receive(backend, "q") == []
    clock.advance(31)
    (again,) = receive(backend, "q")
    assert again.id == first.id
    assert again.receive_count == 2
    assert again.receipt_handle != first.receipt_handle
    assert again.first_receive_timestamp == first.first_receive_timestamp


def test_receive_visibility_timeout_overrides_the_queue_default(
    backend: Backend, clock: Clock
) -> None:
    queue(backend, "q", visibility_timeout=300)
    send(backend, "q")
    receive(backend, "q", visibility_timeout=5)
    clock.advance(6)
    assert len(receive(backend, "q")) == 1


def test_delete_removes_the_message_for_good(backend: Backend, clock: Clock) -> None:
    queue(backend, "q", visibility_timeout=1)
    send(backend, "q")
    (message,) = receive(backend, "q")
    assert backend.delete_messages("q", [message.receipt_handle]) == [None]
    clock.advance(5)
    assert receive(backend, "q") == []
    # Deleting again is a no-op, as in SQS.
    assert backend.delete_messages("q", [message.receipt_handle]) == [None]


def test_stale_receipt_handle_cannot_delete_after_a_new_receive(
    backend: Backend, clock: Clock
) -> None:
    queue(backend, "q", visibility_timeout=1)
    send(backend, "q")
    (first,) = receive(backend, "q")
    clock.advance(2)
    (second,) = receive(backend, "q")
    (outcome,) = backend.delete_messages("q", [first.receipt_handle])
    assert isinstance(outcome, ReceiptHandleIsInvalid)
    assert backend.stats("q").in_flight == 1
    assert backend.delete_messages("q", [second.receipt_handle]) == [None]


def test_delete_with_a_handle_past_its_timeout_works_until_the_next_receive(
    backend: Backend, clock: Clock
) -> None:
    queue(backend, "q", visibility_timeout=5)
    send(backend, "q")
    (message,) = receive(backend, "q")
    clock.advance(6)
    assert backend.delete_messages("q", [message.receipt_handle]) == [None]
    assert receive(backend, "q") == []


@pytest.mark.parametrize("handle", ["", "garbage", "12:short", "x:0123456789abcdef"])
def test_malformed_receipt_handles_are_rejected(backend: Backend, handle: str) -> None:
    queue(backend, "q")
    (outcome,) = backend.delete_messages("q", [handle])
    assert isinstance(outcome, ReceiptHandleIsInvalid)
    (outcome,) = backend.set_visibility("q", [(handle, 10)])
    assert isinstance(outcome, ReceiptHandleIsInvalid)


def test_receipt_handle_of_another_queue_is_invalid(backend: Backend) -> None:
    queue(backend, "a")
    queue(backend, "b")
    send(backend, "a")
    (message,) = receive(backend, "a")
    (outcome,) = backend.delete_messages("b", [message.receipt_handle])
    assert isinstance(outcome, ReceiptHandleIsInvalid)
    assert backend.stats("a").in_flight == 1


def test_change_visibility_extends_and_releases(backend: Backend, clock: Clock) -> None:
    queue(backend, "q", visibility_timeout=10)
    send(backend, "q")
    (message,) = receive(backend, "q")
    assert backend.set_visibility("q", [(message.receipt_handle, 100)]) == [None]
    clock.advance(50)
    assert receive(backend, "q") == []
    assert backend.set_visibility("q", [(message.receipt_handle, 0)]) == [None]
    (again,) = receive(backend, "q")
    assert again.receive_count == 2


def test_change_visibility_works_after_the_timeout_until_the_next_receive(
    backend: Backend, clock: Clock
) -> None:
    queue(backend, "q", visibility_timeout=5)
    send(backend, "q")
    (message,) = receive(backend, "q")
    clock.advance(6)
    # Visible again but not received again: the latest handle still hides it, as in SQS.
    assert backend.set_visibility("q", [(message.receipt_handle, 30)]) == [None]
    assert receive(backend, "q") == []
    clock.advance(31)
    (again,) = receive(backend, "q")
    (outcome,) = backend.set_visibility("q", [(message.receipt_handle, 30)])
    assert isinstance(outcome, ReceiptHandleIsInvalid)
    assert backend.set_visibility("q", [(again.receipt_handle, 30)]) == [None]


def test_change_visibility_rejects_out_of_range_timeouts(backend: Backend) -> None:
    queue(backend, "q")
    send(backend, "q")
    (message,) = receive(backend, "q")
    (outcome,) = backend.set_visibility("q", [(message.receipt_handle, 43_201)])
    assert isinstance(outcome, InvalidParameterValue)
    assert "43200" in str(outcome)


def test_queue_delay_and_message_delay_hide_new_messages(backend: Backend, clock: Clock) -> None:
    queue(backend, "slow", delay=60)
    send(backend, "slow", "queue-delay")
    queue(backend, "q")
    send(backend, "q", "message-delay", delay_seconds=30)
    send(backend, "q", "now")
    assert [m.body for m in drain(backend, "q")] == ["now"]
    assert receive(backend, "slow") == []
    assert backend.stats("slow").delayed == 1
    clock.advance(31)
    assert [m.body for m in receive(backend, "q")] == ["message-delay"]
    clock.advance(30)
    assert [m.body for m in receive(backend, "slow")] == ["queue-delay"]


def test_message_delay_over_900_seconds_is_rejected(backend: Backend) -> None:
    queue(backend, "q")
    with pytest.raises(InvalidParameterValue, match="900"):
        send(backend, "q", delay_seconds=901)


def test_expired_messages_are_dropped_and_counted(backend: Backend, clock: Clock) -> None:
    queue(backend, "q", retention=60)
    send(backend, "q", "old")
    clock.advance(61)
    send(backend, "q", "new")
    assert [m.body for m in receive(backend, "q")] == ["new"]
    stats = backend.stats("q")
    assert stats.expired == 1
    assert stats.in_flight == 1


def test_receive_returns_at_most_max_messages(backend: Backend) -> None:
    queue(backend, "q")
    for index in range(25):
        send(backend, "q", f"m{index}")
    assert len(receive(backend, "q", 10)) == 10
    assert len(receive(backend, "q", 3)) == 3
    assert len(receive(backend, "q", 10)) == 10
    assert len(receive(backend, "q", 10)) == 2
    with pytest.raises(InvalidParameterValue, match="between 1 and 10"):
        backend.receive("q", max_messages=11)


def test_long_poll_returns_empty_after_the_wait(backend: Backend) -> None:
    queue(backend, "q")
    started = time.monotonic()
    assert backend.receive("q", wait_seconds=0.5) == []
    assert 0.45 <= time.monotonic() - started < 2


def test_long_poll_wakes_promptly_when_a_message_arrives(backend: Backend) -> None:
    queue(backend, "q")
    timer = threading.Timer(0.3, lambda: send(backend, "q", "late"))
    timer.start()
    started = time.monotonic()
    messages = backend.receive("q", wait_seconds=10)
    elapsed = time.monotonic() - started
    timer.join()
    assert [m.body for m in messages] == ["late"]
    assert elapsed < 1.5


def _send_later(store: Store, delay: float) -> None:
    time.sleep(delay)
    other = store.open()
    send(other, "q", "from another process")
    other.close()


def test_long_poll_wakes_for_a_message_sent_by_another_process(
    backend: Backend, store: Store
) -> None:
    queue(backend, "q")
    process = multiprocessing.get_context("spawn").Process(target=_send_later, args=(store, 1.0))
    process.start()
    started = time.monotonic()
    messages = backend.receive("q", wait_seconds=15)
    elapsed = time.monotonic() - started
    process.join()
    assert [m.body for m in messages] == ["from another process"]
    assert elapsed < 6


def test_long_poll_wakes_when_an_in_flight_message_becomes_visible(backend: Backend) -> None:
    queue(backend, "q")
    send(backend, "q")
    receive(backend, "q", visibility_timeout=1)
    started = time.monotonic()
    (message,) = backend.receive("q", wait_seconds=10)
    assert message.receive_count == 2
    assert time.monotonic() - started < 2.5


def test_purge_deletes_everything_once_per_minute(backend: Backend, clock: Clock) -> None:
    queue(backend, "q")
    for _ in range(3):
        send(backend, "q")
    backend.purge("q")
    assert receive(backend, "q") == []
    send(backend, "q")
    with pytest.raises(PurgeQueueInProgress, match="60"):
        backend.purge("q")
    clock.advance(61)
    backend.purge("q")
    assert backend.stats("q").visible == 0


def test_stats_count_visible_in_flight_delayed_and_oldest_age(
    backend: Backend, clock: Clock
) -> None:
    queue(backend, "q")
    send(backend, "q", "a")
    send(backend, "q", "b")
    send(backend, "q", "c", delay_seconds=100)
    receive(backend, "q", 1)
    clock.advance(10)
    stats = backend.stats("q")
    assert (stats.visible, stats.in_flight, stats.delayed) == (1, 1, 1)
    assert stats.oldest_age is not None and 9 <= stats.oldest_age <= 12
    assert stats.dead_letter_depth is None


def test_oversized_and_invalid_messages_are_rejected_and_nothing_is_stored(
    backend: Backend,
) -> None:
    queue(backend, "q", max_message_size=1024)
    with pytest.raises(MessageTooLarge, match="1024") as too_large:
        send(backend, "q", "x" * 1025)
    assert too_large.value.code == "InvalidParameterValue"  # SQS's code for a long message
    with pytest.raises(InvalidMessageContents, match="U\\+0000"):
        send(backend, "q", "bad \x00 char")
    with pytest.raises(MissingParameter, match="empty") as empty:
        send(backend, "q", "")
    assert empty.value.code == "MissingParameter"
    assert backend.stats("q").visible == 0


def test_default_max_message_size_is_one_mebibyte(backend: Backend) -> None:
    queue(backend, "q")
    send(backend, "q", "x" * 1_048_576)
    with pytest.raises(MessageTooLarge, match="1048576"):
        send(backend, "q", "x" * 1_048_577)


def test_batch_send_stores_valid_entries_and_reports_invalid_ones(backend: Backend) -> None:
    from fanstack.core.message import OutgoingMessage
    from fanstack.core.records import new_message_id

    queue(backend, "q", max_message_size=1024)
    messages = [OutgoingMessage(id=new_message_id(), body=b) for b in ("ok", "y" * 2000, "fine")]
    outcomes = backend.send("q", messages)
    assert outcomes[0] == messages[0].id and outcomes[2] == messages[2].id
    assert isinstance(outcomes[1], MessageTooLarge)
    assert sorted(m.body for m in drain(backend, "q")) == ["fine", "ok"]


def test_unknown_queue_is_reported(backend: Backend) -> None:
    with pytest.raises(QueueDoesNotExist, match="nope"):
        backend.receive("nope")
    with pytest.raises(QueueDoesNotExist):
        send(backend, "nope")


def test_create_queue_is_idempotent_and_rejects_different_attributes(backend: Backend) -> None:
    backend.create_queue(QueueSpec(name="q"))
    backend.create_queue(QueueSpec(name="q"))
    with pytest.raises(QueueNameExists):
        backend.create_queue(QueueSpec(name="q", visibility_timeout=99))
    backend.declare_queue(QueueSpec(name="q", visibility_timeout=99))
    assert backend.get_queue("q").visibility_timeout == 99


def test_delete_queue_removes_its_messages(backend: Backend) -> None:
    queue(backend, "q")
    send(backend, "q")
    backend.delete_queue("q")
    with pytest.raises(QueueDoesNotExist):
        backend.stats("q")
    queue(backend, "q")
    assert receive(backend, "q") == []


def test_messages_survive_reopening_the_backend(
    backend: Backend, store: Store, clock: Clock
) -> None:
    queue(backend, "q")
    sent = {send(backend, "q", f"m{i}") for i in range(5)}
    backend.close()
    reopened = store.open(clock)
    try:
        assert {m.id for m in drain(reopened, "q")} == sent
    finally:
        reopened.close()


def test_returning_a_message_uncounted_restores_its_receive_count(backend: Backend) -> None:
    queue(backend, "returns")
    send(backend, "returns", "x")
    (first,) = backend.receive("returns")
    assert first.receive_count == 1
    assert backend.set_visibility("returns", [(first.receipt_handle, 0)], uncount=True) == [None]
    (again,) = backend.receive("returns")
    assert again.receive_count == 1


def test_send_batch_takes_up_to_one_mebibyte_in_all(backend: Backend) -> None:
    queue_handle = App("batches", backend=backend).queue("q")
    tenth = "x" * 104_857  # ten of them: 1 048 570 bytes
    result = queue_handle.send_batch([{"id": str(n), "body": tenth} for n in range(10)])
    assert result.ok
    assert len(drain(backend, "q")) == 10
    with pytest.raises(BatchRequestTooLong, match="limit is 1048576 bytes"):
        queue_handle.send_batch([{"id": str(n), "body": tenth + "xx"} for n in range(10)])
    assert backend.stats("q").visible == 0


@pytest.mark.parametrize("wait_seconds", [0.5, 1.5, "1", True])
def test_receive_takes_whole_seconds_of_wait(backend: Backend, wait_seconds: object) -> None:
    queue_handle = App("waits", backend=backend).queue("q")
    with pytest.raises(InvalidParameterValue, match="wait_seconds must be an integer from 0 to 20"):
        queue_handle.receive(wait_seconds=wait_seconds)  # type: ignore[arg-type]
    assert queue_handle.receive(wait_seconds=0) == []


@pytest.mark.parametrize("bad", ["group 123", "x" * 129, "", "tab\tid", "caf\u00e9"])
def test_standard_queue_checks_a_given_group_id(backend: Backend, bad: str) -> None:
    queue(backend, "q")
    with pytest.raises(InvalidParameterValue, match="group_id"):
        send(backend, "q", group_id=bad)
    send(backend, "q", group_id="tenant-1")
    assert backend.stats("q").visible == 1


def test_a_shorter_retention_ends_the_messages_already_stored(
    backend: Backend, clock: Clock
) -> None:
    queue(backend, "q")
    send(backend, "q", body="old")
    backend.set_queue_attributes(dataclasses.replace(backend.get_queue("q"), retention=60))
    clock.advance(61)
    assert receive(backend, "q") == []
    stats = backend.stats("q")
    assert (stats.visible, stats.expired) == (0, 1)


def test_sends_from_an_event_loop_are_stored_before_they_return(
    backend: Backend, clock: Clock
) -> None:
    """`send_async`: concurrent sends on one loop; a delayed one is hidden for its delay, an
    invalid one fails alone, a missing queue raises."""
    import asyncio

    from fanstack.core.message import OutgoingMessage
    from fanstack.core.records import new_message_id

    queue(backend, "jobs")

    def message(body: str, delay: int | None = None) -> OutgoingMessage:
        return OutgoingMessage(id=new_message_id(), body=body, delay_seconds=delay)

    async def send_all() -> list[object]:
        batches = [[message(f"m{n}")] for n in range(50)]
        batches.append([message("later", delay=60)])
        batches.append([message("too late", delay=901)])
        results = await asyncio.gather(*[backend.send_async("jobs", b) for b in batches])
        return [outcome for (outcome,) in results]

    outcomes = asyncio.run(send_all())
    assert isinstance(outcomes[-1], InvalidParameterValue)
    assert sorted(m.body for m in drain(backend, "jobs")) == sorted(f"m{n}" for n in range(50))
    clock.advance(61)
    assert [m.body for m in drain(backend, "jobs")] == ["later"]
    with pytest.raises(QueueDoesNotExist):
        asyncio.run(backend.send_async("missing", [message("x")]))
