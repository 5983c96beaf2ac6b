"""NATS faults: kill -9 a cluster node under load, restart a server, two workers on one queue."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fanstack import App, BackendUnavailable
from fanstack.backends.nats import NatsBackend

from ..support.nats_server import NatsServer, cluster, single


def url_of(servers: list[NatsServer]) -> str:
    return "nats://" + ",".join(s.url for s in servers) + f"?stream=F{uuid.uuid4().hex[:10]}"


@pytest.fixture
def three_nodes(tmp_path: Path) -> Iterator[list[NatsServer]]:
    servers = cluster(tmp_path / "cluster")
    yield servers
    for server in servers:
        server.stop()


def _open_when_ready(url: str, timeout: float = 30) -> NatsBackend:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return NatsBackend(url)
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # the cluster is still electing its meta leader


def test_kill_9_of_a_cluster_node_loses_no_acknowledged_message(
    three_nodes: list[NatsServer],
) -> None:
    url = url_of(three_nodes)
    backend = _open_when_ready(url)
    app = App("cluster", backend=backend)
    queue = app.queue("orders")
    app.backend  # noqa: B018
    acknowledged: list[str] = []
    received: set[str] = set()
    stop = threading.Event()

    def produce() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                acknowledged.append(queue.send(json.dumps({"n": n})))
            except BackendUnavailable:
                time.sleep(0.2)  # not acknowledged: the caller would retry

    def consume() -> None:
        while not stop.is_set():
            try:
                for message in queue.receive(max_messages=10, wait_seconds=1):
                    received.add(message.id)
                    queue.delete(message.receipt_handle)
            except BackendUnavailable:
                time.sleep(0.2)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    before = len(acknowledged)
    three_nodes[0].kill()  # kill -9 one of the three replicas
    # JetStream elects new leaders within seconds; publishing must go on.
    deadline = time.monotonic() + 45
    while len(acknowledged) < before + 500 and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert len(acknowledged) >= before + 500, "publishing did not continue after the node died"
    # Drain what is left; every acknowledged message must turn up.
    deadline = time.monotonic() + 60
    while set(acknowledged) - received and time.monotonic() < deadline:
        for message in queue.receive(max_messages=10, wait_seconds=1, visibility_timeout=60):
            received.add(message.id)
            queue.delete(message.receipt_handle)
    assert not set(acknowledged) - received
    app.close()


def test_restarting_a_single_server_redelivers_in_flight_messages(tmp_path: Path) -> None:
    server = single(tmp_path / "single")
    url = url_of([server])
    try:
        backend = NatsBackend(url)
        app = App("restart", backend=backend)
        queue = app.queue("work", visibility_timeout=2)
        sent = {queue.send(f"m{i}") for i in range(5)}
        held = queue.receive(max_messages=10)
        assert {m.id for m in held} == sent
        server.kill()
        server.start()  # same store: JetStream recovers the journal from disk
        deadline = time.monotonic() + 30
        redelivered: dict[str, int] = {}
        while len(redelivered) < len(sent) and time.monotonic() < deadline:
            try:
                for message in queue.receive(max_messages=10, wait_seconds=1):
                    redelivered[message.id] = message.receive_count
            except BackendUnavailable:
                time.sleep(0.5)  # reconnecting
        assert set(redelivered) == sent
        assert set(redelivered.values()) == {2}
        app.close()
        # And a process that starts now sees the same state, replayed from the journal.
        fresh = NatsBackend(url)
        assert fresh.stats("work").in_flight == 5
        fresh.close()
    finally:
        server.stop()


WORKER_APP = textwrap.dedent(
    """
    import json, os, time
    from pathlib import Path
    from fanstack import App

    app = App("two-workers")
    jobs = app.queue("jobs", visibility_timeout=5)

    @app.consumer(jobs, batch_size=1, concurrency=2, timeout=30)
    def work(event, context):
        for record in event["Records"]:
            body = json.loads(record["body"])
            started = time.time()
            time.sleep(0.2)
            line = json.dumps({"id": record["messageId"], "pid": os.getpid(),
                               "start": started, "end": time.time()})
            with open(Path(body["dir"]) / "log.jsonl", "a") as log:
                log.write(line + "\\n")
    """
)


def test_two_workers_never_process_one_message_at_once(tmp_path: Path) -> None:
    server = single(tmp_path / "single")
    url = url_of([server])
    app_file = tmp_path / "two_workers_app.py"
    app_file.write_text(WORKER_APP)
    work = tmp_path / "work"
    work.mkdir()
    producer = App("two-workers", backend=url)
    jobs = producer.queue("jobs", visibility_timeout=5)
    sent = {jobs.send(json.dumps({"dir": str(work), "n": n})) for n in range(40)}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fanstack.cli",
                "--backend",
                url,
                "worker",
                str(app_file),
                "--grace",
                "5",
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ},
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 90
        log = work / "log.jsonl"
        while time.monotonic() < deadline:
            lines = log.read_text().splitlines() if log.exists() else []
            if len({json.loads(line)["id"] for line in lines}) >= len(sent):
                break
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
        server_done = producer
        server_done.close()
        server.stop()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert {r["id"] for r in records} == sent
    assert len({r["pid"] for r in records}) >= 2  # both workers took part
    by_id: dict[str, list[dict[str, float]]] = {}
    for record in records:
        by_id.setdefault(str(record["id"]), []).append(record)
    for runs in by_id.values():
        runs.sort(key=lambda r: r["start"])
        for first, second in itertools.pairwise(runs):
            assert first["end"] <= second["start"], "one message ran in two workers at once"
