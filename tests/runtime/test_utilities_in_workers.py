"""Idempotency and circuit breaking inside real worker processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fanstack import App, CircuitBreaker
from fanstack.core.retry import RetryPolicy

from ..support.stores import Store
from . import handlers
from .conftest import markers, order, wait_for

FAST_RETRY = RetryPolicy(base_delay=0, max_delay=1, max_attempts=5)


pytestmark = pytest.mark.usefixtures("handler_state")


def test_idempotent_side_effect_runs_once_under_redelivery(app: App, work_dir: Path) -> None:
    queue = app.queue("charges", max_receive_count=5, dead_letter=app.queue("charges-dlq"))
    app.consumer(queue, batch_size=1, retry=FAST_RETRY)(handlers.charge_then_fail_first)
    queue.send(order(work_dir, "o-1"))
    app.runtime.start()
    wait_for(lambda: queue.stats().visible + queue.stats().in_flight == 0)
    assert len(markers(work_dir, "charged-o-1")) == 1
    assert app.queue_for("charges-dlq").stats().visible == 0


def test_concurrent_duplicates_charge_once(app: App, work_dir: Path) -> None:
    queue = app.queue("dupes", max_receive_count=10, dead_letter=app.queue("dupes-dlq"))
    app.consumer(queue, batch_size=1, concurrency=2, retry=FAST_RETRY)(
        handlers.charge_then_fail_first
    )
    for _ in range(2):  # the same order, twice, picked up by two workers at once
        queue.send(order(work_dir, "o-2", seconds=1))
    app.runtime.start()
    wait_for(lambda: queue.stats().visible + queue.stats().in_flight == 0, timeout=60)
    assert len(markers(work_dir, "charged-o-2")) == 1
    assert app.queue_for("dupes-dlq").stats().visible == 0


def test_open_breaker_leaves_messages_without_burning_receives(
    app: App, work_dir: Path, handler_state: Store
) -> None:
    (work_dir / "down").write_text("")
    queue = app.queue("payments", max_receive_count=50, dead_letter=app.queue("payments-dlq"))
    breaker = CircuitBreaker(
        handlers.state_app().table("breakers"),  # the handlers' store, as the workers see it
        "payments",
        failure_threshold=1,
        reset_timeout=2,
    )
    app.consumer(queue, batch_size=1, retry=FAST_RETRY, circuit_breaker=breaker)(
        handlers.call_flaky_dependency
    )
    for n in range(3):
        queue.send(json.dumps({"dir": str(work_dir), "n": n}))
    app.runtime.start()
    wait_for(lambda: breaker.state() == "open")
    # While the dependency is down, one trial call goes through per cool-down.
    wait_for(lambda: len(markers(work_dir, "call")) >= 3, timeout=30)
    (work_dir / "down").unlink()
    wait_for(lambda: len(markers(work_dir, "done-")) == 3, timeout=30)
    assert breaker.state() == "closed"
    calls = len(markers(work_dir, "call"))
    receives = sum(int(path.read_text()) for path in markers(work_dir, "done-"))
    # Every counted receive was a real call; deliveries that met the open breaker were
    # handed back uncounted.
    assert receives == calls
    assert app.queue_for("payments-dlq").stats().visible == 0
