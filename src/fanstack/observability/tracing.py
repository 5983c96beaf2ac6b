"""OpenTelemetry traces across hops: request -> publish -> delivery -> invocation -> publish.

Off by default; on when the standard variables ask for it (`OTEL_TRACES_EXPORTER` other than
`none`, or an `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), exported
over OTLP/HTTP (or to the console with `OTEL_TRACES_EXPORTER=console`), sampled as
`OTEL_TRACES_SAMPLER` says, `OTEL_SDK_DISABLED=true` wins. Every process of an app reads the
same variables: the serving processes, `fanstack worker` and the function workers.

A message carries the context of the span that stored it, and the id of the request that
caused it, in one attribute (`TRACE_CONTEXT_ATTRIBUTE`, hidden from the user's attributes and
limits). The request id travels even with tracing off, so a function's log lines name the
request that led to them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from fanstack.core.message import ReceivedMessage
from fanstack.runtime.logs import current_field

log = logging.getLogger("fanstack.tracing")

SERVICE_NAME = "fanstack"
_propagator = TraceContextTextMapPropagator()
_encoder = msgspec.json.Encoder()
_tracer: trace.Tracer | None = None


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the OTEL_* variables ask for traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def configure() -> bool:
    """Start exporting spans if the environment asks for it; True if it does."""
    global _tracer
    if _tracer is not None or not wanted():
        return _tracer is not None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    name = os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    exporter: Any
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("fanstack")
    log.info("exporting traces", extra={"exporter": type(exporter).__name__})
    return True


def use_tracer(tracer: trace.Tracer | None) -> None:
    """Trace with `tracer` (None: stop tracing), for a host that sets up OpenTelemetry itself."""
    global _tracer
    _tracer = tracer


def active() -> bool:
    """Whether this process records spans."""
    return _tracer is not None


def current_ids() -> dict[str, str]:
    """`trace_id` and `span_id` of the current span, for log lines (empty when none)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }


# -- what a message carries -----------------------------------------------------------------


def carried_context() -> str | None:
    """What a message stored now should carry: the current trace context and request id."""
    carrier: dict[str, str] = {}
    if _tracer is not None:
        _propagator.inject(carrier)
    request_id = current_field("request_id")
    if request_id:
        carrier["request_id"] = str(request_id)
    if not carrier:
        return None
    return _encoder.encode(carrier).decode()


def read_carried(text: str | None) -> dict[str, str]:
    """The carrier a message was stored with (empty if none or unreadable)."""
    if not text:
        return {}
    try:
        carrier = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(carrier, dict):
        return {}
    return {str(k): str(v) for k, v in carrier.items()}


# -- spans ----------------------------------------------------------------------------------


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Mapping[str, str] | None = None,
    links: Sequence[Mapping[str, str]] = (),
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[trace.Span | None]:
    """A span (None when not tracing), child of `parent` (a carrier) or of the current span.

    An exception leaving the block marks the span as failed and is re-raised.
    """
    if _tracer is None:
        yield None
        return
    context = _propagator.extract(parent) if parent else None
    span_links = [
        Link(linked)
        for linked in (
            trace.get_current_span(_propagator.extract(carrier)).get_span_context()
            for carrier in links
        )
        if linked.is_valid
    ]
    with _tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        links=span_links,
        attributes=dict(attributes or {}),
        record_exception=True,
        set_status_on_exception=True,
    ) as current:
        yield current


def fail(current: trace.Span | None, description: str) -> None:
    """Mark a span as failed (a handler error that did not raise here)."""
    if current is not None:
        current.set_status(Status(StatusCode.ERROR, description))


@contextmanager
def continued(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Make the context in `carrier` current (in a worker process, for its handler's spans)."""
    if _tracer is None or not carrier:
        yield
        return
    token = otel_context.attach(_propagator.extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)


def context_of_current() -> dict[str, str]:
    """The current span's context as a carrier (for a worker process to continue)."""
    carrier: dict[str, str] = {}
    if _tracer is not None:
        _propagator.inject(carrier)
    return carrier


def batch_carriers(batch: Sequence[ReceivedMessage]) -> list[dict[str, str]]:
    """The carriers of a batch's messages that have one, in batch order."""
    return [c for c in (read_carried(m.trace_context) for m in batch) if c]
