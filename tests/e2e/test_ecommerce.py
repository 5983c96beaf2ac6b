"""The e-commerce example end to end, over real HTTP against `fanstack run`.

Product and basket CRUD, a checkout that becomes an order through the `ecommerce` bus, an order
that fails into `ordering-dlq` and is redriven once fixed, and orders rebuilt by replaying the
`basket-events` archive. One server serves them all: each test keeps to its own users and
categories, and none reads orders it did not place (the replay test clears the whole table).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from fanstack import App, Table

from .conftest import ECOMMERCE, Server, start_server, wait_for

BUS_INGRESS = "fanstack-bus-ecommerce"  # where put events wait to be routed


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `fanstack run` of the example for the tests that do not interfere."""
    server = start_server(ECOMMERCE, tmp_path_factory.mktemp("ecommerce") / "state")
    yield server
    server.stop()


@pytest.fixture
def client(shop: Server) -> Iterator[httpx.Client]:
    """An HTTP client of the shared server."""
    with shop.client() as http:
        yield http


# -- helpers -----------------------------------------------------------------------------


def add_product(client: httpx.Client, name: str, category: str, price: float) -> dict[str, Any]:
    """Create a product through the API; the stored product (with its generated id)."""
    response = client.post("/product", json={"name": name, "category": category, "price": price})
    assert response.status_code == 201, response.text
    product: dict[str, Any] = response.json()
    return product


def fill_basket(client: httpx.Client, user_name: str, *lines: tuple[str, int]) -> None:
    """Save a user's basket of (product id, quantity) lines."""
    items = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in lines]
    response = client.post("/basket", json={"user_name": user_name, "items": items})
    assert response.status_code == 200, response.text


def check_out(client: httpx.Client, user_name: str) -> dict[str, Any]:
    """Check a basket out; the answer (`event_id`, `total`)."""
    response = client.post("/basket/checkout", json={"user_name": user_name})
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def orders_of(client: httpx.Client, user_name: str) -> list[dict[str, Any]]:
    """A user's orders as the ordering service lists them."""
    response = client.get(f"/order/{user_name}")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def wait_for_orders(client: httpx.Client, user_name: str, count: int) -> list[dict[str, Any]]:
    """A user's orders, once there are `count` (>= 1) of them (placed asynchronously)."""

    def placed() -> list[dict[str, Any]] | None:
        orders = orders_of(client, user_name)
        return orders if len(orders) == count else None

    found = wait_for(placed)
    assert isinstance(found, list)
    return found


def depths(server: Server) -> dict[str, int]:
    """Messages in each queue, visible, in flight or delayed."""
    with server.client() as http:
        stats = http.get("/_fanstack/queues").json()["queues"]
    return {q["name"]: q["visible"] + q["in_flight"] + q["delayed"] for q in stats}


