"""Consumers running real worker processes: success, failures, retries, DLQ, crashes."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from fanstack import App
from fanstack.core.retry import RetryPolicy

from . import handlers
from .conftest import ONE_BACKEND, markers, wait_for

FAST_RETRY = RetryPolicy(base_delay=0, max_delay=0, max_attempts=3)


def body(work_dir: Path, n: int, **fields: object) -> str:
    return json.dumps({"dir": str(work_dir), "n": n, **fields})


def test_subscriber_gets_every_published_message_once(app: App, work_dir: Path) -> None:
    orders = app.topic("orders")
    app.subscriber(orders, queue="process")(handlers.record_all)
    app.runtime.start()
    for n in range(25):
        orders.publish(body(work_dir, n))
    wait_for(lambda: len(markers(work_dir, "done-")) == 25)
    wait_for(lambda: app.queue_for("process").stats().in_flight == 0)
    stats = app.queue_for("process").stats()
    assert (stats.visible, stats.in_flight) == (0, 0)
    done = {p.name.split(".")[0] for p in markers(work_dir, "done-")}
    assert done == {f"done-{n}" for n in range(25)}


def test_records_have_the_sqs_event_shape(app: App, work_dir: Path) -> None:
    queue = app.queue("shapes")
    app.consumer(queue)(handlers.record_all)
    app.runtime.start()
    message_id = queue.send(body(work_dir, 1), attributes={"market": "ru", "total": 12})
    wait_for(lambda: markers(work_dir, "done-1"))
    record = json.loads(markers(work_dir, "done-1")[0].read_text())
    assert record["messageId"] == message_id
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":shapes")
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["market"]["stringValue"] == "ru"
    assert record["messageAttributes"]["total"]["dataType"] == "Number"
    assert set(record) >= {"receiptHandle", "body", "md5OfBody", "awsRegion"}


def test_failing_handler_is_retried_then_dead_lettered_with_reason(
    app: App, work_dir: Path
) -> None:
    orders = app.topic("orders")
    app.subscriber(orders, queue="billing", retry=FAST_RETRY)(handlers.fail_always)
    app.runtime.start()
    orders.publish(body(work_dir, 1))
    dlq = app.queue_for("billing-dlq")
    wait_for(lambda: dlq.stats().visible == 1)
    assert len(markers(work_dir, "attempt")) == 3  # max_attempts receives, then the DLQ
    (dead,) = dlq.receive()
    assert dead.failure is not None
    assert "ValueError: payment service said no" in dead.failure
    assert "fail_always" in dead.failure  # a traceback summary
    assert dead.source_queue == "billing"


def test_partial_batch_failure_retries_only_reported_records(app: App, work_dir: Path) -> None:
    queue = app.queue("partial", max_receive_count=2, dead_letter=app.queue("partial-dlq"))
    app.consumer(queue, batch_size=10, batch_window=1, retry=FAST_RETRY)(handlers.fail_marked)
    queue.send_batch([{"id": str(n), "body": body(work_dir, n, fail=n % 3 == 0)} for n in range(9)])
    app.runtime.start()
    dlq = app.queue_for("partial-dlq")
    wait_for(lambda: dlq.stats().visible == 3)
    wait_for(lambda: queue.stats().visible + queue.stats().in_flight == 0)
    done = {p.name.split(".")[0] for p in markers(work_dir, "done-")}
    assert done == {f"done-{n}" for n in range(9) if n % 3}
    failures = {m.failure for m in dlq.receive(max_messages=10)}
    assert failures == {"reported in batchItemFailures"}


def test_timeout_kills_the_worker_and_fails_the_invocation(app: App, work_dir: Path) -> None:
    queue = app.queue("slow", max_receive_count=1, dead_letter=app.queue("slow-dlq"))
    app.consumer(queue, timeout=1)(handlers.sleep_for)
    queue.send(body(work_dir, 1, seconds=30))
    app.runtime.start()
    dlq = app.queue_for("slow-dlq")
    wait_for(lambda: dlq.stats().visible == 1)
    (dead,) = dlq.receive()
    assert "Task timed out after 1.00 seconds" in (dead.failure or "")
    pid = int(markers(work_dir, "pid")[0].read_text())
    wait_for(lambda: not _alive(pid), timeout=5)


def test_memory_cap_fails_the_invocation(app: App, work_dir: Path) -> None:
    queue = app.queue("hog", max_receive_count=1, dead_letter=app.queue("hog-dlq"))
    app.consumer(queue, memory_mb=256, timeout=30)(handlers.hog_memory)
    queue.send(body(work_dir, 1))
    app.runtime.start()
    dlq = app.queue_for("hog-dlq")
    wait_for(lambda: dlq.stats().visible == 1)
    (dead,) = dlq.receive()
    assert "MemoryError" in (dead.failure or "")


def test_segfault_and_exit_lose_only_their_invocation(app: App, work_dir: Path) -> None:
    queue = app.queue("crashy", max_receive_count=3, dead_letter=app.queue("crashy-dlq"))
    app.consumer(queue, batch_size=1, retry=FAST_RETRY)(handlers.crash_first)
    queue.send(body(work_dir, 1, how="segfault"))
    queue.send(body(work_dir, 2, how="exit"))
    app.runtime.start()
    wait_for(lambda: len(markers(work_dir, "done-")) == 2)
    stats = app.runtime.pool(app.functions["crash_first"]).stats
    assert stats.crashes == 2
    assert app.queue_for("crashy-dlq").stats().visible == 0


def test_kill_9_of_a_worker_mid_batch_retries_the_batch(app: App, work_dir: Path) -> None:
    queue = app.queue("victim", max_receive_count=3, dead_letter=app.queue("victim-dlq"))
    app.consumer(queue, retry=FAST_RETRY, timeout=120)(handlers.kill_me_first)
    queue.send(body(work_dir, 1))
    app.runtime.start()
    wait_for(lambda: markers(work_dir, "pid"))
    os.kill(int(markers(work_dir, "pid")[0].read_text()), signal.SIGKILL)
    wait_for(lambda: markers(work_dir, "done-1"))
    wait_for(lambda: queue.stats().in_flight == 0)
    assert queue.stats().visible == 0


def test_visibility_is_extended_while_a_handler_runs(app: App, work_dir: Path) -> None:
    queue = app.queue("long", visibility_timeout=2)
    app.consumer(queue, timeout=30)(handlers.sleep_for)
    queue.send(body(work_dir, 1, seconds=5))
    app.runtime.start()
    wait_for(lambda: markers(work_dir, "done-1"), timeout=20)
    wait_for(lambda: queue.stats().in_flight == 0)
    # Past the 2 s visibility timeout, yet nobody received it a second time.
    assert len(markers(work_dir, "pid")) == 1


@ONE_BACKEND  # the embedded store's dispatcher leases for later batches too
def test_messages_leased_ahead_stay_invisible_until_they_run(app: App, work_dir: Path) -> None:
    queue = app.queue("waiting", visibility_timeout=2)
    app.consumer(queue, batch_size=10, concurrency=1, timeout=30)(handlers.sleep_for)
    queue.send(body(work_dir, 100, seconds=1.5))
    app.runtime.start()
    wait_for(lambda: markers(work_dir, "pid"))  # the one worker is busy: nothing is leased
    for first in (0, 10):
        queue.send_batch(
            [{"id": str(n), "body": body(work_dir, n, seconds=3)} for n in range(first, first + 10)]
        )
    # Freed, the worker takes a batch, and the next batch is leased with it: it waits 3 s for
    # the worker, past the queue's 2 s visibility timeout, and nobody else receives it.
    wait_for(lambda: len(markers(work_dir, "pid")) == 2)
    assert queue.stats().in_flight == 20
    until = time.monotonic() + 4
    while time.monotonic() < until:
        assert queue.receive(max_messages=10, wait_seconds=0) == []
        time.sleep(0.2)
    wait_for(lambda: len(markers(work_dir, "done-")) == 21, timeout=30)
    wait_for(lambda: queue.stats().in_flight == 0)
    assert [len(markers(work_dir, f"done-{n}.")) for n in range(20)] == [1] * 20


def test_on_stop_messages_not_yet_run_go_back_uncounted(app: App, work_dir: Path) -> None:
    queue = app.queue("stopping")
    app.consumer(queue, batch_size=5, concurrency=1, timeout=30)(handlers.sleep_for)
    queue.send(body(work_dir, 100, seconds=0))
    app.runtime.start()
    wait_for(lambda: markers(work_dir, "done-100"))  # the worker is warm
    queue.send_batch([{"id": str(n), "body": body(work_dir, n, seconds=2)} for n in range(10)])
    queue.send_batch([{"id": str(n), "body": body(work_dir, n, seconds=2)} for n in range(10, 20)])
    wait_for(lambda: len(markers(work_dir, "pid")) == 2)  # the second batch runs
    # On the embedded store the next batch was leased with it, to wait for the worker.
    assert queue.stats().in_flight == (10 if app.backend.calls_are_local() else 5)
    app.runtime.stop(grace=20)
    done = len(markers(work_dir, "done-")) - 1
    assert done == 5
    stats = queue.stats()
    assert (stats.visible, stats.in_flight) == (15, 0)
    left = [m for _ in range(2) for m in queue.receive(max_messages=10)]
    assert len(left) == 15
    # None of them ran: whatever the dispatcher had leased for later batches went back as
    # if never received.
    assert {m.receive_count for m in left} == {1}


def test_workers_scale_from_zero_and_stop_when_idle(app: App, work_dir: Path) -> None:
    queue = app.queue("elastic")
    function = app.consumer(queue, batch_size=1, concurrency=3)(handlers.sleep_for)
    # Long enough that a worker between its two messages is never taken for idle, even when
    # the next lease is slow on a loaded machine (that worker would be stopped and another
    # cold-started in its place).
    app.runtime.idle_timeout = 3.0
    pool = app.runtime.pool(function)
    assert pool.size == 0
    for n in range(6):
        queue.send(body(work_dir, n, seconds=1))
    app.runtime.start()
    wait_for(lambda: pool.size == 3, timeout=15)
    wait_for(lambda: len(markers(work_dir, "done-")) == 6)
    assert 1 <= pool.stats.cold_starts <= 3
    assert all(s > 0 for s in pool.stats.cold_start_seconds)
    wait_for(lambda: pool.size == 0, timeout=15)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return waited == 0


def test_a_long_invocation_does_not_hold_up_other_consumers(app: App, work_dir: Path) -> None:
    slow = app.queue("slow")
    fast = app.queue("fast")
    app.consumer(slow, timeout=60, concurrency=1)(handlers.sleep_for)
    app.consumer(fast)(handlers.record_all)
    slow.send(body(work_dir, 999, seconds=8))
    app.runtime.start()
    wait_for(lambda: markers(work_dir, "pid"))  # the long invocation runs
    for n in range(20):
        fast.send(body(work_dir, n))
    wait_for(lambda: len(markers(work_dir, "done-")) == 20, timeout=6)
    assert not markers(work_dir, "done-999")  # handled while the long one still ran
    wait_for(lambda: markers(work_dir, "done-999"), timeout=20)


SLOW_IMPORT = """
import os, time

