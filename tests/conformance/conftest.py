"""The backend-conformance fixtures: every test here runs once per backend.

The `store` each test runs against comes from tests/conftest.py; `backend` opens it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from fanstack.backends.base import Backend
from fanstack.core.errors import FanstackError
from fanstack.core.message import OutgoingMessage, ReceivedMessage, to_attributes
from fanstack.core.records import PublishRequest, new_message_id
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec

from ..support.endpoints import Endpoint
from ..support.stores import Store


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


@pytest.fixture
def failing_endpoint() -> Iterator[Endpoint]:
    """An HTTP endpoint that answers 500 to everything."""
    endpoint = Endpoint(status=500)
    yield endpoint
    endpoint.close()


@pytest.fixture
def accepting_endpoint() -> Iterator[Endpoint]:
    """An HTTP endpoint that answers 200 to everything."""
    endpoint = Endpoint(status=200)
    yield endpoint
    endpoint.close()


@pytest.fixture
def harness(backend: Backend, clock: Clock) -> Any:
    """The workflow harness of `workflow_harness.py` on this backend."""
    from .workflow_harness import Harness

    return Harness(backend, clock)
