"""SQLite specifics: a fanned-out message is stored once and freed with its last delivery."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fanstack import App, QueueDoesNotExist, ReceiptHandleIsInvalid


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


def test_deliveries_of_both_forms_keep_the_order_published(app: App, tmp_path: Path) -> None:
    """A publication's raw deliveries (no unsubscribe URL) and enveloped ones are written by
    different statements: each queue still holds them in the order published, each with its
    own columns."""
    topic = app.topics["t"]
    bodies = [f"m{i}" for i in range(13)]
    assert topic.publish_batch([{"id": str(i), "body": b} for i, b in enumerate(bodies[:10])]).ok
    for body in bodies[10:]:
        topic.publish(body)
    for name in ("a", "b", "c"):
        got = []
        while batch := app.queues[name].receive(max_messages=10):
            got.extend(batch)
        texts = [m.body if name != "c" else json.loads(m.body)["Message"] for m in got]
        assert texts == bodies, name
    with sqlite3.connect(tmp_path / "fanstack.db") as db:
        rows = db.execute(
            "SELECT queue, unsubscribe_url IS NULL, group_id, dedup_id FROM messages ORDER BY seq"
        ).fetchall()
    assert rows == [(q, q != "c", None, None) for _ in bodies for q in ("a", "b", "c")]


def test_a_message_purged_between_its_lease_and_its_payload_read_is_not_handed_out(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lease reads payloads after its commit: another process's purge in between leaves
    the receive with what is still there, and no error."""
    from fanstack.backends.sqlite import queues as queues_module

    for body in ("one", "two"):
        app.queues["a"].send(body)
    original = queues_module.read_payloads

    def purged_first(db: sqlite3.Connection, rows: list[tuple[object, ...]]) -> object:
        with sqlite3.connect(tmp_path / "fanstack.db", isolation_level=None) as other:
            other.execute("DELETE FROM messages WHERE seq = ?", (rows[0][0],))  # as a purge
        return original(db, rows)

    monkeypatch.setattr(queues_module, "read_payloads", purged_first)
    received = app.queues["a"].receive(max_messages=10)
    assert [m.body for m in received] == ["two"]
    monkeypatch.undo()
    assert app.queues["a"].receive(max_messages=10) == []
    assert app.queues["a"].stats().in_flight == 1


def test_purge_delete_queue_and_expiry_release_payloads(app: App, tmp_path: Path) -> None:
    app.topics["t"].publish("one")
    app.queues["a"].purge()
    app.backend.delete_queue("b")
    assert _payloads(tmp_path) == 1
    app.backend.clock = lambda: time.time() + 120
    assert app.queues["c"].stats().expired == 1  # counted at once, read without a write
    assert app.queues["c"].receive() == []
    _eventually(lambda: _payloads(tmp_path) == 0)  # deleted in the background
    assert app.queues["c"].stats().expired == 1


def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.02)


def test_expired_messages_are_deleted_in_the_background_a_wave_pass_after_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Passes a minute apart: only passes made back to back while behind finish in time.
    monkeypatch.setattr("fanstack.backends.sqlite.messages.EXPIRY_INTERVAL", 60.0)
    filler = App("wave", data_dir=tmp_path)
    idle = filler.queue("idle", retention=60)  # a queue nobody reads
    for _ in range(120):  # more than several batches of expiry at once
        idle.send_batch([{"id": str(i), "body": "x"} for i in range(10)])
    filler.close()
    app = App("wave", data_dir=tmp_path)  # a process that starts after the expiry
    idle = app.queue("idle", retention=60)
    now = time.time()
    app.backend.clock = lambda: now + 120
    app.queue("other").send("fresh")  # any write of the store starts the deleting
    _eventually(lambda: _payloads(tmp_path) == 1, timeout=30)  # only the fresh one is left
    stats = idle.stats()
    assert (stats.visible, stats.expired) == (0, 1200)
    app.close()


