"""What only the NATS backend has: journal snapshots and purging, reconnection, URL options."""

from __future__ import annotations

import uuid

import pytest

from fanstack import App, BackendUnavailable
from fanstack.backends.nats import NatsBackend
from fanstack.core.specs import QueueSpec

from ..support.nats_server import NatsServer


def url(server: NatsServer, **options: object) -> str:
    query = "&".join(
        f"{k}={v}" for k, v in {"stream": f"S{uuid.uuid4().hex[:10]}", **options}.items()
    )
    return f"nats://{server.url}?{query}"


def test_snapshots_purge_the_journal_and_new_processes_start_from_them(
    nats_server: NatsServer,
) -> None:
    location = url(nats_server, snapshot_every=20)
    first = NatsBackend(location)
    app = App("snap", backend=first)
    jobs = app.queue("jobs", visibility_timeout=60)
    table = app.table("t")
    sent = [jobs.send(f"m{i}") for i in range(60)]
    (held,) = jobs.receive()
    table.put("k", {"v": 1})
    info = first._run(first._js.stream_info(first.stream))
    assert info.state.first_seq > 1  # entries behind a snapshot were purged
    second = NatsBackend(location)
    try:
        stats = second.stats("jobs")
        assert (stats.visible, stats.in_flight) == (59, 1)
        item = second.table_get("t", "k")
        assert item is not None and item.value == {"v": 1}
        # The lease taken before the snapshot still holds, and its handle still works there.
        assert second.delete_messages("jobs", [held.receipt_handle]) == [None]
        drained = set()
        while batch := second.receive("jobs", max_messages=10):
            drained |= {m.id for m in batch}
            second.delete_messages("jobs", [m.receipt_handle for m in batch])
        assert drained == set(sent) - {held.id}
    finally:
        second.close()
        app.close()


def test_no_server_is_backend_unavailable(tmp_path: object) -> None:
    with pytest.raises(BackendUnavailable):
        NatsBackend("nats://127.0.0.1:1?stream=X")


def test_replicas_follow_the_number_of_servers(nats_server: NatsServer) -> None:
    backend = NatsBackend(url(nats_server))
    try:
        assert backend.replicas == 1
        backend.create_queue(QueueSpec(name="q"))
        assert [q.name for q in backend.list_queues()] == ["q"]
    finally:
        backend.close()
