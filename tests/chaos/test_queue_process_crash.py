"""NATS: kill -9 a process in the middle of a receive, or of a redrive.

A process on NATS holds no queue state (leases are JetStream's, the redrive deduplicates its
stores by a JetStream message id), so whatever the dead process was doing, a fresh process
finds every message exactly once: the leased ones once their visibility timeout ran out, the
dead letters half moved back in their source queue or in the DLQ, never in both.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fanstack.backends.nats import NatsBackend
from fanstack.core.message import OutgoingMessage, ReceivedMessage
from fanstack.core.records import new_message_id
from fanstack.core.specs import QueueSpec

from ..support.nats_server import NatsServer, single

RECEIVER = textwrap.dedent(
    """
    import sys
    from fanstack import App

    url, log = sys.argv[1], sys.argv[2]
    app = App("x", backend=url)
    work = app.queue("work", visibility_timeout=2)
    with open(log, "a", buffering=1) as out:
        while True:  # receive and never delete, until killed
            for message in work.receive(max_messages=10, wait_seconds=0):
                out.write(message.id + "\\n")
    """
)

REDRIVER = textwrap.dedent(
    """
    import asyncio, sys
    from fanstack.backends.nats import NatsBackend
    from fanstack.backends.nats.queues import Messages

    url, log, pause_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    out = open(log, "a", buffering=1)
    store, stores = Messages.store, []

    async def store_then_pause(self, subject, stored, *, ttl, msg_id):
        # With pause_at, the redrive's store number pause_at waits to be killed after it is
        # stored and before it is removed from the DLQ: the window a kill rarely hits.
        await store(self, subject, stored, ttl=ttl, msg_id=msg_id)
        if msg_id is not None and msg_id.startswith("redrive:"):
            stores.append(msg_id)
            if len(stores) == pause_at:
                out.write("stored " + msg_id + "\\n")
                await asyncio.sleep(60)

    Messages.store = store_then_pause
    backend = NatsBackend(url)
    out.write("open\\n")
    moved = backend.redrive_dead_letters(
        "src", batch=10, on_moved=lambda count: out.write(f"{count}\\n")
    )
    out.write(f"done {moved}\\n")
    """
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    nats = single(tmp_path / "n")
    try:
        yield nats
    finally:
        nats.stop()


def namespace(server: NatsServer) -> str:
    return f"nats://{server.url}?stream=S{uuid.uuid4().hex}"


def spawn(tmp_path: Path, code: str, *args: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "child.py"
    script.write_text(code)
    output = (tmp_path / "child.out").open("wb")
    return subprocess.Popen(
        [sys.executable, str(script), *args], stdout=output, stderr=subprocess.STDOUT
    )


def lines(path: Path) -> list[str]:
    """The complete lines of a file another process is appending to."""
    if not path.exists():
        return []
    text = path.read_text()
    return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]


def wait_for(
    condition: Callable[[], bool], child: subprocess.Popen[bytes], tmp_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if child.poll() is not None:
            output = (tmp_path / "child.out").read_text()
            raise AssertionError(f"the child exited ({child.returncode}) early:\n{output}")
        assert time.monotonic() < deadline, "timed out waiting for the child"
        time.sleep(0.005)


def kill_9(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    child.wait(10)


def outgoing(bodies: list[str]) -> list[OutgoingMessage]:
    return [OutgoingMessage(id=new_message_id(), body=body) for body in bodies]


def test_kill_9_in_the_middle_of_a_receive_loses_no_message(
    server: NatsServer, tmp_path: Path
) -> None:
    url = namespace(server)
    parent = NatsBackend(url)
    parent.declare_queue(QueueSpec(name="work", visibility_timeout=2))
    sent: dict[str, str] = {}
    for start in range(0, 300, 10):
        bodies = [f"m{i}" for i in range(start, start + 10)]
        ids = parent.send("work", outgoing(bodies))
        sent.update(zip((str(i) for i in ids), bodies, strict=True))
    assert len(sent) == 300

    log = tmp_path / "received"
    child = spawn(tmp_path, RECEIVER, url, str(log))
    try:
        wait_for(lambda: len(lines(log)) >= 40, child, tmp_path, timeout=20)
        kill_9(child)  # most likely inside a receive: it receives in a loop without pause
    finally:
        kill_9(child)
    assert child.returncode == -signal.SIGKILL
    held = set(lines(log))
    assert held <= set(sent)
    assert len(held) < len(sent), "the child received everything before it was killed"

    fresh = NatsBackend(url)
    try:
        received: dict[str, tuple[str, int]] = {}
        twice: list[str] = []
        deadline = time.monotonic() + 15
        while len(received) < len(sent) and time.monotonic() < deadline:
            batch = fresh.receive("work", max_messages=10, wait_seconds=1)
            for message in batch:
                if message.id in received:
                    twice.append(message.id)
                received[message.id] = (message.body, message.receive_count)
            if batch:
                results = fresh.delete_messages("work", [m.receipt_handle for m in batch])
                assert results == [None] * len(batch)
        assert not twice, f"received again after it was deleted: {twice}"
        assert {i: body for i, (body, _) in received.items()} == sent, "a message was lost"
        # The child's leases ran out (it never deleted): those came back, received again.
        counts = {i: count for i, (_, count) in received.items()}
        assert {i: counts[i] for i in held if counts[i] < 2} == {}
        assert all(count >= 1 for count in counts.values())
        stats = fresh.stats("work")
        assert (stats.visible, stats.in_flight, stats.delayed) == (0, 0, 0)
        assert fresh.receive("work", max_messages=10, wait_seconds=0) == []
    finally:
        fresh.close()
        parent.close()


def _dead_letters(backend: NatsBackend, count: int) -> list[str]:
    """`count` messages of `src` dead-lettered into `dlq`, returns their bodies (a redrive
    makes each a new message, with a new id)."""
    backend.declare_queue(QueueSpec(name="dlq"))
    backend.declare_queue(QueueSpec(name="src", max_receive_count=1, dead_letter="dlq"))
    ids: list[str] = []
    for start in range(0, count, 10):
        results = backend.send("src", outgoing([f"d{i}" for i in range(start, start + 10)]))
        ids.extend(str(r) for r in results)
    held: list[ReceivedMessage] = []
    while len(held) < count:
        batch = backend.receive("src", max_messages=10, wait_seconds=0)
        assert batch, f"only {len(held)} of {count} received"
        held.extend(batch)
    assert sorted(m.id for m in held) == sorted(ids)
    bodies = [m.body for m in held]
    for start in range(0, count, 10):
        changes = [(m.receipt_handle, 0) for m in held[start : start + 10]]
        assert backend.set_visibility("src", changes, failure="x") == [None] * len(changes)
    deadline = time.monotonic() + 15
    while backend.stats("src").dead_letter_depth != count:
        assert backend.receive("src", max_messages=10, wait_seconds=0) == []
        assert time.monotonic() < deadline, f"DLQ stats: {backend.stats('src')}"
    return bodies


@pytest.mark.parametrize("moment", ["anywhere", "after-a-store"])
def test_kill_9_in_the_middle_of_a_redrive_neither_loses_nor_doubles(
    server: NatsServer, tmp_path: Path, moment: str
) -> None:
    """Killed at a random moment after 5 batches, or (`after-a-store`) just after the 55th
    dead letter was stored back in `src` and before it was removed from the DLQ."""
    url = namespace(server)
    parent = NatsBackend(url)
    try:
        bodies = _dead_letters(parent, 300)
        stats = parent.stats("src")
        assert (stats.visible, stats.in_flight, stats.dead_letter_depth) == (0, 0, 300)

        progress = tmp_path / "progress"
        pause_at = 55 if moment == "after-a-store" else 0
        child = spawn(tmp_path, REDRIVER, url, str(progress), str(pause_at))
        try:
            if pause_at:
                wait_for(
                    lambda: any(line.startswith("stored") for line in lines(progress)),
                    child,
                    tmp_path,
                    timeout=20,
                )
            else:
                wait_for(lambda: len(lines(progress)) >= 1 + 5, child, tmp_path, timeout=20)
                time.sleep(random.uniform(0, 0.02))  # a batch takes about 20 ms
            kill_9(child)
        finally:
            kill_9(child)
        assert child.returncode == -signal.SIGKILL
        reported = [line for line in lines(progress) if line.isdigit()]
        assert not any(line.startswith("done") for line in lines(progress)), (
            "the child finished the redrive before it was killed"
        )
        moved_by_child = sum(int(line) for line in reported)
        assert 50 <= moved_by_child < 300
        # At the kill at most one dead letter was stored back but not yet removed from the DLQ.
        stats = parent.stats("src")
        assert stats.in_flight == 0
        assert stats.dead_letter_depth is not None
        if pause_at:
            assert moved_by_child == 50
            assert (stats.visible, stats.dead_letter_depth) == (55, 246)
        else:
            assert 300 <= stats.visible + stats.dead_letter_depth <= 301, stats

        moved_by_parent = parent.redrive_dead_letters("src")
        # The child reports a batch once it moved all of it: of the batch the kill interrupted,
        # the dead letters it stored and removed from the DLQ are in no report (one it stored
        # but did not remove is stored again by this redrive, and dropped as a duplicate).
        assert 300 - 10 <= moved_by_child + moved_by_parent <= 300
        if pause_at:
            assert moved_by_parent == 246
        stats = parent.stats("src")
        assert (stats.visible, stats.in_flight, stats.dead_letter_depth) == (300, 0, 0)

        back: list[str] = []
        while batch := parent.receive("src", max_messages=10, wait_seconds=0):
            back.extend(m.body for m in batch)
            results = parent.delete_messages("src", [m.receipt_handle for m in batch])
            assert results == [None] * len(batch)
        doubled = {i: n for i, n in Counter(back).items() if n > 1}
        assert doubled == {}, f"redriven twice: {doubled}"
        assert sorted(back) == sorted(bodies), "a dead letter was lost"
        stats = parent.stats("src")
        assert (stats.visible, stats.in_flight, stats.dead_letter_depth) == (0, 0, 0)
        dlq = parent.stats("dlq")
        assert (dlq.visible, dlq.in_flight, dlq.delayed) == (0, 0, 0)
    finally:
        parent.close()
