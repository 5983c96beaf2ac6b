"""Work that used to stall: stale idempotency claims, one stuck record holding back its batch,
retry-later without end, and messages leased while workers were still starting."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest

from fanstack import App, idempotent
from fanstack.core.retry import RetryPolicy
from fanstack.runtime.context import Context, Invocation, running

from ..support.stores import Store
from . import handlers
from .conftest import markers, order, wait_for

FAST_RETRY = RetryPolicy(base_delay=0, max_delay=1, max_attempts=5)


pytestmark = pytest.mark.usefixtures("handler_state")


def settled(queue: object) -> bool:
    stats = queue.stats()  # type: ignore[attr-defined]
    return bool(stats.visible + stats.in_flight + stats.delayed == 0)


def test_a_claim_expires_with_the_invocation_that_made_it(store: Store) -> None:
    app = store.app("claims")
    table = app.table("idempotency")
    frames: list[dict[str, object]] = []
    seen: list[float] = []

    @idempotent(table, key="id")  # in_progress_ttl stays at its 900 s default
    def work(event: dict[str, str]) -> str:
        (item,) = table.scan()
        assert item.expires_at is not None
        seen.append(item.expires_at - time.time())
        return "done"

    context = Context("f", "request-1", "arn", 128, time.monotonic() + 2)
    with running(Invocation(context, frames.append)):
        assert work({"id": "a"}) == "done"
    # Inside a 2-second invocation the claim lasts its remaining time (+1 s), not 15 minutes.
    assert 0 < seen[0] <= 3.1
    assert [next(iter(frame)) for frame in frames] == ["claim", "release"]
    app.close()


def test_a_timed_out_invocation_does_not_block_its_retry(app: App, work_dir: Path) -> None:
    queue = app.queue("charges", max_receive_count=5, dead_letter=app.queue("charges-dlq"))
    app.consumer(queue, batch_size=1, timeout=2, retry=FAST_RETRY)(handlers.charge_orders)
    queue.send(order(work_dir, "o-1", stall=True))
    app.runtime.start()
    # The first run hangs and is timed out after 2 s; its claim must not hold the retry off for
    # the 900 s of in_progress_ttl.
    wait_for(lambda: markers(work_dir, "charged-o-1"), timeout=20)
    wait_for(lambda: settled(queue))
    assert app.queue_for("charges-dlq").stats().visible == 0


def test_kill_9_of_a_worker_releases_its_claim_at_once(app: App, work_dir: Path) -> None:
    queue = app.queue("charges", max_receive_count=5, dead_letter=app.queue("charges-dlq"))
    app.consumer(queue, batch_size=1, timeout=120, retry=FAST_RETRY)(handlers.charge_orders)
    queue.send(order(work_dir, "o-2", stall=True))
    app.runtime.start()
    wait_for(lambda: markers(work_dir, "pid"))
    (pid_file,) = markers(work_dir, "pid")
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    killed = time.monotonic()
    # Neither the 120 s timeout nor in_progress_ttl: the dispatcher saw the worker die.
    wait_for(lambda: markers(work_dir, "charged-o-2"), timeout=20)
    assert time.monotonic() - killed < 15
    assert len(markers(work_dir, "charged-o-2")) == 1


def test_one_stuck_record_does_not_hold_back_its_batch(
    app: App, work_dir: Path, handler_state: Store
) -> None:
    # Another invocation (here: this process) holds o-stuck's claim for a long time.
    holder = threading.Thread(
        target=handlers.charge_order,
        args=({"body": order(work_dir, "o-stuck", hold=25)},),
        daemon=True,
    )
    holder.start()
    wait_for(lambda: handlers._idempotency_table().scan())
    dead_letters = app.queue("orders-dlq")
    queue = app.queue("orders", max_receive_count=2, dead_letter=dead_letters)
    app.consumer(
        queue, batch_size=10, batch_window=1, retry=FAST_RETRY, retry_later_limit=3
    )(handlers.charge_orders)
    ids = [f"o-{n}" for n in range(4)] + ["o-stuck"] + [f"o-{n}" for n in range(4, 9)]
    for order_id in ids:
        queue.send(order(work_dir, order_id))
    app.runtime.start()
    # The nine healthy orders are charged and deleted while o-stuck waits.
    wait_for(lambda: all(markers(work_dir, f"charged-o-{n}") for n in range(9)), timeout=20)
    wait_for(lambda: queue.stats().visible + queue.stats().in_flight <= 1, timeout=20)
    assert not markers(work_dir, "charged-o-stuck")
    # Retried later for more than 3 s, o-stuck counts its receives again and dead-letters.
    wait_for(lambda: dead_letters.stats().visible == 1, timeout=30)
    (dead,) = dead_letters.receive()
    assert json.loads(dead.body)["order_id"] == "o-stuck"
    assert "IdempotencyInProgress" in (dead.failure or "")
    assert "retried later for more than 3 s" in (dead.failure or "")
    assert all(len(markers(work_dir, f"charged-o-{n}")) == 1 for n in range(9))
    # The holder finishes while this test's store is still set up (not in a later test's).
    holder.join(timeout=40)
    assert not holder.is_alive()


SLOW_TO_START = textwrap.dedent(
    """
    import os, time

    if os.environ.get("SLOW_IMPORT_SECONDS"):
        time.sleep(float(os.environ["SLOW_IMPORT_SECONDS"]))

    def handler(event):
        time.sleep(0.2)
    """
)


def test_messages_are_leased_only_as_workers_become_ready(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "slow_to_start.py").write_text(SLOW_TO_START)
    monkeypatch.syspath_prepend(str(tmp_path))
    import slow_to_start  # type: ignore[import-not-found]

    monkeypatch.setenv("SLOW_IMPORT_SECONDS", "4")  # read by the workers as they start
    queue = app.queue("jobs")
    app.consumer(queue, batch_size=10, concurrency=4)(slow_to_start.handler)
    for n in range(100):
        queue.send(str(n))
    app.runtime.start()
    deadline = time.monotonic() + 3
    most = 0
    while time.monotonic() < deadline:  # every worker is still starting
        most = max(most, queue.stats().in_flight)
        time.sleep(0.05)
    # One batch waits on the one cold start; not one batch per slot (40).
    assert 0 < most <= 10
    wait_for(lambda: settled(queue), timeout=60)