def fanstack(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `fanstack` command line against the server's data dir."""
    command = [sys.executable, "-m", "fanstack.cli", "--data-dir", str(server.data_dir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@contextmanager
def store(server: Server) -> Iterator[App]:
    """The server's state, opened in the test process (as an operator's script would)."""
    app = App("ecommerce", data_dir=server.data_dir)
    try:
        yield app
    finally:
        app.close()


# -- product service ---------------------------------------------------------------------


def test_products_are_created_listed_by_category_read_replaced_and_deleted(
    client: httpx.Client,
) -> None:
    tea = add_product(client, "Green tea", "crud-drinks", 7.5)
    mug = add_product(client, "Blue mug", "crud-kitchen", 12)
    assert tea["id"] != mug["id"]
    assert client.get(f"/product/{tea['id']}").json() == tea
    listed = client.get("/product").json()
    assert {tea["id"], mug["id"]} <= {p["id"] for p in listed}
    assert client.get("/product", params={"category": "crud-drinks"}).json() == [tea]
    replacement = {"name": "Green tea, loose", "category": "crud-drinks", "price": 8}
    updated = client.put(f"/product/{tea['id']}", json=replacement)
    assert updated.status_code == 200, updated.text
    assert client.get(f"/product/{tea['id']}").json() == {**replacement, "id": tea["id"]}
    assert client.delete(f"/product/{mug['id']}").status_code == 204
    assert client.get(f"/product/{mug['id']}").status_code == 404
    assert client.get("/product", params={"category": "crud-kitchen"}).json() == []


def test_invalid_product_bodies_get_400_naming_each_field_and_store_nothing(
    client: httpx.Client,
) -> None:
    bad = {"name": "", "category": "Not A Slug", "price": -1, "colour": "red"}
    response = client.post("/product", json=bad)
    assert response.status_code == 400
    fields = {(e["in"], e["name"]) for e in response.json()["errors"]}
    assert {("body", "/name"), ("body", "/category"), ("body", "/price"), ("body", "")} <= fields
    missing = client.post("/product", json={"name": "Tea"})
    assert missing.status_code == 400
    assert "'category' is a required property" in missing.text
    price_as_text = {"name": "Tea", "category": "invalid-drinks", "price": "1"}
    assert client.post("/product", json=price_as_text).status_code == 400
    assert client.get("/product", params={"category": "Not A Slug"}).status_code == 400
    tea = add_product(client, "Tea", "invalid-drinks", 7.5)
    replaced = client.put(f"/product/{tea['id']}", json={"price": 1})
    assert replaced.status_code == 400
    assert client.get("/product", params={"category": "invalid-drinks"}).json() == [tea]


def test_unknown_products_are_404_for_read_replace_and_delete(client: httpx.Client) -> None:
    product = {"name": "Ghost", "category": "none", "price": 1}
    for response in (
        client.get("/product/no-such-product"),
        client.put("/product/no-such-product", json=product),
        client.delete("/product/no-such-product"),
    ):
        assert response.status_code == 404, response.text
        assert "no-such-product" in response.json()["message"]


# -- basket service ----------------------------------------------------------------------


def test_baskets_are_saved_replaced_listed_and_deleted(client: httpx.Client) -> None:
    tea = add_product(client, "Tea", "basket-drinks", 7.5)
    fill_basket(client, "basket-ann", (tea["id"], 1))
    fill_basket(client, "basket-ann", (tea["id"], 3))  # replaces, does not add
    fill_basket(client, "basket-bob", (tea["id"], 2))
    ann = {"user_name": "basket-ann", "items": [{"product_id": tea["id"], "quantity": 3}]}
    assert client.get("/basket/basket-ann").json() == ann
    users = {basket["user_name"] for basket in client.get("/basket").json()}
    assert {"basket-ann", "basket-bob"} <= users
    assert client.delete("/basket/basket-ann").status_code == 204
    assert client.get("/basket/basket-ann").status_code == 404
    assert client.delete("/basket/basket-ann").status_code == 404


def test_baskets_with_unknown_products_or_bad_lines_are_400(client: httpx.Client) -> None:
    unknown = {"user_name": "basket-cy", "items": [{"product_id": "nope", "quantity": 1}]}
    response = client.post("/basket", json=unknown)
    assert response.status_code == 400
    assert "nope" in response.json()["message"]
    bad = {"user_name": "a/b", "items": [{"product_id": "p", "quantity": 0}]}
    response = client.post("/basket", json=bad)
    assert response.status_code == 400
    fields = {e["name"] for e in response.json()["errors"]}
    assert {"/user_name", "/items/0/quantity"} <= fields
    assert client.get("/basket/basket-cy").status_code == 404


# -- checkout and ordering ---------------------------------------------------------------


def test_checkout_orders_at_current_prices_and_empties_the_basket(client: httpx.Client) -> None:
    tea = add_product(client, "Tea", "checkout-drinks", 7.5)
    mug = add_product(client, "Mug", "checkout-kitchen", 12)
    fill_basket(client, "checkout-ada", (tea["id"], 2), (mug["id"], 1))
    # The price changes after the mug went into the basket: checkout charges the new one.
    repriced = {"name": "Mug", "category": "checkout-kitchen", "price": 10}
    assert client.put(f"/product/{mug['id']}", json=repriced).status_code == 200
    answer = check_out(client, "checkout-ada")
    assert answer["total"] == 25.0
    assert client.get("/basket/checkout-ada").status_code == 404
    [order] = wait_for_orders(client, "checkout-ada", 1)
    assert order["order_id"] == answer["event_id"]
    assert order["total"] == 25.0
    lines = {line["name"]: line for line in order["items"]}
    assert lines["Mug"] == {"product_id": mug["id"], "name": "Mug", "price": 10,
                            "quantity": 1, "subtotal": 10}
    assert lines["Tea"]["subtotal"] == 15.0


def test_checkout_of_no_basket_is_404_and_of_a_deleted_product_is_409(
    client: httpx.Client,
) -> None:
    assert client.post("/basket/checkout", json={"user_name": "checkout-nobody"}).status_code == 404
    tea = add_product(client, "Tea", "checkout-gone", 7.5)
    fill_basket(client, "checkout-eve", (tea["id"], 1))
    client.delete(f"/product/{tea['id']}")
    response = client.post("/basket/checkout", json={"user_name": "checkout-eve"})
    assert response.status_code == 409
    assert tea["id"] in response.json()["message"]
    assert client.get("/basket/checkout-eve").status_code == 200  # kept, to fix and retry
    assert orders_of(client, "checkout-eve") == []


def test_a_failing_order_ends_in_the_dlq_and_redrive_places_it_once_fixed(
    shop: Server, client: httpx.Client
) -> None:
    tea = add_product(client, "Tea", "dlq-drinks", 7.5)
    fill_basket(client, "crash-test", (tea["id"], 4))
    answer = check_out(client, "crash-test")
    # Three receives fail (with backoff), then the checkout is parked in ordering-dlq.
    wait_for(lambda: depths(shop)["ordering-dlq"] == 1, timeout=60)
    assert orders_of(client, "crash-test") == []
    assert "OrderingFailed" in shop.logs()
    with store(shop) as app:
        (dead,) = app.queue_for("ordering-dlq").receive(visibility_timeout=0)
        assert (dead.source_queue, dead.failed_receives) == ("ordering", 3)
        assert dead.failure is not None and "batchItemFailures" in dead.failure
        checkout = json.loads(dead.body)  # the EventBridge event, as the rule delivered it
        assert checkout["id"] == answer["event_id"]
        assert checkout["detail-type"] == "CheckoutBasket"
        assert checkout["detail"]["user_name"] == "crash-test"
        # The fix: the operator switches ordering on for this user.
        app.table("ordering-config").put("allow-crash-test", {"reason": "fixed"})
    redrive = fanstack(shop, "dlq", "redrive", "ordering")
    assert redrive.returncode == 0, redrive.stderr
    assert "moved 1 message(s)" in redrive.stdout
    [order] = wait_for_orders(client, "crash-test", 1)
    assert order["order_id"] == answer["event_id"] and order["total"] == 30.0
    assert depths(shop)["ordering-dlq"] == 0


# -- replaying the archive ---------------------------------------------------------------


def test_replaying_the_archive_rebuilds_cleared_orders_with_the_same_keys(
    shop: Server, client: httpx.Client
) -> None:
    # Event times are whole seconds: begin in a second of our own, so the replay window holds
    # only this test's checkouts (the tests run one after another).
    began = time.time()
    wait_for(lambda: int(time.time()) > int(began), timeout=5)
    before = checkout_orders(client, {"replay-ann": 2, "replay-bob": 1})
    start, end = window_of(before)
    with store(shop) as app:  # the orders table is lost
        clear(app.table("orders"))
    assert all(orders_of(client, user) == [] for user in before)
    replay(shop, "rebuild-orders", start, end, events=3)
    for user, orders in before.items():
        assert wait_for_orders(client, user, len(orders)) == orders
    # Replaying again over existing orders adds none and changes none.
    replay(shop, "replay-again", start, end, events=3)
    wait_for(lambda: quiet(depths(shop)))
    assert {user: orders_of(client, user) for user in before} == before


def checkout_orders(client: httpx.Client, checkouts: dict[str, int]) -> dict[str, list[Any]]:
    """Check out `n` baskets for each user; every user's orders once all are placed."""
    tea = add_product(client, "Tea", "replay-drinks", 7.5)
    for user_name, count in checkouts.items():
        for quantity in range(1, count + 1):
            fill_basket(client, user_name, (tea["id"], quantity))
            check_out(client, user_name)
    return {user: wait_for_orders(client, user, n) for user, n in checkouts.items()}


def window_of(orders: dict[str, list[Any]]) -> tuple[datetime, datetime]:
    """The replay window holding every order's event: [first second, last second + 1)."""
    times = [_parse(order["ordered_at"]) for placed in orders.values() for order in placed]
    start, end = min(times), max(times) + 1
    # A replay may not end in the future: wait for the clock to pass the window's end.
    wait_for(lambda: time.time() >= end, timeout=5)
    return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)


def clear(table: Table) -> None:
    """Delete every item of a table."""
    for item in table.scan():
        table.delete(item.key)


def replay(server: Server, name: str, start: datetime, end: datetime, *, events: int) -> None:
    """Replay `basket-events` over the window with the CLI (it waits until the replay ends)."""
    result = fanstack(
        server, "replay", "basket-events", "--name", name,
        "--start", start.isoformat(), "--end", end.isoformat(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"replay {name}: COMPLETED, {events} event(s) re-sent" in result.stdout


def quiet(depth: dict[str, int]) -> bool:
    """Whether no event waits to be routed and no checkout waits to be ordered."""
    return depth[BUS_INGRESS] == depth["ordering"] == 0


def _parse(moment: str) -> float:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()
