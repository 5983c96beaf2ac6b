"""The visibility heartbeat, against a real SQLite backend: extends at half-time, stops after."""

from __future__ import annotations

import time
from pathlib import Path

from fanstack.backends.sqlite import SQLiteBackend
from fanstack.core.message import OutgoingMessage
from fanstack.core.specs import QueueSpec
from fanstack.runtime.heartbeat import Heartbeat


def test_a_held_batch_is_extended_at_half_time_and_not_after_release(tmp_path: Path) -> None:
    now = [1000.0]
    backend = SQLiteBackend(tmp_path, clock=lambda: now[0])
    backend.declare_queue(QueueSpec(name="q", visibility_timeout=10))
    backend.send("q", [OutgoingMessage(id="m", body="b", attributes={})])
    (message,) = backend.receive("q", max_messages=1, wait_seconds=0)
    heartbeat = Heartbeat()
    with heartbeat.keep_visible("q", [message.receipt_handle], 10, time.monotonic() - 6):
        now[0] += 8
        heartbeat.beat(backend)  # 6 s of 10 gone: extended to now + 10
        now[0] += 8
        assert backend.receive("q", max_messages=1, wait_seconds=0) == []
    now[0] += 3
    heartbeat.beat(backend)  # released: no longer extended
    assert len(backend.receive("q", max_messages=1, wait_seconds=0)) == 1
    backend.close()
