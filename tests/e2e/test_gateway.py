"""The gateway over real HTTP: auth, usage plans, JWT, integrations, CORS, limits, 503, and
bad input (deep nesting, NaN, media types), secrets, slow clients and the connection limit."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa

from fanstack import App
from fanstack.gateway.limits import ServerLimits
from fanstack.gateway.protocol import uvicorn_options
from fanstack.gateway.routing import Gateway
from fanstack.gateway.throttling import QUOTA_TABLE, RateLimiter
from fanstack.workflows import Execution

from .conftest import Server, free_port, start_server, wait_for

APP = Path(__file__).with_name("gateway_app.py")
TINY, ROOMY = "tiny-key-0123456789abcdef", "roomy-key-0123456789abcdef"
DAILY = "daily-key-0123456789abcdef"
SECRET = "test-secret-that-is-long-enough-for-hs256"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Bound to loopback but the app does not declare open_on_loopback: auth applies.
    server = start_server(APP, tmp_path_factory.mktemp("gw") / "state")
    yield server
    server.stop()


def token(
    claims: dict[str, object],
    key: object = SECRET,
    algorithm: str = "HS256",
    headers: dict[str, str] | None = None,
) -> str:
    payload = {"aud": "shop", "exp": int(time.time()) + 60, **claims}
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)  # type: ignore[arg-type]


def test_api_key_is_required_and_checked(gateway: Server) -> None:
    with gateway.client() as client:
        missing = client.post("/events/a", json={"kind": "a"})
        assert missing.status_code == 403
        assert "x-api-key" in missing.json()["message"]
        wrong = client.post("/events/a", json={"kind": "a"}, headers={"x-api-key": "nope"})
        assert wrong.status_code == 403
        ok = client.post("/events/a", json={"kind": "a", "n": 1}, headers={"x-api-key": ROOMY})
        assert ok.status_code == 202
        assert ok.json()["message_id"]
    app = App("gateway-test", data_dir=gateway.data_dir)
    (message,) = app.queue_for("audit").receive()
    assert json.loads(message.body) == {"kind": "a", "n": 1}
    assert message.attributes == {"kind": "a"}  # no claims on an API-key route: no user
    app.queue_for("audit").delete(message.receipt_handle)
    app.close()


def test_usage_plan_throttles_with_retry_after_then_quota(gateway: Server) -> None:
    # Refills and the order of rate and quota are timed with a fake clock in
    # tests/unit/gateway/test_auth.py; over HTTP, a burst and a quota that need no waiting.
    with gateway.client(headers={"x-api-key": TINY}) as client:
        statuses = [client.post("/events/b", json={"kind": "b"}).status_code for _ in range(4)]
        assert statuses[:3] == [202, 202, 202]  # the burst
        assert statuses[3] == 429
        throttled = client.post("/events/b", json={"kind": "b"})
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) >= 1
        assert_json_error(throttled, 429)
    with gateway.client(headers={"x-api-key": DAILY}) as client:
        assert client.post("/events/b", json={"kind": "b"}).status_code == 202
        assert client.post("/events/b", json={"kind": "b"}).status_code == 202
        over_quota = client.post("/events/b", json={"kind": "b"})  # the 3rd today
        assert over_quota.status_code == 429
        assert "per day" in over_quota.json()["message"]
        assert int(over_quota.headers["retry-after"]) > 0


def test_jwt_routes_need_a_valid_token_and_map_claims(gateway: Server) -> None:
    with gateway.client() as client:
        assert client.post("/secure", json={"kind": "a"}).status_code == 401
        bad = token({"sub": "u-1"}, key="another-secret-entirely-for-testing")
        assert (
            client.post(
                "/secure", json={"kind": "a"}, headers={"authorization": f"Bearer {bad}"}
            ).status_code
            == 401
        )
        expired = jwt.encode(
            {"sub": "u-1", "aud": "shop", "exp": int(time.time()) - 10}, SECRET, algorithm="HS256"
        )
        response = client.post(
            "/secure", json={"kind": "a"}, headers={"authorization": f"Bearer {expired}"}
        )
        assert response.status_code == 401
        assert "expired" in response.json()["message"].lower()
        wrong_audience = jwt.encode(
            {"sub": "u", "aud": "other", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"
        )
        assert (
            client.post(
                "/secure", json={"kind": "a"}, headers={"authorization": f"Bearer {wrong_audience}"}
            ).status_code
            == 401
        )
        good = token({"sub": "u-42"})
        ok = client.post(
            "/secure",
            json={"kind": "b"},
            headers={"authorization": f"Bearer {good}", "x-tenant": "t-9"},
        )
        assert ok.status_code == 202, ok.text
    app = App("gateway-test", data_dir=gateway.data_dir)
    (message,) = app.queue_for("inbox").receive()
    assert message.attributes == {"user": "u-42", "tenant": "t-9"}
    app.queue_for("inbox").delete(message.receipt_handle)
    app.close()


def test_invoke_returns_the_function_result_or_502(gateway: Server) -> None:
    with gateway.client() as client:
        ok = client.post("/echo", json={"x": 1})
        assert ok.status_code == 200
        assert ok.json() == {"echo": {"x": 1}}
        failed = client.post("/echo", json={"fail": True})
        assert failed.status_code == 502
        assert failed.json()["errorType"] == "ValueError"
        search = client.get("/search", params={"q": "tea", "limit": "5"})
        assert search.json() == {"echo": {"q": "tea", "limit": 5}}
        assert client.get("/search", params={"limit": "500"}).status_code == 400


def test_invoke_async_answers_202_and_reaches_the_destination(gateway: Server) -> None:
    with gateway.client() as client:
        response = client.post("/echo-later", json={"y": 2})
        assert response.status_code == 202
        request_id = response.json()["request_id"]
    app = App("gateway-test", data_dir=gateway.data_dir)
    results = app.queue_for("results")
    wait_for(lambda: results.stats().visible >= 1)
    records = [json.loads(m.body) for m in results.receive(max_messages=10)]
    assert request_id in {r["requestContext"]["requestId"] for r in records}
    app.close()


def test_a_route_puts_events_on_a_bus_and_its_rules_route_them(gateway: Server) -> None:
    with gateway.client() as client:
        response = client.post(
            "/checkout/ada", json={"items": [1, 2]}, headers={"x-tenant": "com.shop"}
        )
        assert response.status_code == 202
        event_id = response.json()["event_id"]
    app = App("gateway-test", data_dir=gateway.data_dir)
    checkouts = app.queue_for("checkouts")
    wait_for(lambda: checkouts.stats().visible >= 1)
    [message] = checkouts.receive(max_messages=10)
    event = json.loads(message.body)
    assert event["id"] == event_id
    assert (event["source"], event["detail-type"]) == ("com.shop", "Checkout")
    assert event["detail"] == {"user": "ada", "basket": {"items": [1, 2]}}
    app.close()


def test_a_route_starts_a_workflow_and_an_express_one_answers_its_result(
    gateway: Server,
) -> None:
    with gateway.client() as client:
        started = client.post("/greet", json={"name": "ada"}, headers={"x-greeting-id": "g-1"})
        assert started.status_code == 202
        arn = started.json()["execution_arn"]
        assert arn.split(":")[-2:] == ["greeter", "g-1"]  # named from the request
        again = client.post("/greet", json={"name": "eve"}, headers={"x-greeting-id": "g-1"})
        assert again.status_code == 400 and "ExecutionAlreadyExists" in again.text
        now = client.post("/greet-now", json={"name": "bob"})
        assert now.status_code == 200
        assert now.json()["status"] == "SUCCEEDED"
        assert now.json()["output"] == {"greeting": "hello bob"}
    app = App("gateway-test", data_dir=gateway.data_dir)
    done = Execution.from_arn(app.backend, arn).wait(timeout=30)
    assert (done.status, done.output) == ("SUCCEEDED", {"greeting": "hello ada"})
    app.close()


def test_a_route_answers_a_task_waiting_for_its_token(gateway: Server) -> None:
    app = App("gateway-test", data_dir=gateway.data_dir)
    with gateway.client() as client:
        arn = client.post("/approvals", json={"order": 1}).json()["execution_arn"]
        tokens = app.queue_for("tokens")
        wait_for(lambda: tokens.stats().visible >= 1)
        [message] = tokens.receive(max_messages=1)
        token = json.loads(message.body)["token"]
        answered = client.post(f"/approve/{token}", json={"approved": True})
        assert answered.status_code == 200
        again = client.post(f"/approve/{token}", json={"approved": False})
        assert again.status_code == 400 and "TaskTimedOut" in again.text
        bogus = client.post("/approve/not-a-token", json={})
        assert bogus.status_code == 400 and "InvalidToken" in bogus.text
    done = Execution.from_arn(app.backend, arn).wait(timeout=30)
    assert (done.status, done.output) == ("SUCCEEDED", {"approved": True})
    app.close()


def test_cors_preflight_and_request_ids(gateway: Server) -> None:
    with gateway.client() as client:
        preflight = client.options(
            "/echo",
            headers={
                "origin": "https://shop.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "x-api-key",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
        other = client.options(
            "/echo",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers
        given = client.post("/echo", json={}, headers={"x-request-id": "req-123"})
        assert given.headers["x-request-id"] == "req-123"

    def logged() -> bool:
        lines = [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]
        request = any(
            line.get("request_id") == "req-123" and line.get("status") == 200 for line in lines
        )
        # The function's worker logged the invocation under the same request id.
        worker = any(
            line.get("request_id") == "req-123" and line.get("message") == "echoing"
            for line in lines
        )
        return request and worker

    wait_for(logged, timeout=10)  # the request line is written once the response is sent


def test_rs256_tokens_verified_with_a_jwks_file(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig"}]}))
    server = start_server(APP, tmp_path / "state", env={"GATEWAY_JWKS": str(jwks)})
    try:
        with server.client() as client:
            good = token({"sub": "rs"}, key=private, algorithm="RS256", headers={"kid": "k1"})
            ok = client.post(
                "/secure", json={"kind": "a"}, headers={"authorization": f"Bearer {good}"}
            )
            assert ok.status_code == 202, ok.text
            other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            forged = token({"sub": "rs"}, key=other, algorithm="RS256", headers={"kid": "k1"})
            assert (
                client.post(
                    "/secure", json={"kind": "a"}, headers={"authorization": f"Bearer {forged}"}
                ).status_code
                == 401
            )
            hs = token({"sub": "rs"})  # an HS256 token is not accepted on an RS256 API
            assert (
                client.post(
                    "/secure", json={"kind": "a"}, headers={"authorization": f"Bearer {hs}"}
                ).status_code
                == 401
            )
    finally:
        server.stop()


def test_storage_unavailable_is_503_and_nothing_is_acknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    server = start_server(
        APP,
        data_dir,
        backend=f"sqlite://{data_dir}?busy_timeout_ms=300",
    )
    try:
        lock = sqlite3.connect(data_dir / "fanstack.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        released = threading.Event()
        try:
            with server.client(headers={"x-api-key": ROOMY}) as client:
                response = client.post("/events/a", json={"kind": "a"})
            assert response.status_code == 503
            assert "not stored" in response.json()["message"] or "Unavailable" in response.text
        finally:
            lock.execute("ROLLBACK")
            released.set()
            lock.close()
        with server.client(headers={"x-api-key": ROOMY}) as client:
            assert client.post("/events/a", json={"kind": "a"}).status_code == 202
        app = App("gateway-test", backend=f"sqlite://{data_dir}")
        assert app.queue_for("audit").stats().visible == 1  # only the acknowledged one
        app.close()
    finally:
        server.stop()


def test_admin_endpoints_need_the_token_off_loopback(tmp_path: Path) -> None:
    server = start_server(
        APP, tmp_path / "state", host="0.0.0.0", args=["--admin-token", "admin-secret"]
    )
    try:
        with server.client() as client:
            assert client.get("/_fanstack/queues").status_code == 403
            response = client.get(
                "/_fanstack/queues", headers={"authorization": "Bearer admin-secret"}
            )
            assert response.status_code == 200
    finally:
        server.stop()


# -- bad input: nesting, NaN, media types (issue 8, points 6, 7, 9) ----------------------------


def assert_json_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """A gateway error: the status, JSON, and the request id in the header and the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    request_id = response.headers["x-request-id"]
    payload: dict[str, Any] = response.json()
    assert payload["request_id"] == request_id
    return payload


