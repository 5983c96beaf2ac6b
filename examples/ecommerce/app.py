"""The serverless e-commerce reference application: product, basket and ordering services.

    GET/POST /product, GET/PUT/DELETE /product/{id}            -> function `product_service`
    GET/POST /basket, GET/DELETE /basket/{user_name}           -> function `basket_service`
    POST /basket/checkout  -> prices the basket, puts `CheckoutBasket` on the `ecommerce` bus
        bus rule `checkout-to-ordering`  -> queue `ordering` (DLQ `ordering-dlq`)
        -> consumer `place_orders`  -> table `orders`, read by GET /order/{user_name}

Each service is one function behind the API (as in the AWS original: one Lambda a
microservice), fed the operation and its parameters by the route's body template. Ordering is
decoupled from the basket through the bus, so a slow or failing ordering service never fails a
checkout; the archive `basket-events` keeps every basket event, so orders can be rebuilt by a
replay. Run it with `fanstack run examples/ecommerce/app.py`.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from fanstack import App, ConditionalCheckFailed, RetryPolicy, Table, TableItem, records

app = App("ecommerce")
log = logging.getLogger("ecommerce")

products = app.table("products")
baskets = app.table("baskets")
orders = app.table("orders")
# Operator switches of the ordering service (see `CRASH_TEST_USER`).
ordering_config = app.table("ordering-config")

BASKET_SOURCE = "com.fanstack.basket"
CHECKOUT_BASKET = "CheckoutBasket"
SCAN_PAGE = 1000

# A basket of this user makes the ordering consumer fail, until the operator sets
# `ordering-config/allow-crash-test`: a deterministic stand-in for a bug in the ordering
# service, to show a checkout ending in `ordering-dlq` and coming back with
# `fanstack dlq redrive ordering` once "fixed".
CRASH_TEST_USER = "crash-test"
ALLOW_CRASH_TEST = "allow-crash-test"

Event = dict[str, Any]
Response = dict[str, Any]


def respond(status: int, body: Any) -> Response:
    """An API Gateway proxy result: the gateway answers with this status and JSON body."""
    return {"statusCode": status, "body": body}


def not_found(what: str) -> Response:
    """A 404 naming what is missing."""
    return respond(404, {"message": f"{what} not found"})


def scan_all(table: Table, prefix: str = "") -> list[TableItem]:
    """Every item of `table` under `prefix`, in key order, page by page."""
    items: list[TableItem] = []
    while True:
        after = items[-1].key if items else ""
        page = table.scan(prefix=prefix, limit=SCAN_PAGE, start_after=after)
        items.extend(page)
        if len(page) < SCAN_PAGE:
            return items


def dispatch(operations: Mapping[str, Callable[[Event], Response]], event: Event) -> Response:
    """Run the operation a route names in its body template (`{"operation": ...}`)."""
    return operations[event["operation"]](event)


# -- product service ---------------------------------------------------------------------


def list_products(event: Event) -> Response:
    """Every product, or those of one `category`."""
    category = event.get("category")
    found = [item.value for item in scan_all(products)]
    return respond(200, [p for p in found if category is None or p["category"] == category])


def create_product(event: Event) -> Response:
    """Store a new product under a new id (the route validated the body)."""
    product = {"id": str(uuid.uuid4()), **event["product"]}
    products.put(product["id"], product)
    return respond(201, product)


def get_product(event: Event) -> Response:
    """One product."""
    product = products.get(event["id"])
    return respond(200, product) if product else not_found(f"product {event['id']}")


def update_product(event: Event) -> Response:
    """Replace a product's fields; 404 if it does not exist."""
    current = products.get_item(event["id"])
    if current is None:
        return not_found(f"product {event['id']}")
    product = {**event["product"], "id": event["id"]}
    try:
        products.put(event["id"], product, if_version=current.version)
    except ConditionalCheckFailed:  # deleted or replaced meanwhile: the caller decides again
        return respond(409, {"message": f"product {event['id']} changed meanwhile; try again"})
    return respond(200, product)


def delete_product(event: Event) -> Response:
    """Delete a product; 404 if there was none."""
    if not products.delete(event["id"]):
        return not_found(f"product {event['id']}")
    return respond(204, "")


PRODUCT_OPERATIONS = {
    "list": list_products,
    "create": create_product,
    "get": get_product,
    "update": update_product,
    "delete": delete_product,
}


@app.function(timeout=5)
def product_service(event: Event, context: Any) -> Response:
    """The product microservice: CRUD on the `products` table."""
    return dispatch(PRODUCT_OPERATIONS, event)


