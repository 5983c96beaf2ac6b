"""`@idempotent` on a real SQLite table."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest

from fanstack import IdempotencyInProgress, InvalidParameterValue, Table, idempotent

from .conftest import Clock


def test_side_effect_runs_once_and_the_result_is_returned(table: Table) -> None:
    calls: list[str] = []

    @idempotent(table, key="body.order_id")
    def charge(record: dict[str, str]) -> dict[str, int]:
        calls.append(record["messageId"])
        return {"charged": len(calls)}

    first = charge({"messageId": "m1", "body": '{"order_id": "o-1"}'})
    again = charge({"messageId": "m2", "body": '{"order_id": "o-1"}'})
    other = charge({"messageId": "m3", "body": '{"order_id": "o-2"}'})
    assert first == again == {"charged": 1}
    assert other == {"charged": 2}
    assert calls == ["m1", "m3"]


def test_the_record_key_is_the_function_and_a_hash_of_the_key_value(table: Table) -> None:
    @idempotent(table, key="detail.id")
    def handle(event: dict[str, dict[str, int]]) -> str:
        return "handled"

    handle({"detail": {"id": 42}})
    name = f"{handle.__module__}.{handle.__qualname__}"
    (item,) = table.scan()
    assert item.key == f"{name}#{hashlib.sha256(b'42').hexdigest()}"
    assert item.value == {"status": "COMPLETED", "result": "handled"}


def test_two_functions_with_the_same_key_do_not_share_records(table: Table) -> None:
    @idempotent(table, key="id")
    def one(event: dict[str, int]) -> str:
        return "one"

    @idempotent(table, key="id")
    def two(event: dict[str, int]) -> str:
        return "two"

    assert (one({"id": 1}), two({"id": 1})) == ("one", "two")


def test_a_failed_call_can_be_retried(table: Table) -> None:
    attempts: list[int] = []

    @idempotent(table, key=lambda event: event["id"])
    def flaky(event: dict[str, int]) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("downstream timeout")
        return "ok"

    with pytest.raises(RuntimeError):
        flaky({"id": 7})
    assert flaky({"id": 7}) == "ok"
    assert flaky({"id": 7}) == "ok"
    assert len(attempts) == 2


def test_a_concurrent_duplicate_is_told_it_is_in_progress(table: Table) -> None:
    started, release = threading.Event(), threading.Event()
    results: list[int] = []

    @idempotent(table, key="id")
    def slow(event: dict[str, int]) -> int:
        started.set()
        release.wait(10)
        return 1

    worker = threading.Thread(target=lambda: results.append(slow({"id": 1})))
    worker.start()
    assert started.wait(10)
    with pytest.raises(IdempotencyInProgress, match="in progress"):
        slow({"id": 1})
    release.set()
    worker.join(10)
    assert results == [1]
    assert slow({"id": 1}) == 1


def test_a_crashed_claim_expires_after_in_progress_ttl(table: Table, clock: Clock) -> None:
    @idempotent(table, key="id", in_progress_ttl=60)
    def job(event: dict[str, int]) -> str:
        return "done"

    # The claim a process left when it died mid-call:
    name = f"{job.__module__}.{job.__qualname__}"
    table.put(f"{name}#{hashlib.sha256(b'1').hexdigest()}", {"status": "IN_PROGRESS"}, ttl=60)
    with pytest.raises(IdempotencyInProgress):
        job({"id": 1})
    clock.advance(61)
    assert job({"id": 1}) == "done"


def test_completed_records_expire_after_ttl(table: Table, clock: Clock) -> None:
    calls: list[int] = []

    @idempotent(table, key="id", ttl=100)
    def job(event: dict[str, int]) -> int:
        calls.append(1)
        return len(calls)

    assert job({"id": 1}) == job({"id": 1}) == 1
    clock.advance(101)
    assert job({"id": 1}) == 2


def test_an_unstorable_result_raises_and_leaves_the_key_free(table: Table) -> None:
    results: list[object] = [{1, 2}, "fine"]

    @idempotent(table, key="id")
    def job(event: dict[str, int]) -> object:
        return results.pop(0)

    with pytest.raises(InvalidParameterValue, match="JSON-serializable"):
        job({"id": 1})
    assert job({"id": 1}) == "fine"


def test_async_functions_are_wrapped_as_async(table: Table) -> None:
    calls: list[int] = []

    @idempotent(table, key="id")
    async def job(event: dict[str, int]) -> int:
        calls.append(1)
        await asyncio.sleep(0)
        return len(calls)

    async def twice() -> list[int]:
        return [await job({"id": 5}), await job({"id": 5})]

    assert asyncio.iscoroutinefunction(job)
    assert asyncio.run(twice()) == [1, 1]


def test_a_missing_key_value_names_the_path(table: Table) -> None:
    @idempotent(table, key="body.order_id")
    def job(event: dict[str, str]) -> None:
        return None

    with pytest.raises(InvalidParameterValue, match=r"body\.order_id"):
        job({"body": "{}"})
    with pytest.raises(InvalidParameterValue, match=r"body\.order_id"):
        job({"body": "not json"})


def test_ttls_are_validated(table: Table) -> None:
    with pytest.raises(InvalidParameterValue, match="in_progress_ttl"):
        idempotent(table, key="id", in_progress_ttl=0)
    with pytest.raises(InvalidParameterValue, match="ttl"):
        idempotent(table, key="id", ttl=-1)
