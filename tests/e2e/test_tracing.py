"""Traces across hops: one order is one trace, from the HTTP request to the shipment it caused.

The server and its function workers export over OTLP/HTTP (enabled by the standard OTEL_*
variables) to a collector in this test, which decodes what they send. The chain:
POST /orders/ru -> publish orders -> process ru-orders -> invoke fulfil -> publish shipments.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.conftest import REPO, start_server, wait_for

APP = REPO / "tests" / "e2e" / "observed_app.py"


class Collector:
    """An OTLP/HTTP trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with collector.lock:
                    for resource in request.resource_spans:
                        for scope in resource.scope_spans:
                            collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, name: str) -> list[Any]:
        with self.lock:
            return [span for span in self.spans if span.name == name]


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.server.shutdown()


def traced_env(collector: Collector) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "observed",
    }


def test_an_order_is_one_trace_from_request_to_downstream_publish(
    tmp_path: Path, collector: Collector
) -> None:
    server = start_server(APP, tmp_path / "state", env=traced_env(collector))
    try:
        caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        response = httpx.post(
            f"{server.url}/orders/ru",
            json={"order_id": "o-1"},
            headers={"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"},
        )
        assert response.status_code == 202
        request_id = response.headers["x-request-id"]
        names = ("POST /orders/{market}", "publish orders", "process ru-orders",
                 "invoke fulfil", "publish shipments")  # fmt: skip
        # each process exports on its own schedule: wait for every hop
        wait_for(lambda: all(collector.named(name) for name in names), timeout=60)
        request = collector.named("POST /orders/{market}")[0]
        publish = collector.named("publish orders")[0]
        process = collector.named("process ru-orders")[0]
        invoke = collector.named("invoke fulfil")[0]
        downstream = collector.named("publish shipments")[0]
        chain = [request, publish, process, invoke, downstream]
        # one trace, continuing the caller's traceparent
        assert {span.trace_id.hex() for span in chain} == {caller_trace}
        # each hop is the child of the one before
        assert request.parent_span_id.hex() == "00f067aa0ba902b7"
        for parent, child in itertools.pairwise(chain):
            assert child.parent_span_id == parent.span_id, (parent.name, child.name)
        attributes = {a.key: a.value.string_value for a in request.attributes}
        assert attributes["fanstack.request_id"] == request_id
        assert attributes["http.route"] == "/orders/{market}"
        # the request id and the trace id are in every log line of the chain (lines below
        # WARNING are written within 0.1 s, each process on its own schedule: wait for all)
        def chain_lines() -> list[dict[str, Any]]:
            lines = [json.loads(line) for line in server.logs().splitlines() if line[:1] == "{"]
            return [line for line in lines if line.get("request_id") == request_id]

        def complete() -> bool:
            messages = {line["message"] for line in chain_lines()}
            return (
                "POST /orders/ru 202" in messages
                and "fulfilling o-1" in messages  # the handler's own logging, in its worker
                and any(message.startswith("invocation") for message in messages)
            )

        try:
            wait_for(complete, timeout=30)
        except AssertionError:
            seen = sorted({line["message"] for line in chain_lines()})
            raise AssertionError(f"the chain's log lines are incomplete: {seen}") from None
        untraced = [line for line in chain_lines() if line.get("trace_id") != caller_trace]
        assert not untraced
    finally:
        server.stop()


def test_a_failed_invocation_is_an_error_span(tmp_path: Path, collector: Collector) -> None:
    server = start_server(APP, tmp_path / "state", env=traced_env(collector))
    try:
        response = httpx.post(f"{server.url}/orders/ru", json={"order_id": "o-2", "fail": True})
        assert response.status_code == 202
        wait_for(
            lambda: len(collector.named("invoke fulfil")) >= 2
            and collector.named("POST /orders/{market}"),
            timeout=60,
        )
        invokes = collector.named("invoke fulfil")
        assert all(span.status.code == 2 for span in invokes)  # STATUS_CODE_ERROR
        assert all("ValueError" in span.status.message for span in invokes)
        # both receives of the message continue the request's trace
        request = collector.named("POST /orders/{market}")[0]
        assert {span.trace_id for span in invokes} == {request.trace_id}
    finally:
        server.stop()


def test_tracing_is_off_by_default_and_the_attribute_stays_hidden(tmp_path: Path) -> None:
    server = start_server(APP, tmp_path / "state")
    try:
        response = httpx.post(f"{server.url}/orders/de", json={"order_id": "o-3"})
        assert response.status_code == 202
        received = httpx.get(f"{server.url}/_fanstack/queues")
        assert received.status_code == 200
        lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
        assert not any("trace_id" in line for line in lines)
    finally:
        server.stop()
