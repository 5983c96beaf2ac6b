"""Archives and replays of an event bus, on every backend."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from fanstack.backends.base import Backend
from fanstack.bus.catalog import Catalog
from fanstack.bus.replay import REPLAY_QUEUE, Replayer
from fanstack.core.archives import CANCELLED, COMPLETED, RUNNING, STARTING
from fanstack.core.errors import ResourceAlreadyExists, ResourceNotFound, ValidationException

from .conftest import Clock
from .test_event_bus import backend_queue, bodies, handle, make_bus, route

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).timestamp()


def run_replays(backend: Backend) -> None:
    """Run every queued replay job to its end, as a worker's replayer does."""
    replayer, stopping = Replayer(), threading.Event()
    while jobs := backend.receive(REPLAY_QUEUE, max_messages=1, wait_seconds=0):
        for job in jobs:
            if replayer.replay(backend, job.body, job.receipt_handle, stopping):
                backend.delete_messages(REPLAY_QUEUE, [job.receipt_handle])


def put_orders(bus: object, count: int, start: float = T0) -> list[str]:
    ids = []
    for i in range(count):
        ids.append(
            bus.put_event(  # type: ignore[attr-defined]
                "shop", "OrderPlaced", {"n": i}, time=start + i * 30
            )
        )
    return ids


def test_an_archive_keeps_matching_events_in_event_time_order(backend: Backend) -> None:
    bus = make_bus(backend)
    everything = bus.archive("everything")
    big = bus.archive("big", event_pattern={"detail": {"n": [{"numeric": [">=", 3]}]}})
    ids = put_orders(bus, 5)
    route(backend)
    assert [e["id"] for e in everything.events()] == ids
    assert [e["detail"]["n"] for e in big.events()] == [3, 4]


def test_a_replay_resends_the_window_in_order_to_every_rule_marked_with_its_name(
    backend: Backend,
) -> None:
    bus = make_bus(backend)
    handle(backend, "ordering")
    bus.rule("orders", event_pattern={"source": ["shop"]}, targets=[backend_queue(backend)])
    archive = bus.archive("all")
    ids = put_orders(bus, 25)
    route(backend)
    assert len(bodies(backend, "ordering")) == 25
    replay = archive.replay("rebuild", T0 + 60, T0 + 600)  # events 2..20, both ends included
    assert replay.describe().state == STARTING
    run_replays(backend)
    done = replay.describe()
    assert done.state == COMPLETED and done.replayed == 19 and done.progress() == 1.0
    route(backend)
    replayed = bodies(backend, "ordering")
    assert [e["id"] for e in replayed] == ids[2:21]
    assert {e["replay-name"] for e in replayed} == {"rebuild"}
    assert len(archive.events()) == 25  # a replayed event is never archived again


def test_a_replay_reaches_only_the_rules_it_names(backend: Backend) -> None:
    bus = make_bus(backend)
    handle(backend, "a")
    handle(backend, "b")
    bus.rule("to-a", event_pattern={"source": ["shop"]}, targets=[backend_queue(backend, "a")])
    bus.rule("to-b", event_pattern={"source": ["shop"]}, targets=[backend_queue(backend, "b")])
    archive = bus.archive("all")
    put_orders(bus, 3)
    route(backend)
    bodies(backend, "a"), bodies(backend, "b")
    archive.replay("only-a", T0 - 1, T0 + 3600, rules=["to-a"])
    run_replays(backend)
    route(backend)
    assert len(bodies(backend, "a")) == 3
    assert bodies(backend, "b") == []
    with pytest.raises(ValidationException, match="no rules"):
        archive.replay("bad", T0 - 1, T0 + 3600, rules=["nope"])


def test_replay_names_windows_and_archives_are_checked(backend: Backend, clock: Clock) -> None:
    bus = make_bus(backend)
    archive = bus.archive("all")
    archive.replay("once", T0, T0 + 60)
    with pytest.raises(ResourceAlreadyExists):
        archive.replay("once", T0, T0 + 60)
    with pytest.raises(ValidationException, match="before"):
        archive.replay("backwards", T0 + 60, T0)
    with pytest.raises(ValidationException, match="future"):
        archive.replay("future", T0, clock() + 3600)
    with pytest.raises(ResourceNotFound):
        Catalog(backend).archive("missing")


def test_a_cancelled_replay_stops_and_says_so(backend: Backend) -> None:
    bus = make_bus(backend)
    archive = bus.archive("all")
    put_orders(bus, 30)
    route(backend)
    replay = archive.replay("stop-me", T0 - 1, T0 + 3600)
    replayer, stopping = Replayer(), threading.Event()
    [job] = backend.receive(REPLAY_QUEUE, max_messages=1, wait_seconds=0)
    original = replayer._send
    sent: list[int] = []

    def send_then_cancel(backend_: Backend, spec: object, events: list[dict[str, object]]) -> None:
        original(backend_, spec, events)  # type: ignore[arg-type]
        sent.append(len(events))
        if len(sent) == 1:
            replay.cancel()

    replayer._send = send_then_cancel  # type: ignore[method-assign]
    assert replayer.replay(backend, job.body, job.receipt_handle, stopping)
    final = replay.describe()
    assert final.state == CANCELLED
    assert sent == [10]
    with pytest.raises(ValidationException, match="cannot be cancelled"):
        replay.cancel()


def test_a_replayer_that_stops_midway_leaves_the_rest_to_the_next(backend: Backend) -> None:
    bus = make_bus(backend)
    handle(backend, "ordering")
    bus.rule("orders", event_pattern={"source": ["shop"]}, targets=[backend_queue(backend)])
    archive = bus.archive("all")
    ids = put_orders(bus, 25)
    route(backend)
    bodies(backend, "ordering")
    replay = archive.replay("resumed", T0 - 1, T0 + 3600)
    first, stopping = Replayer(), threading.Event()
    [job] = backend.receive(REPLAY_QUEUE, max_messages=1, wait_seconds=0)
    original = first._send

    def send_then_stop(backend_: Backend, spec: object, events: list[dict[str, object]]) -> None:
        original(backend_, spec, events)  # type: ignore[arg-type]
        stopping.set()

    first._send = send_then_stop  # type: ignore[method-assign]
    assert not first.replay(backend, job.body, job.receipt_handle, stopping)
    assert replay.describe().state == RUNNING and replay.describe().replayed == 10
    backend.set_visibility(REPLAY_QUEUE, [(job.receipt_handle, 0)])  # as if its lease ran out
    run_replays(backend)
    assert replay.describe().state == COMPLETED
    route(backend)
    assert [e["id"] for e in bodies(backend, "ordering")] == ids


def test_archived_events_expire_after_the_retention(backend: Backend, clock: Clock) -> None:
    bus = make_bus(backend)
    archive = bus.archive("week", retention_days=7)
    put_orders(bus, 2)
    route(backend)
    assert len(archive.events()) == 2
    clock.advance(8 * 86_400)
    assert archive.events() == []