def test_json_nested_too_deep_is_a_400_naming_the_problem(gateway: Server) -> None:
    with gateway.client() as client:
        for depth in (5000, 1000, 101):  # past the decoder's stack, and just past the bound
            body = "[" * depth + "]" * depth
            response = client.post(
                "/echo", content=body, headers={"content-type": "application/json"}
            )
            payload = assert_json_error(response, 400)
            (error,) = payload["errors"]
            assert error["in"] == "body"
            assert "nested more than 100 levels" in error["message"]
        nested: Any = {"x": 1}
        for _ in range(98):
            nested = {"x": nested}
        assert client.post("/echo", json=nested).status_code == 200


def test_every_error_is_json_with_a_request_id(gateway: Server) -> None:
    with gateway.client() as client:
        assert "Not Found" in assert_json_error(client.get("/no/such/route"), 404)["message"]
        not_allowed = client.get("/echo")
        assert_json_error(not_allowed, 405)
        assert "POST" in not_allowed.headers["allow"]
        too_large = client.post("/echo", json={"blob": "x" * 300_000})
        assert_json_error(too_large, 413)
        wrong_type = client.post("/echo", content=b"{}", headers={"content-type": "text/plain"})
        assert_json_error(wrong_type, 415)
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = b"".join(iter(lambda: sock.recv(65536), b""))
    status, headers, payload = reply_status_and_json(reply)
    assert status == 400
    assert payload["request_id"] == headers["x-request-id"]


