"""The trace context a message carries: hidden from the user, outside their limits, kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fanstack import App
from fanstack.core.message import TRACE_CONTEXT_ATTRIBUTE
from fanstack.observability import tracing
from fanstack.runtime.logs import log_context


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer(provider.get_tracer("test"))
    yield exporter
    tracing.use_tracer(None)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    app = App("traced", data_dir=tmp_path / "state")
    yield app
    app.close()


def test_a_publish_is_a_span_whose_context_its_deliveries_carry(
    app: App, exported: InMemorySpanExporter
) -> None:
    orders = app.topic("orders")
    raw, enveloped = app.queue("raw"), app.queue("enveloped")
    orders.subscribe(raw, raw=True)
    orders.subscribe(enveloped)
    with log_context(request_id="req-1"):
        orders.publish("hello", attributes={"market": "ru"})
    (span,) = exported.get_finished_spans()
    assert span.name == "publish orders"
    for queue in (raw, enveloped):
        (message,) = queue.receive()
        carried = tracing.read_carried(message.trace_context)
        assert carried["request_id"] == "req-1"
        trace_id = format(span.context.trace_id, "032x")
        span_id = format(span.context.span_id, "016x")
        assert carried["traceparent"].startswith(f"00-{trace_id}-{span_id}-")
        assert TRACE_CONTEXT_ATTRIBUTE not in message.message_attributes
    envelope_queue = app.queue("enveloped2")
    orders.subscribe(envelope_queue)
    orders.publish("again", attributes={"market": "de"})
    (delivered,) = envelope_queue.receive()
    assert set(json.loads(delivered.body)["MessageAttributes"]) == {"market"}


def test_the_trace_context_does_not_count_against_the_ten_attributes_or_the_size(
    app: App, exported: InMemorySpanExporter
) -> None:
    queue = app.queue("full", max_message_size=1024)
    ten = {f"a{n}": "x" for n in range(10)}
    body = "b" * (1024 - sum(len(k) + len("String") + 1 for k in ten))
    with log_context(request_id="req-2"):
        queue.send(body, attributes=ten)
    (message,) = queue.receive()
    assert message.attributes == ten
    assert message.trace_context is not None


def test_without_a_request_or_a_tracer_nothing_is_carried(app: App) -> None:
    queue = app.queue("plain")
    queue.send("hello", attributes={"a": "b"})
    (message,) = queue.receive()
    assert message.trace_context is None
    assert message.attributes == {"a": "b"}


def test_a_user_cannot_name_the_trace_attribute(app: App) -> None:
    from fanstack.core.errors import InvalidAttributeName

    with pytest.raises(InvalidAttributeName):
        app.queue("q").send("x", attributes={TRACE_CONTEXT_ATTRIBUTE: "forged"})
