"""What only the NATS backend has: no queue state in the process, partitions, the previous
layout refused, reconnection, URL options."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from fanstack import App, BackendUnavailable
from fanstack.backends.nats import NatsBackend
from fanstack.backends.nats.layout import HEADER, Stored
from fanstack.core.errors import InvalidParameterValue
from fanstack.core.specs import QueueSpec

from ..support.nats_server import NatsServer, free_port, single


def url(server: NatsServer, **options: object) -> str:
    query = "&".join(
        f"{k}={v}" for k, v in {"stream": f"S{uuid.uuid4().hex[:10]}", **options}.items()
    )
    return f"nats://{server.url}?{query}"


def test_a_process_holds_no_queue_state_and_a_late_one_sees_it_all(
    nats_server: NatsServer,
) -> None:
    location = url(nats_server)
    first = NatsBackend(location)
    app = App("late", backend=first)
    jobs = app.queue("jobs", visibility_timeout=60)
    table = app.table("t")
    sent = [jobs.send(f"m{i}") for i in range(60)]
    (held,) = jobs.receive()
    table.put("k", {"v": 1})
    # What the first process keeps of the queue is its own lease, nothing of the backlog.
    assert len(first._messages.ledger.leases_of_queue("jobs")) == 1
    assert not first._messages.local["jobs"].stash
    second = NatsBackend(location)
    try:
        stats = second.stats("jobs")
        assert (stats.visible, stats.in_flight) == (59, 1)
        item = second.table_get("t", "k")
        assert item is not None and item.value == {"v": 1}
        # The first process's lease holds everywhere, and its handle works from here.
        assert second.delete_messages("jobs", [held.receipt_handle]) == [None]
        drained = set()
        while batch := second.receive("jobs", max_messages=10):
            drained |= {m.id for m in batch}
            second.delete_messages("jobs", [m.receipt_handle for m in batch])
        assert drained == set(sent) - {held.id}
    finally:
        second.close()
        app.close()


def test_partitions_spread_a_queue_over_streams_and_are_fixed_at_creation(
    nats_server: NatsServer,
) -> None:
    location = url(nats_server, partitions=3)
    first = NatsBackend(location)
    try:
        first.declare_queue(QueueSpec(name="q"))
        app = App("parts", backend=first)
        queue = app.queue_for("q")
        sent = {queue.send(f"m{i}") for i in range(60)}
        counts = [
            first._run(first._messages.js.stream_info(first.names.stream(p))).state.messages
            for p in range(3)
        ]
        assert sum(counts) == 60 and all(count > 0 for count in counts)
        # A process that asks for another count gets the namespace's own.
        second = NatsBackend(location.replace("partitions=3", "partitions=5"))
        try:
            assert second.names.partitions == 3
            got = set()
            while batch := second.receive("q", max_messages=10):
                got |= {m.id for m in batch}
                second.delete_messages("q", [m.receipt_handle for m in batch])
            assert got == sent
        finally:
            second.close()
    finally:
        first.close()


def test_the_previous_layout_is_refused_with_the_steps_to_take(nats_server: NatsServer) -> None:
    import asyncio

    import nats
    from nats.js.api import StreamConfig

    from fanstack.core.errors import IncompatibleStore

    name = f"OLD{uuid.uuid4().hex[:8]}"

    async def write_old_journal() -> None:
        client = await nats.connect(f"nats://{nats_server.url}")
        js = client.jetstream()
        await js.add_stream(StreamConfig(name=name, subjects=[f"fanstack.{name}.journal"]))
        await js.publish(f"fanstack.{name}.journal", b'{"op":"create_queue"}')
        await client.close()

    asyncio.run(write_old_journal())
    with pytest.raises(IncompatibleStore) as caught:
        NatsBackend(f"nats://{nats_server.url}?stream={name}&connect_timeout=0")
    message = str(caught.value)
    assert "previous layout" in message and f"nats stream rm {name}" in message
    assert "?stream=" in message  # or another namespace

    async def still_there() -> int:
        client = await nats.connect(f"nats://{nats_server.url}")
        info = await client.jetstream().stream_info(name)
        await client.close()
        return info.state.messages

    assert asyncio.run(still_there()) == 1  # nothing was read away or deleted


def test_no_server_is_backend_unavailable(tmp_path: object) -> None:
    with pytest.raises(BackendUnavailable):
        NatsBackend("nats://127.0.0.1:1?stream=X&connect_timeout=0")


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf", "", "86401"])
def test_a_bad_connect_timeout_is_rejected_naming_the_option(value: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidParameterValue) as raised:
        NatsBackend(f"nats://127.0.0.1:{free_port()}?stream=X&connect_timeout={value}")
    assert f"option connect_timeout is {value!r}" in str(raised.value)
    assert "seconds between 0 and 86400" in str(raised.value)
    assert time.monotonic() - started < 1  # rejected before any connection attempt


def test_a_malformed_server_address_fails_at_once() -> None:
    with pytest.raises(InvalidParameterValue) as raised:
        NatsBackend("nats://127.0.0.1:port?stream=X&connect_timeout=30")
    assert "server '127.0.0.1:port' is not host:port" in str(raised.value)


def test_the_connect_timeout_stays_in_the_url_worker_processes_reopen(
    nats_server: NatsServer,
) -> None:
    location = url(nats_server, connect_timeout=12.5)
    backend = NatsBackend(location)
    try:
        assert backend.connect_timeout == 12.5
        assert backend.url == location
    finally:
        backend.close()
    default = NatsBackend(url(nats_server))
    default.close()
    assert default.connect_timeout == 30


def test_wrong_credentials_fail_at_once_naming_the_violation(tmp_path: Path) -> None:
    server = single(tmp_path, settings=("authorization { user: app, password: s3cret }",))
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as raised:
            NatsBackend(f"nats://app:wrong@{server.url}?stream=X&connect_timeout=30")
        assert time.monotonic() - started < 5  # waiting does not fix a password
        assert "Authorization Violation" in str(raised.value)
        assert "wrong" not in str(raised.value)  # no credentials in messages
        backend = NatsBackend(f"nats://app:s3cret@{server.url}?stream=X&connect_timeout=30")
        backend.close()
    finally:
        server.stop()


def test_only_errors_that_waiting_can_fix_are_retried() -> None:
    import ssl

    from nats.errors import AuthorizationError, NoRespondersError
    from nats.errors import Error as NatsError
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.errors import BadRequestError, ServiceUnavailableError

    from fanstack.backends.nats.startup import is_transient

    waiting_helps = [
        ConnectionRefusedError(),
        NatsTimeout(),
        NoRespondersError(),
        ServiceUnavailableError(code=503, err_code=10039, description="jetstream not enabled"),
        BadRequestError(code=400, err_code=10005, description="no suitable peers for placement"),
    ]
    final = [
        AuthorizationError(),
        NatsError("nats: 'Authorization Violation'"),
        ssl.SSLCertVerificationError(),
        BadRequestError(code=400, err_code=10058, description="stream name already in use"),
    ]
    assert [is_transient(error) for error in waiting_helps] == [True] * len(waiting_helps)
    assert [is_transient(error) for error in final] == [False] * len(final)


def test_replicas_follow_the_number_of_servers(nats_server: NatsServer) -> None:
    backend = NatsBackend(url(nats_server))
    try:
        assert backend.replicas == 1
        backend.create_queue(QueueSpec(name="q"))
        assert [q.name for q in backend.list_queues()] == ["q"]
    finally:
        backend.close()


def test_a_receive_that_fails_midway_gives_back_what_it_pulled(nats_server: NatsServer) -> None:
    from fanstack.core.errors import QueueDoesNotExist
    from fanstack.core.message import OutgoingMessage

    backend = NatsBackend(url(nats_server))
    try:
        backend.declare_queue(QueueSpec(name="dlq"))
        backend.declare_queue(QueueSpec(name="q", max_receive_count=1, dead_letter="dlq"))
        backend.send("q", [OutgoingMessage(id=f"m{n}", body=f"m{n}") for n in range(3)])
        (first,) = backend.receive("q", max_messages=1)
        backend.set_visibility("q", [(first.receipt_handle, 0)], failure="boom")
        backend.delete_queue("dlq")  # the next dead-letter cannot be stored
        with pytest.raises(QueueDoesNotExist):
            backend.receive("q", max_messages=10)
        backend.declare_queue(QueueSpec(name="dlq"))
        # What the failed receive had pulled is back at once, its receive not counted.
        back = backend.receive("q", max_messages=10)
        assert sorted(m.body for m in back) == ["m1", "m2"]
        assert [m.receive_count for m in back] == [1, 1]
        assert [m.body for m in backend.receive("dlq", max_messages=10)] == ["m0"]
    finally:
        backend.close()


def test_counts_include_every_store_that_returned_before_them(nats_server: NatsServer) -> None:
    # JetStream acknowledges a store a moment before a consumer counts it; stats() must not
    # answer in between (seen as a send followed by stats() reporting an empty queue).
    location = url(nats_server, partitions=2)
    backend = NatsBackend(location)
    app = App("counts", backend=backend)
    busy = App("counts", backend=NatsBackend(location))  # keeps the server's consumers busy
    stop = threading.Event()

    def load() -> None:
        noise = busy.queue("noise")
        while not stop.is_set():
            noise.send_batch([{"id": str(i), "body": "x"} for i in range(10)])

    try:
        jobs = app.queue("jobs")
        later = app.queue("later", delay=900)
        loader = threading.Thread(target=load)
        loader.start()
        for sent in range(1, 51):
            jobs.send(f"m{sent}")
            later.send(f"d{sent}")
            assert backend.stats("jobs").visible == sent
            assert backend.stats("later").delayed == sent
            # A new queue's first message is where the miss showed most often.
            app.queue(f"fresh{sent}").send("x")
            assert backend.stats(f"fresh{sent}").visible == 1
        stop.set()
        loader.join()
        jobs.purge()
        assert backend.stats("jobs").visible == 0
        # A purged store is forgotten: stats() never waits for it to be counted again.
        messages = backend._messages
        for partition in range(2):
            own = f"{messages.names.queue_prefix(partition, 'jobs')}.>"
            assert not messages.recent.uncounted(partition, [own], delivered=0, pending=0)
    finally:
        stop.set()
        busy.close()
        app.close()


@pytest.mark.parametrize(
    ("subject", "pattern", "matches"),
    [
        ("fs.n.0.q.a.m", "fs.n.0.q.a.>", True),
        ("fs.n.0.q.a", "fs.n.0.q.a.>", False),
        ("fs.n.0.t.t.0.1.e", "fs.n.0.t.t.*.1.>", True),
        ("fs.n.0.t.t.1.0.e", "fs.n.0.t.t.*.1.>", False),
        ("fs.n.0.d.a", "fs.n.0.d.a", True),
        ("fs.n.0.d.ab", "fs.n.0.d.a", False),
        ("fs.n.0.d.a.x", "fs.n.0.d.a", False),
    ],
)
def test_subjects_match_filters_as_nats_does(subject: str, pattern: str, matches: bool) -> None:
    from fanstack.backends.nats.layout import subject_matches

    assert subject_matches(subject, pattern) is matches


def test_a_queue_deletion_cut_short_is_finished_by_deleting_again(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fanstack.core.errors import QueueDoesNotExist

    backend = NatsBackend(url(nats_server))
    app = App("cut", backend=backend)
    topic = app.topic("orders")
    topic.subscribe(app.queue("gone"), raw=True)
    topic.publish("old")
    app.queue_for("gone").send("old too")

    # The process stops once its subscriptions and consumers are gone, while it removes the
    # stored messages (as a kill -9 there would): the queue is still there, so deleting it
    # again is possible, and finishes the job.
    purge = backend._messages.purge_subjects

    async def stopped(partition: int, queue: str) -> None:
        raise BackendUnavailable("stopped midway")

    monkeypatch.setattr(backend._messages, "purge_subjects", stopped)
    with pytest.raises(BackendUnavailable):
        backend.delete_queue("gone")
    assert backend.get_queue("gone").name == "gone"
    assert backend.list_subscriptions("orders") == []
    monkeypatch.setattr(backend._messages, "purge_subjects", purge)
    backend.delete_queue("gone")
    with pytest.raises(QueueDoesNotExist):
        backend.get_queue("gone")

    again = app.queue("gone")
    topic.subscribe(again, raw=True)
    topic.publish("new")
    assert [m.body for m in again.receive(max_messages=10, wait_seconds=1)] == ["new"]
    app.close()


def test_calls_from_threads_return_raise_and_give_up_in_time(nats_server: NatsServer) -> None:
    """Every call of the sync API crosses to the connection's loop (`Connection.run`): its
    result and fanstack errors come back as they are; NATS failures, a call that does not end
    in time (it is cancelled) and one cancelled on the loop are BackendUnavailable; many
    threads at once each get their own answer."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from nats.errors import NoRespondersError

    from fanstack import QueueDoesNotExist

    backend = NatsBackend(url(nats_server))
    connection = backend._connection
    try:

        async def answer() -> int:
            return 42

        async def refuse() -> None:
            raise QueueDoesNotExist("gone")

        async def unanswered() -> None:
            raise NoRespondersError

        async def broken() -> None:
            raise ValueError("a bug")

        cancelled = threading.Event()

        async def hang() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async def cancelled_on_the_loop() -> None:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # as closing the connection cancels what runs
            await asyncio.sleep(0)

        async def echo(number: int) -> int:
            await asyncio.sleep(0.001)
            return number

        assert connection.run(answer()) == 42
        with pytest.raises(QueueDoesNotExist):
            connection.run(refuse())
        with pytest.raises(BackendUnavailable, match="NoRespondersError"):
            connection.run(unanswered())
        with pytest.raises(ValueError, match="a bug"):
            connection.run(broken())
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=r"no answer within 0\.2 s"):
            connection.run(hang(), timeout=0.2)
        assert time.monotonic() - started < 2
        assert cancelled.wait(5)
        with pytest.raises(BackendUnavailable, match="connection closed"):
            connection.run(cancelled_on_the_loop())
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda n: connection.run(echo(n)), range(200)))
        assert answers == list(range(200))
    finally:
        backend.close()


def test_a_header_is_read_back_whatever_text_it_holds() -> None:
    """Headers are read with msgspec, and with json where msgspec refuses what json wrote (a
    lone surrogate's escape, say in a failure text): a stored message stays readable."""
    stored = Stored(message_id="m-1", body="body", sent_at=1.5)
    stored.failure = "UnicodeDecodeError: b'\\xe9' as \udce9 in caf\u00e9"
    stored.group_id = "g-1"
    headers = stored.headers()
    back = Stored.parse(headers, b"body")
    assert (back.message_id, back.sent_at, back.failure) == ("m-1", 1.5, stored.failure)
    assert Stored.group_of(headers) == "g-1"
    with pytest.raises(ValueError):
        Stored.parse({HEADER: "{not json"}, b"")