def test_queues_with_different_retention_expire_in_one_pass_each_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = App("mixed", data_dir=tmp_path)
    short, long_ = app.queue("short", retention=60), app.queue("long", retention=600)
    keep = app.queue("keep", retention=86_400)
    for queue, count in ((short, 3), (long_, 2), (keep, 1)):
        queue.send_batch([{"id": str(i), "body": queue.name} for i in range(count)])
    now = time.time()
    app.backend.clock = lambda: now + 700  # past both retentions, not past a day
    with caplog.at_level("WARNING", logger="fanstack.backends.sqlite"):
        _eventually(lambda: _payloads(tmp_path) == 1)
    assert [(q.stats().expired, q.stats().visible) for q in (short, long_, keep)] == [
        (3, 0),
        (2, 0),
        (0, 1),
    ]
    lines = sorted(r.getMessage() for r in caplog.records if "expired" in r.getMessage())
    assert lines == [
        "queue long: 2 message(s) expired past the retention period",
        "queue short: 3 message(s) expired past the retention period",
    ]
    app.close()


def test_the_oldest_age_of_a_queue_behind_many_messages_of_others_that_end_sooner(
    tmp_path: Path,
) -> None:
    """The expiry index holds every queue: a queue whose messages end after more than a scan's
    worth of other queues' messages still reports its oldest message's age."""
    from fanstack.backends.sqlite.queues import OLDEST_SCAN

    app = App("oldest", data_dir=tmp_path)
    archive, busy = app.queue("archive", retention=1_209_600), app.queue("busy", retention=60)
    start = time.time()
    app.backend.clock = lambda: start
    archive.send("first")
    app.backend.clock = lambda: start + 10
    archive.send("second")
    (first,) = archive.receive(max_messages=1, visibility_timeout=3600)  # in flight, still oldest
    for _ in range(0, OLDEST_SCAN + 50, 10):
        busy.send_batch([{"id": str(i), "body": "x"} for i in range(10)])
    app.backend.clock = lambda: start + 30  # nothing has expired
    assert first.body == "first"
    assert archive.stats().oldest_age == pytest.approx(30)
    assert busy.stats().oldest_age == pytest.approx(20)
    archive.delete(first.receipt_handle)
    assert archive.stats().oldest_age == pytest.approx(20)
    assert app.queue("empty").stats().oldest_age is None
    app.close()


def test_a_data_dir_with_the_per_queue_expiry_index_is_upgraded_on_open(tmp_path: Path) -> None:
    app = App("upgrade", data_dir=tmp_path)
    app.queue("q", retention=60).send("kept across the upgrade")
    app.close()
    with sqlite3.connect(tmp_path / "fanstack.db") as db:  # as an earlier version left it
        db.execute("DROP INDEX messages_by_deadline")
        db.execute("CREATE INDEX messages_by_expiry ON messages (queue, expires_at)")
    app = App("upgrade", data_dir=tmp_path)
    queue = app.queue("q", retention=60)
    assert queue.stats().visible == 1
    with sqlite3.connect(tmp_path / "fanstack.db") as db:
        indexes = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    assert "messages_by_deadline" in indexes and "messages_by_expiry" not in indexes
    now = time.time()
    app.backend.clock = lambda: now + 120
    app.queue("other").send("fresh")  # any write of the store starts the deleting
    _eventually(lambda: _payloads(tmp_path) == 1)
    assert queue.stats().expired == 1
    app.close()


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


def _depths(data_dir: Path) -> dict[str, tuple[int, int]]:
    """Each queue's kept count beside a count of its rows (one snapshot: the expiry thread
    may delete between two reads)."""
    with sqlite3.connect(data_dir / "fanstack.db", isolation_level=None) as db:
        db.execute("BEGIN")
        return {
            name: (
                depth,
                db.execute("SELECT COUNT(*) FROM messages WHERE queue = ?", (name,)).fetchone()[0],
            )
            for name, depth in db.execute("SELECT name, depth FROM queues")
        }


def test_the_kept_depth_of_every_queue_follows_every_write(tmp_path: Path) -> None:
    import random

    app = App("depths", data_dir=tmp_path)
    dlq = app.queue("dlq")
    work = app.queue("work", dead_letter=dlq, max_receive_count=2, retention=60)
    other = app.queue("other")
    topic = app.topic("t")
    topic.subscribe(work, raw=True)
    topic.subscribe(other, raw=True, filter_policy={"k": ["v"]})
    clock = [time.time()]
    app.backend.clock = lambda: clock[0]
    rng = random.Random(7)
    for _step in range(400):
        action = rng.choice(
            ["send", "publish", "receive", "delete", "fail", "redrive", "tick", "purge"]
        )
        if action == "send":
            work.send_batch([{"id": str(i), "body": "b"} for i in range(rng.randint(1, 10))])
        elif action == "publish":
            topic.publish("p", attributes={"k": rng.choice(["v", "w"])})
        elif action in ("receive", "delete", "fail"):
            queue = rng.choice([work, other, dlq])
            got = queue.receive(max_messages=10, visibility_timeout=rng.choice([0, 5]))
            if action == "delete" and got:
                queue.delete_batch([m.receipt_handle for m in got])
        elif action == "redrive":
            work.redrive_dead_letters()
        elif action == "tick":
            clock[0] += rng.choice([1, 6, 30])
        elif action == "purge" and rng.random() < 0.1:
            clock[0] += 61
            rng.choice([work, other, dlq]).purge()
        for name, (depth, rows) in _depths(tmp_path).items():
            assert depth == rows, (action, name)
        stats = work.stats()
        assert stats.visible + stats.in_flight + stats.delayed == _live(tmp_path, "work", clock[0])
    app.close()


