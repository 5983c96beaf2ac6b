"""The backend-conformance fixture: every test here runs once per backend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fanstack.backends.base import Backend, PublishRequest, new_message_id
from fanstack.backends.sqlite import SQLiteBackend
from fanstack.core.errors import FanstackError
from fanstack.core.message import OutgoingMessage, ReceivedMessage, to_attributes
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec

BACKENDS = ["sqlite"]


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


def make_backend(kind: str, path: Path, clock: Clock) -> Backend:
    if kind == "sqlite":
        return SQLiteBackend(path, clock=clock)
    raise AssertionError(kind)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Backend]:
    instance = make_backend(request.param, tmp_path / "data", clock)
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