def test_non_standard_json_numbers_are_rejected_naming_the_field(gateway: Server) -> None:
    with gateway.client() as client:
        for token in ("NaN", "Infinity", "-Infinity", "1e999"):
            body = '{"order": {"total": ' + token + '}, "n": 1}'
            response = client.post(
                "/echo-later", content=body, headers={"content-type": "application/json"}
            )
            payload = assert_json_error(response, 400)
            (error,) = payload["errors"]
            assert (error["in"], error["name"]) == ("body", "/order/total"), error
            assert token.lstrip("-") in error["message"]


def test_a_message_that_would_not_be_json_is_not_sent(gateway: Server) -> None:
    # PyJWT reads claims with Python's json, NaN included; the mapping puts them in the message.
    nan_claims = token({"sub": "u-1", "score": math.nan})
    with gateway.client(headers={"authorization": f"Bearer {nan_claims}"}) as client:
        response = client.post("/claimed", json={"n": 1})
    payload = assert_json_error(response, 400)
    (error,) = payload["errors"]
    assert (error["in"], error["name"]) == ("message", "/claims/score"), error
    app = App("gateway-test", data_dir=gateway.data_dir)
    assert app.queue_for("claimed").stats().visible == 0
    app.close()


def test_query_numbers_follow_json_grammar(gateway: Server) -> None:
    with gateway.client() as client:
        for raw in ("NaN", "nan", "Infinity", "-inf", "1e999", "1_000", " 5"):
            response = client.get("/search", params={"q": "tea", "min_price": raw})
            payload = assert_json_error(response, 400)
            assert [e["name"] for e in payload["errors"]] == ["min_price"], payload
        ok = client.get("/search", params={"q": "tea", "min_price": "2.5e1"})
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"echo": {"q": "tea", "min_price": 25.0}}


