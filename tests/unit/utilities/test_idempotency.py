"""`@idempotent` on a real SQLite table."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fanstack import App, IdempotencyInProgress, InvalidParameterValue, idempotent


@pytest.fixture
def app(tmp_path: Path) -> App:
    return App("idem", data_dir=tmp_path)


def test_side_effect_runs_once_and_the_result_is_returned(app: App) -> None:
    calls: list[str] = []

    @idempotent(app.table("idempotency"), key="body.order_id")
    def charge(record: dict[str, str]) -> dict[str, int]:
        calls.append(record["messageId"])
        return {"charged": len(calls)}

    first = charge({"messageId": "m1", "body": '{"order_id": "o-1"}'})
    again = charge({"messageId": "m2", "body": '{"order_id": "o-1"}'})
    other = charge({"messageId": "m3", "body": '{"order_id": "o-2"}'})
    assert first == again == {"charged": 1}
    assert other == {"charged": 2}
    assert calls == ["m1", "m3"]


def test_a_failed_call_can_be_retried(app: App) -> None:
    attempts: list[int] = []

    @idempotent(app.table("idempotency"), key=lambda event: event["id"])
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


def test_a_concurrent_duplicate_is_told_it_is_in_progress(app: App) -> None:
    started, release = threading.Event(), threading.Event()

    @idempotent(app.table("idempotency"), key="id")
    def slow(event: dict[str, int]) -> int:
        started.set()
        release.wait(10)
        return 1

    worker = threading.Thread(target=slow, args=({"id": 1},))
    worker.start()
    started.wait(10)
    with pytest.raises(IdempotencyInProgress):
        slow({"id": 1})
    release.set()
    worker.join()
    assert slow({"id": 1}) == 1


def test_a_crashed_claim_expires(app: App) -> None:
    table = app.table("idempotency")

    @idempotent(table, key="id", in_progress_ttl=0.5)
    def job(event: dict[str, int]) -> str:
        return "done"

    # A claim left by a process that died mid-call:
    key = f"{job.__module__}.{job.__qualname__}"
    import hashlib

    table.put(f"{key}#{hashlib.sha256(b'1').hexdigest()}", {"status": "IN_PROGRESS"}, ttl=0.5)
    with pytest.raises(IdempotencyInProgress):
        job({"id": 1})
    time.sleep(0.6)
    assert job({"id": 1}) == "done"


def test_missing_key_is_an_error(app: App) -> None:
    @idempotent(app.table("idempotency"), key="body.order_id")
    def job(event: dict[str, str]) -> None:
        return None

    with pytest.raises(InvalidParameterValue, match=r"body\.order_id"):
        job({"body": "{}"})
