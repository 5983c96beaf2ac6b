"""The gateway over real HTTP: auth, usage plans, JWT, integrations, CORS, limits, 503."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from fanstack import App

from .conftest import Server, start_server, wait_for

APP = Path(__file__).with_name("gateway_app.py")
TINY, ROOMY = "tiny-key-0123456789abcdef", "roomy-key-0123456789abcdef"
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
    with gateway.client(headers={"x-api-key": TINY}) as client:
        statuses = [client.post("/events/b", json={"kind": "b"}).status_code for _ in range(4)]
        assert statuses[:3] == [202, 202, 202]  # the burst
        assert statuses[3] == 429
        throttled = client.post("/events/b", json={"kind": "b"})
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) >= 1
        time.sleep(2.1)  # 1 request/s refills two tokens
        assert client.post("/events/b", json={"kind": "b"}).status_code == 202
        assert client.post("/events/b", json={"kind": "b"}).status_code == 202
        time.sleep(1.1)
        over_quota = client.post("/events/b", json={"kind": "b"})  # the 6th today
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