def test_only_json_media_types_in_unicode_charsets_are_read(gateway: Server) -> None:
    with gateway.client() as client:

        def post(body: bytes, content_type: str | None) -> httpx.Response:
            headers = {"content-type": content_type} if content_type is not None else {}
            return client.post("/echo", content=body, headers=headers)

        for refused in (
            "application/jsonp-evil",
            "text/plain; note=json",
            "application/x-www-form-urlencoded",
            "application/json; charset=iso-8859-1",
            "application/json; charset=no-such-charset",
            "application/json;;",
        ):
            payload = assert_json_error(post(b'{"a": 1}', refused), 415)
            assert payload["errors"][0]["name"] == "content-type", refused
        for accepted in ("application/json", "Application/JSON", "application/vnd.api+json"):
            assert post(b'{"a": 1}', accepted).json() == {"echo": {"a": 1}}, accepted
        assert post(b'{"a": 1}', None).json() == {"echo": {"a": 1}}  # API Gateway's default
        text = '{"name": "Zoë ☕"}'
        for charset in ("utf-16", "utf-16-le", "utf-32", "UTF-8"):
            response = post(text.encode(charset), f"application/json; charset={charset}")
            assert response.json() == {"echo": {"name": "Zoë ☕"}}, charset
        # The declared charset is the one used: UTF-8 bytes declared as UTF-16 do not decode.
        misdeclared = post(b'{"a": 1}', "application/json; charset=utf-16")
        assert assert_json_error(misdeclared, 400)["errors"][0]["in"] == "body"


