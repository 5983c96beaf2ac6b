"""The marketplace example end to end, over real HTTP against `fanstack run`."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from fanstack import App

from ..support.nats_server import NatsServer
from .conftest import MARKETPLACE, Server, start_server, wait_for

SERVICES = ("process", "notify", "delivery", "reports", "compliance")


def order(order_id: str | None = "o-1", country: str = "DE", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer": {"id": "c-1", "email": "ada@example.com"},
        "items": [{"sku": "TEA-1", "qty": 2, "price": 7.5}, {"sku": "MUG-1", "qty": 1, "price": 3}],
        "currency": "EUR",
        "shipping": {"country": country, "city": "Berlin", "address": "Street 1"},
    }
    if order_id is not None:
        body["order_id"] = order_id
    body.update(changes)
    return body


def settled(client: httpx.Client, market: str, shop: str, order_id: str) -> dict[str, Any] | None:
    response = client.get(f"/market/{market}/shops/{shop}/orders/{order_id}")
    if response.status_code != 200:
        return None
    state: dict[str, Any] = response.json()
    expected = [s for s in SERVICES if not (s == "compliance" and market != "ru")]
    if all(state[s] and state[s]["status"] != "pending" for s in expected):
        return state
    return None


def depths(server: Server) -> dict[str, int]:
    with server.client() as client:
        stats = client.get("/_fanstack/queues").json()["queues"]
    return {q["name"]: q["visible"] + q["in_flight"] for q in stats}


def test_an_order_reaches_every_service_and_compliance_only_for_ru(marketplace: Server) -> None:
    with marketplace.client() as client:
        for market in ("ru", "eu", "us"):
            response = client.post(f"/market/{market}/shops/s-7/orders", json=order(f"o-{market}"))
            assert response.status_code == 202, response.text
            assert response.json()["order_id"] == f"o-{market}"
            assert response.headers["x-request-id"]
        states = {
            market: wait_for(lambda m=market: settled(client, m, "s-7", f"o-{m}"))
            for market in ("ru", "eu", "us")
        }
    ru, eu = states["ru"], states["eu"]
    assert isinstance(ru, dict) and isinstance(eu, dict)
    assert ru["process"]["total"] == 18.0
    assert ru["notify"]["to"] == "ada@example.com"
    assert ru["delivery"]["carrier"] == "DHL"
    assert ru["reports"]["status"] == "counted"
    assert ru["compliance"]["status"] == "cleared"
    assert eu["compliance"] is None
    assert states["us"]["compliance"] is None  # type: ignore[index]
    app = App("marketplace", data_dir=marketplace.data_dir)
    assert [i.key for i in app.table("compliance").scan()] == ["ru/s-7/o-ru"]
    totals = {i.key: i.value for i in app.table("totals").scan(prefix="ru/")}
    assert totals == {"ru/s-7": {"orders": 1, "revenue": 18.0}}
    app.close()


def test_order_id_is_generated_when_absent(marketplace: Server) -> None:
    with marketplace.client() as client:
        response = client.post("/market/eu/shops/s-1/orders", json=order(None))
        assert response.status_code == 202
        order_id = response.json()["order_id"]
        assert order_id
        assert wait_for(lambda: settled(client, "eu", "s-1", order_id))


def test_unknown_order_is_404(marketplace: Server) -> None:
    with marketplace.client() as client:
        response = client.get("/market/eu/shops/s-1/orders/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["message"]


def test_invalid_requests_get_400_listing_every_field_and_change_nothing(
    marketplace: Server,
) -> None:
    bad = order(items=[{"sku": "", "qty": 0, "price": -1}], currency="XXX")
    with marketplace.client() as client:
        response = client.post("/market/mars/shops/s 1/orders", json=bad)
        assert response.status_code == 400
        errors = {(e["in"], e["name"]) for e in response.json()["errors"]}
        assert {
            ("path", "market"),
            ("path", "shop_id"),
            ("body", "/currency"),
            ("body", "/items/0/sku"),
            ("body", "/items/0/qty"),
            ("body", "/items/0/price"),
        } <= errors
        not_json = client.post(
            "/market/eu/shops/s-1/orders",
            content=b"{oops",
            headers={"content-type": "application/json"},
        )
        assert not_json.status_code == 400
        assert "not valid JSON" in not_json.text
        empty = client.post("/market/eu/shops/s-1/orders")
        assert empty.status_code == 400
        extra = client.post("/market/eu/shops/s-1/orders", json=order(discount=100))
        assert extra.status_code == 400
        huge = client.post(
            "/market/eu/shops/s-1/orders",
            json=order(customer={"id": "x" * 300_000, "email": "a@b.c"}),
        )
        assert huge.status_code == 413
        assert "262144" in huge.json()["message"]
    assert all(depth == 0 for depth in depths(marketplace).values())
    app = App("marketplace", data_dir=marketplace.data_dir)
    assert app.table("orders").scan() == []
    app.close()


def test_patterns_are_ecma_262_and_the_spec_says_auth_is_open_on_loopback(
    marketplace: Server,
) -> None:
    with marketplace.client() as client:
        # ECMA-262: `$` is the very end (Python's also matches before a final newline) and
        # `\s` includes U+FEFF (Python's does not).
        for email in ("ada@example.com\n", "ada\ufeff@example.com"):
            customer = {"id": "c-1", "email": email}
            response = client.post("/market/eu/shops/s-1/orders", json=order(customer=customer))
            assert response.status_code == 400, (email, response.text)
            assert [e["name"] for e in response.json()["errors"]] == ["/customer/email"]
        response = client.post("/market/eu/shops/s-1%0A/orders", json=order())
        assert response.status_code == 400, response.text
        assert [e["name"] for e in response.json()["errors"]] == ["shop_id"]
        document = client.get("/openapi.json").json()
    # The app is open on loopback and served there: the spec must not demand a key.
    operation = document["paths"]["/market/{market}/shops/{shop_id}/orders"]["post"]
    assert operation["security"] == []
    assert "403" not in operation["responses"] and "415" in operation["responses"]
    assert all(depth == 0 for depth in depths(marketplace).values())


def test_handler_failure_ends_in_the_dlq_and_redrives_once_fixed(marketplace: Server) -> None:
    with marketplace.client() as client:
        response = client.post("/market/eu/shops/s-2/orders", json=order("o-aq", country="AQ"))
        assert response.status_code == 202
        # Retried with backoff (4 receives), then parked in delivery-dlq.
        wait_for(lambda: depths(marketplace)["delivery-dlq"] == 1, timeout=60)
        state = client.get("/market/eu/shops/s-2/orders/o-aq").json()
        assert state["delivery"] == {"status": "pending"}
        assert state["process"]["status"] == "accepted"
    app = App("marketplace", data_dir=marketplace.data_dir)
    (dead,) = app.queue_for("delivery-dlq").receive(visibility_timeout=0)
    assert dead.failure is not None and "NoCarrier" in dead.failure
    # The fix: a carrier for Antarctica. Then bring the order back from the DLQ.
    app.table("carriers").put("AQ", {"name": "Polar Post"})
    app.close()
    redrive = subprocess.run(
        [
            sys.executable,
            "-m",
            "fanstack.cli",
            "--data-dir",
            str(marketplace.data_dir),
            "dlq",
            "redrive",
            "delivery",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert redrive.returncode == 0, redrive.stderr
    assert "moved 1 message(s)" in redrive.stdout
    with marketplace.client() as client:
        state = wait_for(lambda: settled(client, "eu", "s-2", "o-aq"))
    assert state["delivery"]["carrier"] == "Polar Post"  # type: ignore[index]


def test_openapi_document_has_a_valid_example_for_every_body(marketplace: Server) -> None:
    with marketplace.client() as client:
        document = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    components = document["components"]
    bodies = 0
    for item in document["paths"].values():
        for operation in item.values():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                bodies += 1
                schema = {**content["application/json"]["schema"], "components": components}
                jsonschema.validate(content["application/json"]["example"], schema)
    assert bodies == 1
    assert json.dumps(document)  # serializable as served


def test_admin_endpoints_answer_on_loopback(marketplace: Server) -> None:
    with marketplace.client() as client:
        assert client.get("/_fanstack/health").json()["status"] == "ok"
        names = {q["name"] for q in client.get("/_fanstack/queues").json()["queues"]}
    assert {"process", "compliance", "delivery-dlq"} <= names


def test_the_marketplace_runs_unchanged_on_nats(tmp_path: Path, nats_server: NatsServer) -> None:
    backend = f"nats://{nats_server.url}?stream=MARKET{uuid.uuid4().hex[:8]}"
    server = start_server(MARKETPLACE, tmp_path / "state", backend=backend)
    try:
        with server.client() as client:
            for market in ("ru", "eu"):
                response = client.post(
                    f"/market/{market}/shops/s-9/orders", json=order(f"n-{market}")
                )
                assert response.status_code == 202, response.text
            ru = wait_for(lambda: settled(client, "ru", "s-9", "n-ru"), timeout=60)
            eu = wait_for(lambda: settled(client, "eu", "s-9", "n-eu"), timeout=60)
        assert ru["compliance"]["status"] == "cleared"  # type: ignore[index]
        assert eu["compliance"] is None  # type: ignore[index]
        assert eu["reports"]["status"] == "counted"  # type: ignore[index]
    finally:
        server.stop()
