"""SQLite specifics: a fanned-out message is stored once and freed with its last delivery."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from fanstack import App, ReceiptHandleIsInvalid


def _payloads(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "fanstack.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM payloads").fetchone()[0])


@pytest.fixture
def app(tmp_path: Path) -> App:
    app = App("t", data_dir=tmp_path)
    topic = app.topic("t")
    for name in ("a", "b", "c"):
        topic.subscribe(app.queue(name, retention=60), raw=name != "c")
    return app


def test_a_fanned_out_message_is_stored_once_until_its_last_delivery_goes(
    app: App, tmp_path: Path
) -> None:
    app.topics["t"].publish("x" * 1000, attributes={"k": "v"})
    assert _payloads(tmp_path) == 1
    for name in ("a", "b"):
        (message,) = app.queues[name].receive()
        app.queues[name].delete(message.receipt_handle)
        assert _payloads(tmp_path) == 1
    (last,) = app.queues["c"].receive()
    app.queues["c"].delete(last.receipt_handle)
    assert _payloads(tmp_path) == 0


def test_purge_delete_queue_and_expiry_release_payloads(app: App, tmp_path: Path) -> None:
    app.topics["t"].publish("one")
    app.queues["a"].purge()
    app.backend.delete_queue("b")
    assert _payloads(tmp_path) == 1
    app.backend.clock = lambda: time.time() + 120
    assert app.queues["c"].stats().expired == 1
    assert _payloads(tmp_path) == 0


def test_a_rejected_delete_keeps_the_payload(app: App, tmp_path: Path) -> None:
    app.topics["t"].publish("one")
    (message,) = app.queues["a"].receive(visibility_timeout=0)
    app.queues["a"].receive()
    with pytest.raises(ReceiptHandleIsInvalid, match="stale"):
        app.queues["a"].delete(message.receipt_handle)
    assert _payloads(tmp_path) == 1


def test_idle_long_polls_do_not_wake_each_other(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lease that finds nothing changes nothing, so it must not wake the other pollers."""
    import threading

    from fanstack.backends.sqlite import SQLiteBackend

    queues = [app.queue(f"idle-{i}") for i in range(8)]
    app.backend  # noqa: B018 - open it before counting
    leases: list[int] = []
    original = SQLiteBackend.lease

    def counted(self: SQLiteBackend, *args: object, **kwargs: object) -> object:
        leases.append(1)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SQLiteBackend, "lease", counted)
    threads = [
        threading.Thread(target=queue.receive, kwargs={"wait_seconds": 1}) for queue in queues
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(leases) <= 3 * len(queues)  # a lease on arrival, maybe one at the end; no storm