def test_served_openapi_says_which_auth_is_enforced(gateway: Server) -> None:
    with gateway.client() as client:
        document = client.get("/openapi.json").json()
    events = document["paths"]["/events/{kind}"]["post"]
    assert events["security"] == [{"apiKey": []}]  # bound to loopback, but not open on it
    assert {"400", "403", "413", "415", "429"} <= set(events["responses"])
    assert document["paths"]["/secure"]["post"]["security"] == [{"bearer": []}]
    assert document["paths"]["/echo"]["post"]["security"] == []


# -- secrets (issue 8, point 10) ----------------------------------------------------------------

COUNTED = "counted-key-0123456789abcdef"


def test_api_keys_are_stored_only_as_their_hash(gateway: Server) -> None:
    with gateway.client(headers={"x-api-key": COUNTED}) as client:
        assert client.post("/events/a", json={"kind": "a"}).status_code == 202
    app = App("gateway-test", data_dir=gateway.data_dir)
    try:
        keys = [item.key for item in app.table(QUOTA_TABLE).scan()]
        digest = hashlib.sha256(COUNTED.encode()).hexdigest()
        assert any(key.startswith(f"{digest}#") for key in keys), keys
        assert not any(COUNTED in key for key in keys)
    finally:
        app.close()
    for path in gateway.data_dir.rglob("*"):
        if path.is_file():
            assert COUNTED.encode() not in path.read_bytes(), path


# -- in-process servers: real HTTP against uvicorn on a free port ------------------------------