# -- basket service ----------------------------------------------------------------------

bus = app.bus("ecommerce")


def list_baskets(event: Event) -> Response:
    """Every user's basket."""
    return respond(200, [item.value for item in scan_all(baskets)])


def save_basket(event: Event) -> Response:
    """Create or replace a user's basket; 400 if an item names an unknown product."""
    basket = event["basket"]
    unknown = sorted({i["product_id"] for i in basket["items"]} - _existing(basket["items"]))
    if unknown:
        return respond(400, {"message": f"unknown products: {', '.join(unknown)}"})
    baskets.put(basket["user_name"], basket)
    return respond(200, basket)


def get_basket(event: Event) -> Response:
    """One user's basket."""
    basket = baskets.get(event["user_name"])
    return respond(200, basket) if basket else not_found(f"basket of {event['user_name']}")


def delete_basket(event: Event) -> Response:
    """Empty a user's basket."""
    if not baskets.delete(event["user_name"]):
        return not_found(f"basket of {event['user_name']}")
    return respond(204, "")


def checkout_basket(event: Event) -> Response:
    """Price the basket at current prices, put `CheckoutBasket` on the bus, delete the basket."""
    user_name = event["user_name"]
    stored = baskets.get_item(user_name)
    if stored is None:
        return not_found(f"basket of {user_name}")
    priced = [(item["product_id"], _priced(item)) for item in stored.value["items"]]
    gone = sorted({product_id for product_id, line in priced if line is None})
    if gone:  # deleted since they went into the basket
        return respond(409, {"message": f"products no longer sold: {', '.join(gone)}"})
    lines = [line for _, line in priced if line is not None]
    total = round(sum(line["subtotal"] for line in lines), 2)
    detail = {"user_name": user_name, "items": lines, "total": total}
    # The event is durable before the basket goes: a crash in between leaves the basket for
    # the user to check out again, never an order without its event.
    event_id = bus.put_event(BASKET_SOURCE, CHECKOUT_BASKET, detail)
    try:
        baskets.delete(user_name, if_version=stored.version)
    except ConditionalCheckFailed:
        # Changed while we checked out: keep the newer basket for the user's next checkout.
        log.info("basket changed during checkout; kept", extra={"user_name": user_name})
    return respond(202, {"event_id": event_id, "total": total})


def _existing(items: list[dict[str, Any]]) -> set[str]:
    return {i["product_id"] for i in items if products.get(i["product_id"]) is not None}