time.sleep(float(os.environ.get("SLOW_IMPORT_SECONDS", "0")))

def handler(event):
    pass
"""


def test_a_slow_cold_start_does_not_hold_up_other_consumers(
    app: App, work_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "slow_import.py").write_text(SLOW_IMPORT)
    monkeypatch.syspath_prepend(str(tmp_path))
    import slow_import  # type: ignore[import-not-found]

    monkeypatch.setenv("SLOW_IMPORT_SECONDS", "8")  # read by workers of slow_import as they start
    starting = app.queue("starting")
    fast = app.queue("fast")
    app.consumer(starting)(slow_import.handler)
    app.consumer(fast)(handlers.record_all)
    starting.send("wait for me")
    for n in range(20):
        fast.send(body(work_dir, n))
    app.runtime.start()
    wait_for(lambda: len(markers(work_dir, "done-")) == 20, timeout=6)
    assert starting.stats().in_flight == 1  # its worker is still starting


def test_a_batch_waiting_for_a_busy_worker_costs_no_cpu(app: App, work_dir: Path) -> None:
    queue = app.queue("windowed")
    # Two batches at once for the consumer, one worker for the function.
    app.consumer(
        queue, batch_size=10, batch_window=0.2, max_concurrency=2, concurrency=1, timeout=60
    )(handlers.sleep_for)
    queue.send(body(work_dir, 0, seconds=4))
    app.runtime.start()
    wait_for(lambda: markers(work_dir, "pid"))  # the one worker is busy for 4 s
    queue.send(body(work_dir, 1, seconds=0))  # leased, its window ends, it waits for the worker
    time.sleep(0.5)
    used = time.process_time()
    time.sleep(2)
    assert time.process_time() - used < 0.5  # waiting, not polling in a loop
    wait_for(lambda: len(markers(work_dir, "done-")) == 2, timeout=20)