@contextmanager
def serving(asgi: Any, limits: ServerLimits | None = None) -> Iterator[str]:
    """Serve `asgi` with the gateway's uvicorn options on a free port; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(
        asgi,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        **uvicorn_options(limits or ServerLimits()),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=15)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def small_app(tmp_path: Path) -> Iterator[App]:
    app = App("small", data_dir=tmp_path / "state")
    inbox = app.queue("inbox")
    app.api.post("/inbox", send=inbox, request_schema={"type": "object"}, auth="open")
    yield app
    app.close()


def test_an_unexpected_error_is_a_json_500_with_a_request_id(
    small_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    (operation,) = small_app.api.operations
    monkeypatch.setattr(operation.validator, "validate", broken)
    gateway = Gateway(small_app.api, small_app.backend_provider)
    with serving(gateway.asgi()) as url, httpx.Client(base_url=url) as client:
        response = client.post("/inbox", json={}, headers={"x-request-id": "req-500"})
        payload = assert_json_error(response, 500)
        assert payload["request_id"] == "req-500"
        assert "a bug" not in response.text  # no internals in the answer
        assert client.post("/inbox", json={}).status_code == 500  # and the server lives on


def test_admin_token_is_compared_in_constant_time(
    small_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return real_compare(given, expected)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    # Declared as bound to all interfaces (so the token applies); served on loopback for the test.
    gateway = Gateway(
        small_app.api,
        small_app.backend_provider,
        host="0.0.0.0",
        admin_token="admin-secret-token",
    )
    with serving(gateway.asgi()) as url, httpx.Client(base_url=url) as client:
        wrong = client.get("/_fanstack/queues", headers={"authorization": "Bearer admin-secret"})
        assert_json_error(wrong, 403)
        right = client.get(
            "/_fanstack/queues", headers={"authorization": "Bearer admin-secret-token"}
        )
        assert right.status_code == 200
    assert (b"Bearer admin-secret", b"Bearer admin-secret-token") in compared
    assert (b"Bearer admin-secret-token", b"Bearer admin-secret-token") in compared


def test_a_throttled_key_passes_again_once_retry_after_has_gone_by(small_app: App) -> None:
    now = [0.0]  # the gateway's rate limiter reads this clock: the test moves it, no one sleeps
    small_app.api.usage_plan("slow", rate=0.5, burst=1)
    small_app.api.api_key("slow-key-0123456789abcdef", plan="slow")
    small_app.api.post("/keyed", send="inbox", request_schema={"type": "object"}, auth="api_key")
    gateway = Gateway(
        small_app.api, small_app.backend_provider, rate_limiter=RateLimiter(lambda: now[0])
    )
    headers = {"x-api-key": "slow-key-0123456789abcdef"}
    with serving(gateway.asgi()) as url, httpx.Client(base_url=url, headers=headers) as client:
        assert client.post("/keyed", json={}).status_code == 202
        throttled = client.post("/keyed", json={})
        assert_json_error(throttled, 429)
        retry_after = int(throttled.headers["retry-after"])
        assert retry_after >= 1
        now[0] += retry_after - 0.5
        assert client.post("/keyed", json={}).status_code == 429  # not yet
        now[0] += 0.5
        assert client.post("/keyed", json={}).status_code == 202


# -- slow clients and the connection limit (issue 8, point 8) ------------------------------------

HEADER_TIMEOUT, BODY_TIMEOUT, MAX_CONNECTIONS = 2.0, 1.5, 4


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        APP,
        tmp_path_factory.mktemp("bounded") / "state",
        command="gateway",
        args=[
            "--header-timeout",
            str(HEADER_TIMEOUT),
            "--body-timeout",
            str(BODY_TIMEOUT),
            "--max-connections",
            str(MAX_CONNECTIONS),
        ],
    )
    yield server
    server.stop()


def trickle(server: Server, head: bytes, drip: bytes, every: float = 0.25) -> tuple[bytes, float]:
    """Send `head`, then `drip` every `every` s until the server closes; (reply, seconds)."""
    host, port = server.url.removeprefix("http://").split(":")
    started = time.monotonic()
    reply = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        sock.settimeout(every)
        while time.monotonic() - started < 15:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(drip)
                except OSError:  # closed under us: the reply is what was read
                    break
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
    return reply, time.monotonic() - started


def reply_status_and_json(reply: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def test_a_client_slow_to_send_headers_is_cut_off(bounded: Server) -> None:
    reply, seconds = trickle(bounded, b"POST /echo HTTP/1.1\r\nHost: test\r\n", b"X-Slow: 1\r\n")
    assert seconds < HEADER_TIMEOUT + 3, seconds
    status, headers, payload = reply_status_and_json(reply)
    assert status == 408
    assert payload["request_id"] == headers["x-request-id"]
    assert "headers" in payload["message"]


def test_a_client_slow_to_send_its_body_is_cut_off(bounded: Server) -> None:
    head = (
        b"POST /echo HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\n"
        b"content-length: 1000\r\n\r\n{"
    )
    reply, seconds = trickle(bounded, head, b" ")
    assert seconds < BODY_TIMEOUT + 3, seconds
    status, headers, payload = reply_status_and_json(reply)
    assert status == 408
    assert headers["connection"] == "close"
    assert payload["request_id"] == headers["x-request-id"]
    assert "body" in payload["message"]


def test_connections_beyond_the_limit_get_503(bounded: Server) -> None:
    host, port = bounded.url.removeprefix("http://").split(":")
    held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:
            sock.sendall(b"GET /openapi.json HTTP/1.1\r\n")  # headers never finished
        time.sleep(0.2)
        response = httpx.get(f"{bounded.url}/openapi.json", timeout=10)
        payload = assert_json_error(response, 503)
        assert "connections" in payload["message"]
        assert response.headers["connection"] == "close"
    finally:
        for sock in held:
            sock.close()
    # The held connections are gone (closed here, or cut off by the header timeout): served again.
    wait_for(lambda: httpx.get(f"{bounded.url}/openapi.json", timeout=10).status_code == 200)
