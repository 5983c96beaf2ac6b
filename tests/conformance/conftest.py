"""The backend-conformance fixture: every test here runs once per backend."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fanstack.backends.base import Backend, PublishRequest, new_message_id
from fanstack.backends.nats import NatsBackend
from fanstack.backends.sqlite import SQLiteBackend
from fanstack.core.errors import FanstackError
from fanstack.core.message import OutgoingMessage, ReceivedMessage, to_attributes
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec

from ..support.nats_server import NatsServer

BACKENDS = ["sqlite", "nats"]


class Clock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass(frozen=True)
class Store:
    """Where a test's backend keeps its state; `open` gives another handle on the same store."""

    kind: str
    location: str

    def open(self, clock: Callable[[], float] = time.time) -> Backend:
        if self.kind == "sqlite":
            return SQLiteBackend(self.location, clock=clock)
        return NatsBackend(self.location, clock=clock)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return Store("sqlite", str(tmp_path / "data"))
    server: NatsServer = request.getfixturevalue("nats_server")
    stream = "T" + uuid.uuid4().hex  # one journal per test: a fresh, isolated store
    return Store("nats", f"nats://{server.url}?stream={stream}")


@pytest.fixture
def backend(store: Store, clock: Clock) -> Iterator[Backend]:
    instance = store.open(clock)
    yield instance
    instance.close()


def queue(backend: Backend, name: str, **attributes: Any) -> QueueSpec:
    spec = QueueSpec(name=name, **attributes)
    backend.declare_queue(spec)
    return spec


def topic(backend: Backend, name: str, **attributes: Any) -> TopicSpec:
    spec = TopicSpec(name=name, **attributes)
    backend.create_topic(spec)
    return spec


def subscribe(backend: Backend, topic_name: str, queue_name: str, **attributes: Any) -> None:
    backend.subscribe(SubscriptionSpec(topic=topic_name, queue=queue_name, **attributes))


def send(backend: Backend, queue_name: str, body: str = "hello", **fields: Any) -> str:
    attributes = to_attributes(fields.pop("attributes", None))
    message = OutgoingMessage(id=new_message_id(), body=body, attributes=attributes, **fields)
    (outcome,) = backend.send(queue_name, [message])
    if isinstance(outcome, FanstackError):
        raise outcome
    assert isinstance(outcome, str)
    return outcome


def publish(backend: Backend, topic_name: str, body: str = "hello", **fields: Any) -> str:
    attributes = to_attributes(fields.pop("attributes", None))
    (outcome,) = backend.publish(topic_name, [PublishRequest(body, attributes, **fields)])
    if isinstance(outcome, FanstackError):
        raise outcome
    assert isinstance(outcome, str)
    return outcome


def receive(
    backend: Backend, queue_name: str, n: int = 10, **options: Any
) -> list[ReceivedMessage]:
    options.setdefault("wait_seconds", 0)
    return backend.receive(queue_name, max_messages=n, **options)


def drain(backend: Backend, queue_name: str) -> list[ReceivedMessage]:
    """Receive and delete everything visible now."""
    out: list[ReceivedMessage] = []
    while batch := receive(backend, queue_name):
        out.extend(batch)
        results = backend.delete_messages(queue_name, [m.receipt_handle for m in batch])
        assert results == [None] * len(batch)
    return out
