"""`/_fanstack/health` and `/_fanstack/ready` as a Kubernetes probe sees them."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from ..support.nats_server import single
from .conftest import start_server, wait_for

APP = Path(__file__).with_name("dashboard_app.py")


def test_health_and_ready_answer_200_once_the_scheduler_has_a_leader(tmp_path: Path) -> None:
    server = start_server(APP, tmp_path / "state")
    try:
        with server.client() as client:
            health = client.get("/_fanstack/health")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            ready = wait_for(lambda: _ready(client))
            body = ready.json()  # type: ignore[attr-defined]
            assert body["status"] == "ready" and body["failed"] == []
            assert set(body["checks"]) == {"storage", "consumers", "schedules"}
            assert body["checks"]["consumers"]["detail"].endswith("threads running")
            assert body["checks"]["schedules"]["detail"].startswith("leader ")
    finally:
        server.stop()


def test_ready_is_503_naming_the_storage_when_the_store_does_not_answer(tmp_path: Path) -> None:
    nats = single(tmp_path / "nats")
    backend = f"nats://{nats.url}?stream=PROBES{uuid.uuid4().hex[:8]}"
    server = start_server(APP, tmp_path / "state", command="gateway", backend=backend)
    try:
        with server.client() as client:
            checks = client.get("/_fanstack/ready").json()["checks"]
            assert checks["consumers"]["detail"] == "not run in this process"
            nats.kill()  # the store is gone
            response = wait_for(lambda: _not_ready(client))
            body = response.json()  # type: ignore[attr-defined]
            assert body["status"] == "not ready" and body["failed"] == ["storage"]
            assert body["checks"]["storage"]["detail"].startswith("storage unreachable")
            assert client.get("/_fanstack/health").status_code == 200  # alive all the same
    finally:
        server.stop()
        nats.stop()


def test_probes_need_no_token_off_loopback(tmp_path: Path) -> None:
    server = start_server(
        APP, tmp_path / "state", host="0.0.0.0", args=["--admin-token", "admin-secret"]
    )
    try:
        with server.client() as client:
            assert client.get("/_fanstack/health").status_code == 200
            wait_for(lambda: _ready(client))
            assert client.get("/_fanstack/queues").status_code == 403  # admin stays guarded
    finally:
        server.stop()


def _not_ready(client: httpx.Client) -> httpx.Response | None:
    response = client.get("/_fanstack/ready", timeout=60)
    return response if response.status_code == 503 else None


def _ready(client: httpx.Client) -> httpx.Response | None:
    response = client.get("/_fanstack/ready")
    return response if response.status_code == 200 else None
