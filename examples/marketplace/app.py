"""The marketplace: one POST fans an order out to five services, each on its own queue.

    POST /market/{market}/shops/{shop_id}/orders  ->  topic `orders`  ->  process, notify,
    delivery, reports, compliance (only market = ru)

Every service is a function fed by its own durable queue with a dead-letter queue. Their
effects are rows in tables, which `GET .../orders/{order_id}` reads back.
Run it with `fanstack run examples/marketplace/app.py`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from fanstack import App, RetryPolicy, SQSRecord, idempotent, records
from fanstack.core.errors import ConditionalCheckFailed

app = App("marketplace")
orders = app.topic("orders")

# Each service retries a failing order 4 times (1 s, 2 s, 4 s backoff with full jitter),
# then parks it in its dead-letter queue, e.g. `delivery-dlq`.
RETRY = RetryPolicy(base_delay=1, max_delay=30, max_attempts=4)
SERVICE = {"raw": True, "retry": RETRY, "timeout": 10, "concurrency": 2}

# Countries we can ship to. An order to any other country fails in `prepare_delivery` and
# ends in `delivery-dlq`; add the carrier (`app.table("carriers").put("AQ", {...})`) and
# `fanstack dlq redrive delivery` delivers it.
DEFAULT_CARRIERS = {
    "DE": "DHL", "FR": "Colissimo", "NL": "PostNL", "US": "UPS", "CA": "Canada Post",
    "RU": "Russian Post", "KZ": "Kazpost", "GB": "Royal Mail", "ES": "Correos", "IT": "Poste",
}

log = logging.getLogger("marketplace")
orders_table = app.table("orders")
outbox = app.table("outbox")
shipments = app.table("shipments")
totals = app.table("totals")
compliance_checks = app.table("compliance")
carriers = app.table("carriers")
once = app.table("idempotency")


class NoCarrier(Exception):
    """No carrier ships to the order's country."""


def order_key(record: SQSRecord) -> str:
    """`market/shop/order_id`: how every service keys an order."""
    order = record.json_body
    return f"{record.attribute('market')}/{record.attribute('shop')}/{order['order_id']}"


def order_total(order: dict[str, Any]) -> float:
    """Sum of quantity times price over the order's items."""
    return round(sum(item["qty"] * item["price"] for item in order["items"]), 2)


@app.subscriber(orders, queue="process", **SERVICE)
def process_order(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Stores each order with its computed total."""
    failures = []
    for record in records(event):
        try:
            order = record.json_body
            orders_table.put(
                order_key(record),
                {"status": "accepted", "total": order_total(order), "order": order,
                 "accepted_at": time.time()},
            )
        except Exception:
            log.exception("could not store order")
            failures.append({"itemIdentifier": record.message_id})
    return {"batchItemFailures": failures}


@app.subscriber(orders, queue="notify", **SERVICE)
def notify_user(event: dict[str, Any], context: Any) -> None:
    """Writes the confirmation e-mail to the outbox."""
    for record in records(event):
        order = record.json_body
        outbox.put(
            order_key(record),
            {
                "status": "queued",
                "to": order["customer"]["email"],
                "subject": f"Your order {order['order_id']} is confirmed",
                "body": f"{len(order['items'])} item(s), total {order_total(order)} "
                f"{order['currency']}",
            },
        )


@app.subscriber(orders, queue="delivery", **SERVICE)
def prepare_delivery(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Creates a shipment with a carrier for the order's country; fails where none ships."""
    failures = []
    for record in records(event):
        order = record.json_body
        country = order["shipping"]["country"]
        row = carriers.get(country)
        carrier = row["name"] if row else DEFAULT_CARRIERS.get(country)
        if carrier is None:
            log.error("no carrier ships to %s", country, extra={"order": order["order_id"]})
            failures.append({"itemIdentifier": record.message_id})
            continue
        shipments.put(
            order_key(record),
            {"status": "label-created", "carrier": carrier, "country": country,
             "parcels": sum(item["qty"] for item in order["items"])},
        )
    if failures and len(failures) == len(event["Records"]):
        raise NoCarrier(f"no carrier for {len(failures)} order(s) in this batch")
    return {"batchItemFailures": failures}


@idempotent(once, key="messageId", ttl=86_400)
def count_order(record: dict[str, Any]) -> dict[str, Any]:
    """Adds one order to its shop's totals, exactly once per message."""
    view = SQSRecord.from_dict(record)
    order = view.json_body
    shop_key = f"{view.attribute('market')}/{view.attribute('shop')}"
    amount = order_total(order)
    while True:
        current = totals.get_item(shop_key)
        value = dict(current.value) if current else {"orders": 0, "revenue": 0.0}
        value["orders"] += 1
        value["revenue"] = round(value["revenue"] + amount, 2)
        try:
            totals.put(shop_key, value, if_absent=current is None,
                       if_version=current.version if current else None)
            break
        except ConditionalCheckFailed:
            continue  # another worker counted an order of this shop first
    counted = {"status": "counted", "amount": amount, "shop_orders": value["orders"]}
    totals.put(f"order/{order_key(view)}", counted)
    return counted


@app.subscriber(orders, queue="reports", **SERVICE)
def generate_reports(event: dict[str, Any], context: Any) -> None:
    """Keeps per-market, per-shop order counts and revenue."""
    for record in event["Records"]:
        count_order(record)


@app.subscriber(orders, queue="compliance", filter_policy={"market": ["ru"]}, **SERVICE)
def check_compliance(event: dict[str, Any], context: Any) -> None:
    """Records the export-control check every order in the ru market needs."""
    for record in records(event):
        order = record.json_body
        flagged = [item["sku"] for item in order["items"] if item["sku"].startswith("DUAL-")]
        compliance_checks.put(
            order_key(record),
            {"status": "review" if flagged else "cleared", "flagged_skus": flagged},
        )


@app.function(timeout=5)
def order_status(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The state of one order in each of the five services (404 if none has seen it)."""
    key = f"{event['market']}/{event['shop_id']}/{event['order_id']}"
    state: dict[str, Any] = {
        "order_id": event["order_id"],
        "process": _status(orders_table.get(key), drop=("order",)),
        "notify": _status(outbox.get(key)),
        "delivery": _status(shipments.get(key)),
        "reports": _status(totals.get(f"order/{key}")),
        "compliance": _status(compliance_checks.get(key)) if event["market"] == "ru" else None,
    }
    seen = [name for name in ("process", "notify", "delivery", "reports", "compliance")
            if state[name] is not None and state[name]["status"] != "pending"]
    if not seen:
        return {"statusCode": 404, "body": {"message": f"order {event['order_id']} not found"}}
    return state


def _status(row: dict[str, Any] | None, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    if row is None:
        return {"status": "pending"}
    return {k: v for k, v in row.items() if k not in drop}


app.api.openapi(Path(__file__).with_name("openapi.yaml"))
# Bound to loopback (the default), the routes are open so the README's curl lines work as
# they are; anywhere else they need an API key on this plan.
app.api.open_on_loopback = True
app.api.usage_plan("standard", rate=50, burst=100, quota_per_day=100_000)

if api_key := os.environ.get("MARKETPLACE_API_KEY"):
    app.api.api_key(api_key, plan="standard")