def _live(data_dir: Path, queue: str, now: float) -> int:
    with sqlite3.connect(data_dir / "fanstack.db") as db:
        return int(
            db.execute(
                "SELECT COUNT(*) FROM messages WHERE queue = ? AND expires_at > ?", (queue, now)
            ).fetchone()[0]
        )


def test_stats_read_without_writing(app: App, tmp_path: Path) -> None:
    app.topics["t"].publish("one")
    app.backend._expirer.stop()  # its deleting would be a commit of its own
    app.backend.clock = lambda: time.time() + 120  # expired, not yet deleted
    with sqlite3.connect(tmp_path / "fanstack.db") as db:
        (before,) = db.execute("PRAGMA data_version").fetchone()
        assert app.queues["c"].stats().expired == 1
        # data_version moves when another connection commits: stats() committed nothing.
        assert db.execute("PRAGMA data_version").fetchone()[0] == before


def test_a_data_dir_from_before_kept_depths_is_counted_when_opened(tmp_path: Path) -> None:
    app = App("old", data_dir=tmp_path)
    jobs = app.queue("jobs")
    for _ in range(3):
        jobs.send("x")
    app.close()
    with sqlite3.connect(tmp_path / "fanstack.db") as db:  # as an earlier version left it
        db.execute("DROP TRIGGER messages_deleted")
        db.execute("ALTER TABLE queues DROP COLUMN depth")
        db.execute("DROP INDEX messages_by_state")
        db.execute("CREATE INDEX messages_by_visibility ON messages (queue, visible_at)")
    again = App("old", data_dir=tmp_path)
    assert again.queue("jobs").stats().visible == 3
    with sqlite3.connect(tmp_path / "fanstack.db") as db:
        indexes = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    assert "messages_by_visibility" not in indexes and "messages_by_state" in indexes
    # The delete trigger is back: a delete counts off the depth and takes its payload along.
    (message,) = again.queue("jobs").receive(max_messages=1)
    again.queue("jobs").delete(message.receipt_handle)
    assert again.queue("jobs").stats().visible == 2
    with sqlite3.connect(tmp_path / "fanstack.db") as db:
        assert db.execute("SELECT COUNT(*) FROM payloads").fetchone() == (2,)
    again.close()


def _turn_holder(data_dir: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process that takes the write turn on `data_dir`, says "holding", keeps it for
    `seconds`, then lets it go and says "done"."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from fanstack.backends.sqlite import SQLiteBackend\n"
            f"backend = SQLiteBackend({str(data_dir)!r})\n"
            "with backend._database.write():\n"
            "    print('holding', flush=True)\n"
            f"    time.sleep({seconds})\n"
            "print('done', flush=True)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_writer_killed_holding_the_write_turn_does_not_block_the_others(
    tmp_path: Path,
) -> None:
    import signal

    app = App("turns", data_dir=tmp_path)
    jobs = app.queue("jobs")
    holder = _turn_holder(tmp_path, 60)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        jobs.send("after")  # the kernel let the dead writer's turn go
        (message,) = jobs.receive()
        assert message.body == "after"
    finally:
        holder.kill()
        app.close()


