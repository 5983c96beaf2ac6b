"""A backend whose sends and publishes are spans, each message carrying the span's context.

The context (and the id of the request being served, if any) goes into the message's trace
attribute, so the delivery, the invocation it feeds and whatever that publishes in turn join
the same trace (`tracing`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from opentelemetry.trace import SpanKind

from fanstack.core.message import OutgoingMessage, with_trace_context
from fanstack.core.records import EntryResult, PublishRequest
from fanstack.observability import tracing
from fanstack.observability.delegating_backend import DelegatingBackend


class TracedBackend(DelegatingBackend):
    """`inner`, with sends and publishes traced and carrying their context."""

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[EntryResult]:
        with tracing.span(
            f"send {queue}",
            kind=SpanKind.PRODUCER,
            attributes=_messaging("send", queue, len(messages)),
        ):
            carried = tracing.carried_context()
            if carried is not None:
                messages = [
                    dataclasses.replace(m, attributes=with_trace_context(m.attributes, carried))
                    for m in messages
                ]
            return super().send(queue, messages)

    def publish(self, topic: str, requests: Sequence[PublishRequest]) -> list[EntryResult]:
        with tracing.span(
            f"publish {topic}",
            kind=SpanKind.PRODUCER,
            attributes=_messaging("publish", topic, len(requests)),
        ):
            carried = tracing.carried_context()
            if carried is not None:
                requests = [
                    dataclasses.replace(r, attributes=with_trace_context(r.attributes, carried))
                    for r in requests
                ]
            return super().publish(topic, requests)


def _messaging(operation: str, destination: str, count: int) -> dict[str, object]:
    """OpenTelemetry's messaging attributes of a send or publish."""
    return {
        "messaging.system": "fanstack",
        "messaging.operation.type": operation,
        "messaging.destination.name": destination,
        "messaging.batch.message_count": count,
    }
