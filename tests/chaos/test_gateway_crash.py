"""kill -9 the marketplace server under HTTP load: every order answered 202 is in every queue."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx

from fanstack import App

from ..e2e.conftest import MARKETPLACE, start_server

SERVICES = ("process", "notify", "delivery", "reports")


def test_every_acknowledged_order_survives_kill_9_of_the_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    server = start_server(MARKETPLACE, data_dir)
    acknowledged: list[str] = []
    stop = threading.Event()

    def post_orders(worker: int) -> None:
        n = 0
        with httpx.Client(base_url=server.url, timeout=5) as client:
            while not stop.is_set():
                n += 1
                order_id = f"w{worker}-{n}"
                body = {
                    "order_id": order_id,
                    "customer": {"id": "c", "email": "c@example.com"},
                    "items": [{"sku": "S", "qty": 1, "price": 1}],
                    "currency": "EUR",
                    "shipping": {"country": "DE", "city": "B", "address": "A"},
                }
                try:
                    response = client.post("/market/eu/shops/s/orders", json=body)
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 202:
                    acknowledged.append(order_id)

    clients = [threading.Thread(target=post_orders, args=(i,)) for i in range(4)]
    for thread in clients:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(server.process.pid, signal.SIGKILL)  # the gateway, dispatcher and all
    stop.set()
    for thread in clients:
        thread.join(10)
    server.process.wait(10)
    assert len(acknowledged) >= 200

    # Read every queue and table directly, with a clock past the visibility timeout, so what
    # the killed consumers held in flight is visible again.
    from fanstack.backends.sqlite import SQLiteBackend

    app = App("marketplace", backend=SQLiteBackend(data_dir, clock=lambda: time.time() + 600))
    for service in SERVICES:
        seen: set[str] = set()
        queue = app.queue_for(service)
        while True:
            batch = queue.receive(max_messages=10, visibility_timeout=600)
            if not batch:
                break
            for message in batch:
                seen.add(json.loads(message.body)["order_id"])
        missing = set(acknowledged) - seen - _processed(app, service)
        assert not missing, f"{service} lost {len(missing)} acknowledged orders"
    app.close()


def _processed(app: App, service: str) -> set[str]:
    table = {"process": "orders", "notify": "outbox", "delivery": "shipments", "reports": "totals"}[
        service
    ]
    keys = {item.key for item in app.table(table).scan(limit=10_000)}
    return {key.split("/")[-1] for key in keys}
