"""A backend whose sends and publishes are spans, each message carrying the span's context.

The context (and the id of the request being served, if any) goes into the message's trace
attribute, so the delivery, the invocation it feeds and whatever that publishes in turn join
the same trace (`tracing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from opentelemetry.trace import SpanKind

from fanstack.core.message import OutgoingMessage, with_trace_context
from fanstack.core.records import EntryResult, PublishRequest
from fanstack.observability import tracing
from fanstack.observability.delegating_backend import DelegatingBackend


class TracedBackend(DelegatingBackend):
    """`inner`, with sends and publishes traced and carrying their context."""

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[EntryResult]:
        with _Producing("send", queue, len(messages)) as carried:
            return super().send(queue, _carrying_all(messages, carried))

    def publish(self, topic: str, requests: Sequence[PublishRequest]) -> list[EntryResult]:
        with _Producing("publish", topic, len(requests)) as carried:
            return super().publish(topic, _carrying_all(requests, carried))

    async def send_async(
        self, queue: str, messages: Sequence[OutgoingMessage]
    ) -> list[EntryResult]:
        with _Producing("send", queue, len(messages)) as carried:
            return await super().send_async(queue, _carrying_all(messages, carried))

    async def publish_async(
        self, topic: str, requests: Sequence[PublishRequest]
    ) -> list[EntryResult]:
        with _Producing("publish", topic, len(requests)) as carried:
            return await super().publish_async(topic, _carrying_all(requests, carried))


_Carrier = TypeVar("_Carrier", OutgoingMessage, PublishRequest)


def _carrying_all(items: Sequence[_Carrier], carried: str | None) -> Sequence[_Carrier]:
    """The messages (or publish requests), each carrying the trace context `carried`."""
    if carried is None:
        return items
    return [item.with_attributes(with_trace_context(item.attributes, carried)) for item in items]


class _Producing:
    """A producer span for a send or publish (none when not tracing); entering it gives what
    the messages should carry. A class, not a generator: every send and publish of a busy
    gateway enters one, and when nothing is traced it only reads the context."""

    __slots__ = ("_span",)

    def __init__(self, operation: str, destination: str, count: int) -> None:
        self._span: AbstractContextManager[object] | None = None
        if tracing.active():
            self._span = tracing.span(
                f"{operation} {destination}",
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "fanstack",
                    "messaging.operation.type": operation,
                    "messaging.destination.name": destination,
                    "messaging.batch.message_count": count,
                },
            )

    def __enter__(self) -> str | None:
        if self._span is not None:
            self._span.__enter__()
        return tracing.carried_context()

    def __exit__(self, *exc_info: Any) -> bool | None:
        return None if self._span is None else self._span.__exit__(*exc_info)
