"""HTTP load on the marketplace, and reading back what its services did, for chaos tests."""

from __future__ import annotations

import threading
import time

import httpx

from fanstack import App

SERVICES = ("process", "notify", "delivery", "reports")
TABLES = {"process": "orders", "notify": "outbox", "delivery": "shipments", "reports": "totals"}


class OrderLoad:
    """Client threads posting orders until stopped; remembers every order answered 202."""

    def __init__(self, url: str, prefix: str, clients: int = 4, *, reconnect: bool = False) -> None:
        self.url = url
        self.prefix = prefix
        self.reconnect = reconnect  # on a lost connection, connect again (the port still answers)
        self.acknowledged: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._post, args=(n,), daemon=True) for n in range(clients)
        ]

    def start(self) -> OrderLoad:
        for thread in self._threads:
            thread.start()
        return self

    def wait_for(self, count: int, timeout: float = 30) -> None:
        """Until `count` orders were acknowledged (or `timeout` passed)."""
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _post(self, client_number: int) -> None:
        n = 0
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while not self._stop.is_set():
                n += 1
                order_id = f"{self.prefix}-w{client_number}-{n}"
                try:
                    response = client.post("/market/eu/shops/s/orders", json=_order(order_id))
                except httpx.HTTPError:
                    if not self.reconnect:
                        return  # the server is gone
                    time.sleep(0.05)
                    continue
                if response.status_code == 202:
                    self.acknowledged.append(order_id)


def _order(order_id: str) -> dict[str, object]:
    return {
        "order_id": order_id,
        "customer": {"id": "c", "email": "c@example.com"},
        "items": [{"sku": "S", "qty": 1, "price": 1}],
        "currency": "EUR",
        "shipping": {"country": "DE", "city": "B", "address": "A"},
    }


def processed(app: App, service: str) -> set[str]:
    """Order ids a service has recorded in its table."""
    keys = {item.key for item in app.table(TABLES[service]).scan(limit=10_000)}
    return {key.split("/")[-1] for key in keys}