def _priced(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """A basket line at the product's current name and price, or None if it is gone."""
    product = products.get(item["product_id"])
    if product is None:
        return None
    quantity = item["quantity"]
    return {
        "product_id": item["product_id"],
        "name": product["name"],
        "price": product["price"],
        "quantity": quantity,
        "subtotal": round(product["price"] * quantity, 2),
    }


BASKET_OPERATIONS = {
    "list": list_baskets,
    "save": save_basket,
    "get": get_basket,
    "delete": delete_basket,
    "checkout": checkout_basket,
}


@app.function(timeout=5)
def basket_service(event: Event, context: Any) -> Response:
    """The basket microservice: baskets in the `baskets` table, and checkout."""
    return dispatch(BASKET_OPERATIONS, event)


# -- ordering service --------------------------------------------------------------------

ordering_dlq = app.queue("ordering-dlq")
# Three receives, then the DLQ; the visibility timeout outlasts the consumer's timeout, so a
# batch still running is never handed to a second worker.
ordering = app.queue(
    "ordering", dead_letter=ordering_dlq, max_receive_count=3, visibility_timeout=30
)
# Topic-queue chaining: the queue buffers checkouts, so ordering can be down for a while.
bus.rule(
    "checkout-to-ordering",
    event_pattern={"source": [BASKET_SOURCE], "detail-type": [CHECKOUT_BASKET]},
    targets=[ordering],
)
# Every basket event, kept: replaying a window rebuilds the orders placed in it.
basket_events = bus.archive("basket-events", event_pattern={"source": [BASKET_SOURCE]})


class OrderingFailed(Exception):
    """The ordering service could not place an order (here: the crash-test user's)."""


def place_order(checkout: Mapping[str, Any]) -> bool:
    """Store the order a `CheckoutBasket` event asks for; False if it was already stored.

    The key is `<user_name>/<event id>`, and a replayed or redelivered event keeps its id, so
    placing it again finds its order and changes nothing.
    """
    detail = checkout["detail"]
    user_name = detail["user_name"]
    if user_name == CRASH_TEST_USER and ordering_config.get(ALLOW_CRASH_TEST) is None:
        raise OrderingFailed(f"ordering is switched off for {CRASH_TEST_USER!r}")
    order = {
        "order_id": checkout["id"],
        "user_name": user_name,
        "items": detail["items"],
        "total": detail["total"],
        "ordered_at": checkout["time"],  # the event's time, so a replay writes the same order
    }
    try:
        orders.put(f"{user_name}/{checkout['id']}", order, if_absent=True)
    except ConditionalCheckFailed:
        return False
    return True


@app.consumer(
    ordering, batch_size=10, timeout=10, retry=RetryPolicy(base_delay=1, max_delay=10)
)
def place_orders(event: Event, context: Any) -> dict[str, Any]:
    """Places the order of each checkout in the batch; reports the ones that failed."""
    failures = []
    for record in records(event):
        try:
            place_order(record.json_body)
        except Exception:
            log.exception("could not place order", extra={"message_id": record.message_id})
            failures.append({"itemIdentifier": record.message_id})
    return {"batchItemFailures": failures}


def list_orders(event: Event) -> Response:
    """A user's orders, oldest key first (an empty list if none)."""
    return respond(200, [item.value for item in scan_all(orders, f"{event['user_name']}/")])


@app.function(timeout=5)
def ordering_service(event: Event, context: Any) -> Response:
    """The ordering microservice's API: a user's orders."""
    return dispatch({"list": list_orders}, event)


# -- the HTTP API ------------------------------------------------------------------------

ID = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}
PRODUCT_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "description": {"type": "string", "maxLength": 2000},
    "category": {"type": "string", "pattern": "^[a-z0-9-]{1,64}$"},
    "price": {"type": "number", "minimum": 0, "maximum": 1_000_000},
}
PRODUCT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "category", "price"],
    "properties": PRODUCT_FIELDS,
}
BASKET = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user_name", "items"],
    "properties": {
        "user_name": ID,
        "items": {
            "type": "array",
            "maxItems": 100,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["product_id", "quantity"],
                "properties": {
                    "product_id": ID,
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
            },
        },
    },
}
CHECKOUT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user_name"],
    "properties": {"user_name": ID},
}


def path(name: str) -> dict[str, Any]:
    """A required path parameter with the id pattern."""
    return {"name": name, "in": "path", "required": True, "schema": ID}


CATEGORY = {"name": "category", "in": "query", "schema": PRODUCT_FIELDS["category"]}
ITEM = {"id": "$request.path.id"}
USER = {"user_name": "$request.path.user_name"}

api = app.api
api.get("/product", invoke=product_service, parameters=[CATEGORY],
        body={"operation": "list", "category": "$request.query.category"})
api.post("/product", invoke=product_service, request_schema=PRODUCT,
         body={"operation": "create", "product": "$request.body"},
         example={"name": "Tea", "category": "drinks", "price": 7.5})
api.get("/product/{id}", invoke=product_service, parameters=[path("id")],
        body={"operation": "get", **ITEM})
api.put("/product/{id}", invoke=product_service, parameters=[path("id")], request_schema=PRODUCT,
        body={"operation": "update", "product": "$request.body", **ITEM})
api.delete("/product/{id}", invoke=product_service, parameters=[path("id")],
           body={"operation": "delete", **ITEM})

api.get("/basket", invoke=basket_service, body={"operation": "list"})
api.post("/basket", invoke=basket_service, request_schema=BASKET,
         body={"operation": "save", "basket": "$request.body"})
api.post("/basket/checkout", invoke=basket_service, request_schema=CHECKOUT,
         body={"operation": "checkout", "user_name": "$request.body#/user_name"})
api.get("/basket/{user_name}", invoke=basket_service, parameters=[path("user_name")],
        body={"operation": "get", **USER})
api.delete("/basket/{user_name}", invoke=basket_service, parameters=[path("user_name")],
           body={"operation": "delete", **USER})

api.get("/order/{user_name}", invoke=ordering_service, parameters=[path("user_name")],
        body={"operation": "list", **USER})

# Bound to loopback (the default) the routes are open, so `curl` works as is; anywhere else
# they need an API key (`ECOMMERCE_API_KEY`) on this plan.
api.open_on_loopback = True
api.usage_plan("standard", rate=50, burst=100, quota_per_day=100_000)

if api_key := os.environ.get("ECOMMERCE_API_KEY"):
    api.api_key(api_key, plan="standard")