def test_a_writer_waits_out_another_process_holding_the_turn_and_one_alone_never_yields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    app = App("turns", data_dir=tmp_path)
    jobs = app.queue("jobs")
    yields: list[float] = []
    real_yield = os.sched_yield

    def counted_yield() -> None:
        yields.append(time.monotonic())
        real_yield()

    monkeypatch.setattr(os, "sched_yield", counted_yield)
    for n in range(20):
        jobs.send(f"alone {n}")
    assert yields == []  # alone on its data dir, a process neither spins nor yields
    holder = _turn_holder(tmp_path, 0.5)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        began = time.monotonic()
        jobs.send("after")  # tries again for a moment, then sleeps until the turn is let go
        waited = time.monotonic() - began
        assert holder.stdout.readline().strip() == "done"
        assert holder.wait(10) == 0
    finally:
        holder.kill()
    assert waited > 0.2, waited
    assert yields and yields[0] - began < 0.1  # it tried again at once, before sleeping
    bodies = {m.body for _ in range(3) for m in jobs.receive(max_messages=10)}
    assert bodies == {f"alone {n}" for n in range(20)} | {"after"}
    app.close()


def test_concurrent_sends_share_transactions_and_all_are_stored(tmp_path: Path) -> None:
    import threading

    app = App("group", data_dir=tmp_path)
    jobs = app.queue("jobs")
    backend = app.backend
    before = backend._database.generation()
    sent: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def sender(number: int) -> None:
        start.wait()
        for n in range(100):
            message_id = jobs.send(f"{number}-{n}")
            with lock:
                sent.append(message_id)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Fewer transactions than sends: concurrent ones were written together.
    assert backend._database.generation() - before < len(sent) == 1600
    assert jobs.stats().visible == len(set(sent)) == 1600
    received = set()
    while batch := jobs.receive(max_messages=10):
        received |= {m.id for m in batch}
        jobs.delete_batch([m.receipt_handle for m in batch])
    assert received == set(sent)
    app.close()


