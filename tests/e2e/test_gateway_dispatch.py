"""The API's routes served past Starlette (`gateway.dispatch`) answer exactly as through it.

An API that answers CORS is served by Starlette alone; one that does not has its routes served
by `ApiDispatch`. The same requests to the same API, served both ways, must get the same
statuses, bodies and headers; and what `ApiDispatch` does itself (request ids, the access line,
the body deadline, the 500 for an escaping error) is checked on its own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from fanstack import App
from fanstack.gateway.dispatch import ApiDispatch
from fanstack.gateway.limits import ServerLimits
from fanstack.gateway.routing import Gateway

from .test_gateway import reply_status_and_json, serving, trickle

BODY_TIMEOUT = 1.0
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _app(path: Path) -> App:
    app = App("dispatch", data_dir=path)
    inbox = app.queue("inbox")
    orders = app.topic("orders")
    orders.subscribe(app.queue("billing"))
    app.api.post("/inbox", send=inbox, request_schema={"type": "object"}, auth="open")
    app.api.post(
        "/shops/{shop}/orders",
        publish=orders,
        request_schema={
            "type": "object",
            "required": ["sku"],
            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
        },
        attributes={"shop": "$request.path.shop"},
        auth="open",
    )
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    app = _app(tmp_path / "state")
    yield app
    app.close()


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/inbox", {"json": {"a": 1}}),
    ("POST", "/inbox", {"json": [1]}),  # not an object: 400 naming the problem
    ("POST", "/inbox", {"content": b"{", "headers": {"content-type": "application/json"}}),
    ("POST", "/inbox", {"content": b"x", "headers": {"content-type": "text/csv"}}),  # 415
    ("POST", "/inbox", {"content": b"x" * (300 * 1024)}),  # 413
    ("POST", "/shops/s-1/orders", {"json": {"sku": "TEA", "qty": 2}}),
    ("POST", "/shops/s-1/orders", {"json": {"qty": "two"}}),  # two errors
    ("POST", "/shops/s-1/orders", {"json": {"sku": "TEA"}, "headers": {"x-request-id": "r-1"}}),
    ("POST", "/shops/s-1/orders", {"json": {}, "headers": {"x-request-id": "bad id!"}}),
    ("GET", "/inbox", {}),  # 405: Starlette's to give
    ("GET", "/nowhere", {}),  # 404
    ("POST", "/shops/s-1/orders/", {"json": {"sku": "TEA"}}),  # a redirect to the route
    ("GET", "/openapi.json", {}),
    ("GET", "/_fanstack/health", {}),
]


def _answers(asgi: Any) -> list[tuple[int, Any, dict[str, str]]]:
    answers = []
    with serving(asgi) as url, httpx.Client(base_url=url, follow_redirects=False) as client:
        for method, path, options in REQUESTS:
            response = client.request(method, path, **options)
            body: Any = response.json() if response.content else None
            request_id = response.headers.get("x-request-id", "")
            if isinstance(body, dict):
                if body.get("request_id") is not None:
                    assert body.pop("request_id") == request_id
                for key in ("message_id",):
                    if key in body:
                        body[key] = "<id>"
            given = (options.get("headers") or {}).get("x-request-id")
            if given == "r-1":
                assert request_id == "r-1"
            else:
                assert UUID.match(request_id), (path, request_id)
            headers = {
                name: value.removeprefix(url)
                for name, value in response.headers.items()
                if name in ("content-type", "location", "allow", "connection", "retry-after")
            }
            answers.append((response.status_code, body, headers))
    return answers


def test_api_routes_answer_alike_past_starlette_and_through_it(app: App) -> None:
    dispatched = Gateway(app.api, app.backend_provider).asgi()
    assert isinstance(dispatched, ApiDispatch)
    app.api.cors("https://shop.example")  # served by Starlette alone from here
    through_starlette = Gateway(app.api, app.backend_provider).asgi()
    assert not isinstance(through_starlette, ApiDispatch)
    past, through = _answers(dispatched), _answers(through_starlette)
    for request, one, other in zip(REQUESTS, past, through, strict=True):
        assert one == other, request
    assert [status for status, _, _ in past] == [
        202, 400, 400, 415, 413, 202, 400, 202, 400, 405, 404, 307, 200, 200,
    ]
    assert app.queue("inbox").stats().visible == 2  # one per server
    assert app.queue("billing").stats().visible == 4


def test_each_dispatched_request_logs_one_access_line_with_its_id(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fanstack.gateway")
    with serving(Gateway(app.api, app.backend_provider).asgi()) as url, httpx.Client(
        base_url=url
    ) as client:
        given = client.post("/inbox", json={}, headers={"x-request-id": "req-42"})
        made = client.post("/shops/s-9/orders", json={"qty": 1})
    assert given.status_code == 202 and made.status_code == 400
    lines = [r for r in caplog.records if r.name == "fanstack.gateway" and hasattr(r, "status")]
    assert [(r.method, r.path, r.status) for r in lines] == [  # type: ignore[attr-defined]
        ("POST", "/inbox", 202),
        ("POST", "/shops/s-9/orders", 400),
    ]
    assert all(r.duration_ms >= 0 for r in lines)  # type: ignore[attr-defined]


def test_a_body_slower_than_the_deadline_on_an_api_route_is_a_408_that_closes(app: App) -> None:
    limits = ServerLimits(body_timeout=BODY_TIMEOUT)
    asgi = Gateway(app.api, app.backend_provider, limits=limits).asgi()
    assert isinstance(asgi, ApiDispatch)
    head = (
        b"POST /inbox HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\n"
        b"content-length: 1000\r\nx-request-id: slow-1\r\n\r\n{"
    )
    with serving(asgi, limits) as url:
        reply, seconds = trickle(SimpleNamespace(url=url), head, b" ")  # type: ignore[arg-type]
    assert seconds < BODY_TIMEOUT + 3
    status, headers, payload = reply_status_and_json(reply)
    assert status == 408 and payload["request_id"] == headers["x-request-id"] == "slow-1"
    head_text = reply.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    assert head_text.count("connection: close") == 1
    assert app.queue("inbox").stats().visible == 0
