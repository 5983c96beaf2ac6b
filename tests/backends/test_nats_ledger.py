"""The NATS backend's ledger of this process's leases: found by message and by queue alike."""

from __future__ import annotations

import time

from fanstack.backends.nats.ledger import Lease, Ledger


def lease(queue: str, *, deferral: bool = False, ends_in: float = 30.0) -> Lease:
    now = time.time()
    return Lease(
        queue=queue,
        reply="r",
        delivered=1,
        visible_at=now + ends_in,
        deadline=now + ends_in,
        first_received_at=now,
        deferral=deferral,
    )


def test_leases_are_found_by_message_and_by_queue_and_leave_both_when_dropped() -> None:
    ledger = Ledger()
    ledger.record("c-a", (0, 1), lease("a"))
    ledger.record("c-b", (0, 1), lease("b"))  # one stored topic message, two queues
    ledger.record("c-a", (1, 7), lease("a", deferral=True))
    assert [x.queue for x in ledger.of_message(0, 1)] in (["a", "b"], ["b", "a"])
    assert ledger.of_message(1, 7) == []  # a deferral is not a lease
    assert {key for key, _ in ledger.leases_of_queue("a")} == {("c-a", 0, 1), ("c-a", 1, 7)}
    ledger.drop("c-a", (0, 1), deleted=True)
    assert [x.queue for x in ledger.of_message(0, 1)] == ["b"]
    assert ledger.is_gone("c-a", (0, 1))
    assert {key for key, _ in ledger.leases_of_queue("a")} == {("c-a", 1, 7)}
    assert len(ledger) == 2


def test_recording_a_key_again_replaces_it_everywhere() -> None:
    ledger = Ledger()
    ledger.record("c", (0, 1), lease("a"))
    ledger.record("c", (0, 1), lease("a", ends_in=60))
    assert len(ledger.leases_of_queue("a")) == 1
    assert len(ledger.of_message(0, 1)) == 1
    assert len(ledger) == 1


def test_ended_leases_are_forgotten_from_every_index() -> None:
    ledger = Ledger()
    ledger.record("c", (0, 1), lease("a", ends_in=-5))
    ledger.record("c", (0, 2), lease("a"))
    ledger.forget_ended(time.time())
    assert [key for key, _ in ledger.leases_of_queue("a")] == [("c", 0, 2)]
    assert ledger.of_message(0, 1) == []