def test_a_failing_commit_in_a_shared_transaction_fails_alone(tmp_path: Path) -> None:
    from fanstack.backends.sqlite.database import Joinable, _Work
    from fanstack.core.fanout import Delivery, Publication
    from fanstack.core.message import OutgoingMessage

    app = App("group", data_dir=tmp_path)
    jobs = app.queue("jobs")
    backend = app.backend

    def publication(queue: str, body: str, dedup: str | None = None) -> Publication:
        message = OutgoingMessage(id=body, body=body)
        key = ("queue:jobs", dedup) if dedup else None
        return Publication(message, [Delivery(queue, None, None)], None, key, None, None)

    def commit(*publications: Publication) -> _Work:
        now = time.time()
        messages = backend._messages
        return _Work(Joinable(messages._write, (publications, now)))

    def fails(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO dedup VALUES ('queue:jobs', 'k2', 'x', 1e12)")
        raise RuntimeError("this caller's work fails after writing")

    batch = [
        commit(publication("jobs", "first")),
        commit(publication("jobs", "half", dedup="k"), publication("gone", "other half")),
        _Work(fails),
        commit(publication("jobs", "last")),
    ]
    backend._database._run_group(batch)  # one transaction, as concurrent callers get
    # The commits went in one pass; the work that is not a commit ran in a savepoint of its own.
    assert isinstance(batch[2].error, RuntimeError)
    batch.pop(2)
    assert [batch[0].result, batch[2].result] == [["first"], ["last"]]
    assert isinstance(batch[1].error, QueueDoesNotExist)
    # The failing call's own writes were rolled back with it; the others committed.
    assert sorted(m.body for m in jobs.receive(max_messages=10)) == ["first", "last"]
    assert jobs.stats().in_flight == 2 and _payloads(tmp_path) == 2
    # Neither left a deduplication record: both ids are free for a retry.
    retry = [commit(publication("jobs", "retry", dedup="k"), publication("jobs", "r2", "k2"))]
    backend._database._run_group(retry)
    assert retry[0].result == ["retry", "r2"]
    app.close()


def test_only_writes_that_can_make_a_message_visible_wake_long_polls(tmp_path: Path) -> None:
    app = App("wakes", data_dir=tmp_path)
    dlq = app.queue("dlq")
    jobs = app.queue("jobs", dead_letter=dlq, max_receive_count=1)
    database = app.backend._database
    generation = database.generation

    before = generation()
    jobs.send("a")
    assert generation() > before  # a send wakes them
    before = generation()
    jobs.receive(visibility_timeout=0)
    assert generation() == before  # a lease makes nothing visible
    assert jobs.receive() == []  # received once already: dead-lettered by this lease
    assert generation() > before  # the dead-letter queue got it: its polls wake
    before = generation()
    (letter,) = dlq.receive()
    dlq.delete(letter.receipt_handle)
    assert generation() == before  # a delete from a standard queue makes nothing visible
    app.close()


def test_deduplication_ids_past_their_interval_are_deleted_in_the_background(
    tmp_path: Path,
) -> None:
    app = App("dedup", data_dir=tmp_path)
    jobs = app.queue("jobs.fifo", fifo=True)
    jobs.send("a", group_id="g", deduplication_id="d1")
    now = time.time()
    app.backend.clock = lambda: now + 400  # past the 5-minute interval
    app.close()  # a process that starts now: its expiry thread's first pass sweeps them

    def recorded() -> int:
        with sqlite3.connect(tmp_path / "fanstack.db") as db:
            return int(db.execute("SELECT COUNT(*) FROM dedup").fetchone()[0])

    again = App("dedup", data_dir=tmp_path)
    again.backend.clock = lambda: now + 400
    again.queue("jobs.fifo", fifo=True).send("b", group_id="g", deduplication_id="d2")
    _eventually(lambda: recorded() == 1)  # only the new one is left
    again.close()


def test_writes_wait_on_nothing_only_without_a_flush_and_while_no_other_thread_writes(
    tmp_path: Path,
) -> None:
    """A server answers a storing call where it arrives only when the write waits on nothing:
    not with a flush to disk per commit, not while another thread of the process writes."""
    import threading

    normal = App("now", data_dir=tmp_path / "normal")
    normal.queue("jobs")
    assert normal.backend.writes_at_once()
    holding, release = threading.Event(), threading.Event()

    def long_write() -> None:
        with normal.backend._database.write():
            holding.set()
            release.wait(10)

    writer = threading.Thread(target=long_write)
    writer.start()
    assert holding.wait(10)
    try:
        assert not normal.backend.writes_at_once()
    finally:
        release.set()
        writer.join(10)
    assert normal.backend.writes_at_once()
    normal.close()

    flushed = App("fsync", data_dir=tmp_path / "fsync", durability="fsync")
    flushed.queue("jobs")
    assert not flushed.backend.writes_at_once()
    flushed.close()


def test_a_long_poll_takes_no_writer_turn_for_commits_that_bring_it_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes to other queues wake a long poll's wait, but it leases (a write transaction)
    only when its own queue has something to lease; then it gets the message at once."""
    import threading

    app = App("polls", data_dir=tmp_path)
    idle, busy = app.queue("idle"), app.queue("busy")
    queues = app.backend._queues
    leases: list[str] = []
    lease = queues.lease

    def counted(spec: object, *args: object, **kwargs: object) -> object:
        leases.append(spec.name)  # type: ignore[attr-defined]
        return lease(spec, *args, **kwargs)

    monkeypatch.setattr(queues, "lease", counted)
    got: list[str] = []
    poll = threading.Thread(
        target=lambda: got.extend(m.body for m in idle.receive(wait_seconds=10))
    )
    poll.start()
    deadline = time.monotonic() + 10
    while "idle" not in leases and time.monotonic() < deadline:  # its first look
        time.sleep(0.001)
    for n in range(50):
        busy.send(f"elsewhere {n}")
    assert leases.count("idle") == 1  # the poll's first look, nothing since
    idle.send("for the poll")
    poll.join(10)
    assert got == ["for the poll"]
    assert leases.count("idle") == 2
    app.close()


def test_a_receive_that_finds_nothing_writes_nothing(app: App, tmp_path: Path) -> None:
    app.topics["t"].publish("one")
    (message,) = app.queues["a"].receive()  # in flight: nothing visible is left
    with sqlite3.connect(tmp_path / "fanstack.db") as db:
        (before,) = db.execute("PRAGMA data_version").fetchone()
        assert app.queues["a"].receive() == []
        assert app.backend.receive("a", wait_seconds=0.1) == []
        # data_version moves when another connection commits: the empty receives did not.
        assert db.execute("PRAGMA data_version").fetchone()[0] == before
    app.queues["a"].delete(message.receipt_handle)
    assert app.queues["a"].stats().visible + app.queues["a"].stats().in_flight == 0


def test_the_wal_is_checkpointed_by_a_thread_of_the_writing_process(tmp_path: Path) -> None:
    app = App("t", data_dir=tmp_path)
    queue = app.queue("q")
    wal = tmp_path / "fanstack.db-wal"
    body = "x" * 4000
    for _round in range(5):  # 4 MB a round: 20 MB written in all
        for _batch in range(100):
            assert queue.send_batch([{"id": str(i), "body": body} for i in range(10)]).ok
        time.sleep(0.3)  # the thread checkpoints; the next write starts the WAL over
    # A writer would checkpoint only past 10,000 pages (40 MB): the thread kept it short.
    assert wal.stat().st_size < 12 * 1024 * 1024
    assert queue.stats().visible == 5000
    app.close()


def test_a_queue_made_here_is_known_at_once_though_another_thread_read_the_catalog_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fanstack.backends.sqlite import SQLiteBackend
    from fanstack.core.specs import QueueSpec

    backend = SQLiteBackend(tmp_path)
    catalog = backend._queues._catalog
    bump = catalog.bump

    readers: list[threading.Thread] = []

    def bump_while_another_thread_reads(db: sqlite3.Connection) -> None:
        bump(db)
        # Another thread (an expiry pass, a receive) reads the catalog before this change
        # commits, and keeps what it read as fresh for the recheck interval. (Its read waits
        # for the commit: one connection serves the process.)
        reader = threading.Thread(target=catalog.current)
        reader.start()
        readers.append(reader)
        reader.join(0.2)

    backend.create_queue(QueueSpec(name="kept"))
    backend.delete_queue("kept")
    monkeypatch.setattr(catalog, "bump", bump_while_another_thread_reads)
    backend.create_queue(QueueSpec(name="kept"))
    assert backend.get_queue("kept").name == "kept"
    (reader,) = readers
    reader.join(5)
    assert not reader.is_alive()
    assert backend.get_queue("kept").name == "kept"
    backend.close()


def test_a_read_waits_for_a_write_of_its_process_and_never_sees_it_uncommitted(
    tmp_path: Path,
) -> None:
    from fanstack.backends.sqlite import SQLiteBackend
    from fanstack.core.specs import QueueSpec

    backend = SQLiteBackend(tmp_path)
    backend.create_queue(QueueSpec(name="q"))
    database = backend._database
    seen: list[int] = []

    def count() -> None:
        with database.reading() as db:
            seen.append(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), database.write() as db:  # inserts, then rolls back
        db.execute(
            "INSERT INTO messages (queue, payload, sent_at, visible_at, expires_at) "
            "VALUES ('q', 1, 0, 0, 1e12)"
        )
        reader = threading.Thread(target=count)
        reader.start()
        reader.join(0.2)
        assert reader.is_alive() and not seen  # waiting for the transaction to end
        raise Abandoned
    reader.join(5)
    assert seen == [0]
    backend.close()


def test_a_commit_wakes_the_long_polls_of_the_queues_it_wrote_to_and_no_other(
    tmp_path: Path,
) -> None:
    app = App("wakes", data_dir=tmp_path)
    topic = app.topic("orders")
    busy, idle = app.queue("busy"), app.queue("idle")
    topic.subscribe(busy)
    database = app.backend._database
    woken: list[bool] = []
    mark = database.wake_mark("idle")
    poll = threading.Thread(target=lambda: woken.append(database.wait_for_wake("idle", mark, 10)))
    poll.start()
    for n in range(50):  # sends and publishes that reach other queues only
        busy.send(f"b{n}")
        topic.publish(f"p{n}")
    poll.join(0.5)
    assert poll.is_alive() and not woken  # slept through them all
    idle.send("at last")
    poll.join(5)
    assert woken == [True]
    assert [m.body for m in idle.receive(wait_seconds=1)] == ["at last"]
    app.close()


def test_a_long_poll_never_sleeps_past_a_message_committed_just_before_it_began(
    tmp_path: Path,
) -> None:
    app = App("race", data_dir=tmp_path)
    jobs = app.queue("jobs")
    assert jobs.receive() == []  # a receive's lease finds nothing ...
    jobs.send("x")  # ... a send commits before its wait starts, waking nobody ...
    started = time.monotonic()
    app.backend.wait("jobs", 5)  # ... and the wait sees the message at once
    assert time.monotonic() - started < 1
    assert [m.body for m in jobs.receive()] == ["x"]
    app.close()


async def _tick(ticks: list[None]) -> None:
    """Count the turns of the running loop, every 10 ms, until cancelled."""
    import asyncio

    while True:
        ticks.append(None)
        await asyncio.sleep(0.01)


def test_a_loop_commits_its_own_writes_and_leaves_them_to_the_writer_thread_to_wait(
    tmp_path: Path,
) -> None:
    """Writes submitted from an event loop are committed on the loop, together, while no
    other writer has the turn. While another process has it, the loop goes on serving and
    the write waits on the writer thread; with durability "fsync" (a commit waits for the
    disk) every submitted write goes to the writer thread."""
    import asyncio

    app = App("inline", data_dir=tmp_path)
    jobs = app.queue("jobs")
    database = app.backend._database  # type: ignore[attr-defined]

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(jobs.send_async(f"first {n}") for n in range(20)))
        assert database._writer_thread is None  # all of them committed on the loop
        holder = _turn_holder(tmp_path, 1.0)
        try:
            assert holder.stdout is not None
            assert (await asyncio.to_thread(holder.stdout.readline)).strip() == "holding"
            ticks: list[None] = []
            ticker = asyncio.create_task(_tick(ticks))
            began = loop.time()
            during = asyncio.create_task(jobs.send_async("during"))
            await asyncio.sleep(0.3)
            assert not during.done()  # the other process has the turn
            assert len(ticks) >= 10  # and the loop goes on meanwhile
            await during
            assert loop.time() - began > 0.4
            assert database._writer_thread is not None
            ticker.cancel()
            assert (await asyncio.to_thread(holder.stdout.readline)).strip() == "done"
        finally:
            holder.kill()

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    bodies = {m.body for _ in range(5) for m in jobs.receive(max_messages=10)}
    assert bodies == {f"first {n}" for n in range(20)} | {"during"}
    app.close()

    flushed = App("flushed", data_dir=tmp_path / "fsync", durability="fsync")
    queue = flushed.queue("jobs")

    async def send() -> None:
        await queue.send_async("on the disk")

    asyncio.run(send())
    assert flushed.backend._database._writer_thread is not None  # type: ignore[attr-defined]
    assert [m.body for m in queue.receive()] == ["on the disk"]
    flushed.close()


def test_closing_the_store_commits_what_a_loop_submitted_and_has_not_committed_yet(
    tmp_path: Path,
) -> None:
    import asyncio

    from fanstack.backends.sqlite.database import Database

    path = tmp_path / "db.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as setup:
        setup.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        setup.commit()
    database = Database(path, synchronous="NORMAL", busy_timeout_ms=5000)

    def insert(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO t VALUES (7)")
        return 7

    async def submit_then_close() -> int:
        submitted = database.submit(insert, wakes=False)
        database.close()  # in the same turn of the loop: before the loop's own commit
        return await asyncio.wait_for(submitted, timeout=10)

    assert asyncio.run(submit_then_close()) == 7
    with contextlib.closing(sqlite3.connect(path)) as reader:
        assert reader.execute("SELECT n FROM t").fetchall() == [(7,)]
    # Committed before `close` let go of everything: nothing was opened or started after it.
    assert database._connections == []
    assert database._checkpointer is None


@pytest.mark.parametrize("durability", ["normal", "fsync"])
def test_writes_a_loop_submits_together_are_stored_in_the_order_submitted(
    tmp_path: Path, durability: str
) -> None:
    import asyncio

    app = App("order", data_dir=tmp_path, durability=durability)
    ordered = app.queue("jobs.fifo", fifo=True, content_based_deduplication=True)

    async def send_all() -> None:
        await asyncio.gather(*(ordered.send_async(f"m{n}", group_id="g") for n in range(30)))

    asyncio.run(send_all())
    bodies: list[str] = []
    while len(bodies) < 30:
        received = ordered.receive(max_messages=10)
        bodies += [m.body for m in received]
        ordered.delete_batch([m.receipt_handle for m in received])
    assert bodies == [f"m{n}" for n in range(30)]
    app.close()


def test_submitted_writes_commit_beside_callers_that_wait(tmp_path: Path) -> None:
    """`Database.submit`: each future resolves only once its write is committed (another
    connection sees it), a failing write fails its own future alone, and submits mixed with
    threads calling `grouped` all complete; `close` stops the writer thread, and a submit
    after it commits."""
    import asyncio

    from fanstack.backends.sqlite.database import Database

    path = tmp_path / "db.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as setup:
        setup.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        setup.commit()
    database = Database(path, synchronous="NORMAL", busy_timeout_ms=5000)

    def insert(n: int) -> Callable[[sqlite3.Connection], int]:
        def write(db: sqlite3.Connection) -> int:
            db.execute("INSERT INTO t VALUES (?)", (n,))
            return n

        return write

    def fails(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t VALUES (-1)")
        raise ValueError("refused")

    def committed(n: int) -> bool:
        with contextlib.closing(sqlite3.connect(path)) as other:
            return other.execute("SELECT 1 FROM t WHERE n = ?", (n,)).fetchone() is not None

    waited: list[int] = []

    def wait_in_turn(k: int) -> None:
        waited.extend(database.grouped(insert(1000 + k * 100 + i), wakes=False) for i in range(50))

    async def submit_all() -> None:
        async def one(n: int) -> bool:
            assert await database.submit(insert(n), wakes=False) == n
            return committed(n)

        threads = [threading.Thread(target=wait_in_turn, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        seen = await asyncio.gather(*[one(n) for n in range(400)])
        assert all(seen)
        with pytest.raises(ValueError, match="refused"):
            await database.submit(fails, wakes=False)
        await asyncio.to_thread(lambda: [thread.join(timeout=30) for thread in threads])
        assert len(waited) == 200

    asyncio.run(asyncio.wait_for(submit_all(), timeout=60))
    with contextlib.closing(sqlite3.connect(path)) as reader:
        assert reader.execute("SELECT COUNT(*), MIN(n) FROM t").fetchone() == (600, 0)

    writer = database._writer_thread
    database.close()
    assert writer is None or not writer.is_alive()

    async def after_close() -> int:
        return await database.submit(insert(-2), wakes=False)

    assert asyncio.run(after_close()) == -2
    database.close()


def test_a_lease_made_after_a_short_batch_fails_alone(tmp_path: Path) -> None:
    """After a full batch the next lease is made at once; when it falls short, the lease
    that makes it up may fail (its dead-letter queue is gone): what was leased is still
    handed out, and the failure shows on the next receive."""
    from fanstack.backends.sqlite import SQLiteBackend
    from fanstack.core.errors import QueueDoesNotExist
    from fanstack.core.message import OutgoingMessage
    from fanstack.core.records import new_message_id
    from fanstack.core.specs import QueueSpec

    backend = SQLiteBackend(tmp_path)
    backend.create_queue(QueueSpec(name="dlq"))
    spec = QueueSpec(name="q", max_receive_count=1, dead_letter="dlq")
    backend.create_queue(spec)
    for n in range(3):
        backend.send("q", [OutgoingMessage(id=new_message_id(), body=f"m{n}", attributes={})])
    first = backend.lease(spec, 2, 5)  # a full batch
    assert len(first) == 2
    backend.set_visibility("q", [(m.receipt_handle, 0) for m in first])  # back, and due
    backend.delete_queue("dlq")
    (last,) = backend.lease(spec, 3, 30)  # the one not due; the others cannot move
    assert last.body == "m2"
    assert backend.stats("q").in_flight == 1
    with pytest.raises(QueueDoesNotExist):
        backend.lease(spec, 3, 30)
    backend.close()


def test_a_loop_does_not_wait_for_a_read_of_its_process(tmp_path: Path) -> None:
    """A read holding the connection (a FIFO queue's walk, stats) does not hold up an event
    loop's commit: the loop hands it to the writer thread and goes on serving."""
    import asyncio

    app = App("reading", data_dir=tmp_path)
    jobs = app.queue("jobs")
    database = app.backend._database  # type: ignore[attr-defined]
    app.backend.get_queue("jobs")  # the catalog read since the queue was made
    reading, release = threading.Event(), threading.Event()

    def long_read() -> None:
        with database.reading():
            reading.set()
            release.wait(5)

    reader = threading.Thread(target=long_read)
    reader.start()
    assert reading.wait(5)

    async def scenario() -> None:
        ticks: list[None] = []
        ticker = asyncio.create_task(_tick(ticks))
        sent = asyncio.create_task(jobs.send_async("while reading"))
        await asyncio.sleep(0.3)
        assert len(ticks) >= 10  # the loop served on
        assert not sent.done()  # the write waits, on the writer thread
        release.set()
        await asyncio.wait_for(sent, 5)
        ticker.cancel()

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        reader.join(5)
    assert database._writer_thread is not None
    assert [m.body for m in jobs.receive()] == ["while reading"]
    app.close()
