"""Order processing as a saga, and a sales report split across workers with a Map.

    POST /orders        -> workflow `order-saga` (202 + execution ARN)
        ValidateOrder  (validate_order: price the order from the catalogue)
          InvalidOrder -> RejectOrder -> Fail `OrderRejected`
        ReserveAndCharge  (Parallel)
          [0] ReserveInventory (reserve_inventory -> table `inventory`;
                                InventoryBusy the first time, retried with backoff)
          [1] ChargePayment    (charge_payment -> table `payments`; PaymentDeclined for a
                                card ending in 0000)
          any error -> ReleaseInventory -> RefundPayment -> CloseFailedOrder
                       -> Fail `OrderFailed`
        SendConfirmation (send_confirmation -> table `emails`)
        CompleteOrder    (close_order -> table `orders`)
    GET /orders/{id}    -> function `order_status`: the order as the tables tell it

    POST /reports       -> workflow `sales-report`
        GenerateSales (generate_sales: 100 batches of 100 sales -> table `sales`)
        SumBatches    (Map over the batch numbers, 10 at a time: sum_batch)
        Aggregate     (aggregate_sales: per-category totals -> table `reports`)
    GET /reports/{dataset} -> function `sales_report`

Every step is idempotent (the engine may run a task twice after a crash), and each
compensation leaves a tombstone, so a reservation or a charge that lands after its
compensation ran (a Parallel's other branch is not cancelled at once) is never made.
Run it with `fanstack run examples/orders_saga/app.py`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from fanstack import App, ConditionalCheckFailed, Table, TableItem

app = App("orders-saga")

orders = app.table("orders")  # order id -> status, reason, execution ARN, amount
inventory = app.table("inventory")  # order id -> reservation (or its release)
inventory_attempts = app.table("inventory-attempts")  # order id -> reservation attempts
payments = app.table("payments")  # order id -> charge (or its refund, or a void)
emails = app.table("emails")  # order id -> the confirmation "sent"
sales = app.table("sales")  # <dataset>/<batch> -> that batch's sales
reports = app.table("reports")  # dataset -> its per-category totals

Event = dict[str, Any]
Response = dict[str, Any]

# -- the catalogue and the business rules --------------------------------------------------

CATALOGUE: dict[str, dict[str, Any]] = {
    "TEA-1": {"name": "Green tea", "price_cents": 750, "in_stock": True},
    "MUG-1": {"name": "Blue mug", "price_cents": 1200, "in_stock": True},
    "KETTLE-1": {"name": "Copper kettle", "price_cents": 4900, "in_stock": False},
}
MAX_PER_LINE = 10
DECLINED_SUFFIX = "0000"  # cards ending so are declined: a stand-in for the card issuer
# Each saga step takes milliseconds, so a few warm workers a function serve many orders at
# once; more would mostly add cold starts.
STEP_CONCURRENCY = 4


class InvalidOrder(Exception):
    """The order breaks a business rule (unknown product, too many of one, placed twice)."""


class InventoryBusy(Exception):
    """The inventory could not be locked just now: transient, retried by the workflow."""


class OutOfStock(Exception):
    """A product of the order is not in stock."""


class PaymentDeclined(Exception):
    """The card issuer declined the charge."""


def respond(status: int, body: Any) -> Response:
    """An API Gateway proxy result: the gateway answers with this status and JSON body."""
    return {"statusCode": status, "body": body}


def update(table: Table, key: str, change: Callable[[TableItem | None], Event | None]) -> Event:
    """Write `change(current)` at `key` unless it is None, retrying on a concurrent write.

    The item stored in the end is returned: the new one, or the current one left as it was.
    """
    while True:
        current = table.get_item(key)
        value = change(current)
        if value is None:
            assert current is not None, "change() may keep only an existing item"
            return dict(current.value)
        try:
            if current is None:
                table.put(key, value, if_absent=True)
            else:
                table.put(key, value, if_version=current.version)
        except ConditionalCheckFailed:
            continue
        return value


# -- the saga's steps ---------------------------------------------------------------------


@app.function(timeout=5, concurrency=STEP_CONCURRENCY)
def validate_order(event: Event, context: Any) -> Event:
    """Check and price an order; record it as accepted by this execution (InvalidOrder if not).

    The payload is `{"order": <the request body>, "execution": <execution ARN>}`.
    """
    order, execution = event["order"], event["execution"]
    lines = [_priced(item) for item in order["items"]]
    amount = sum(line["subtotal_cents"] for line in lines)
    record = {
        "order_id": order["order_id"],
        "status": "accepted",
        "reason": None,
        "execution_arn": execution,
        "amount_cents": amount,
    }
    stored = update(orders, order["order_id"], lambda current: _claim(current, record))
    if stored["execution_arn"] != execution:
        raise InvalidOrder(f"order {order['order_id']} was already placed")
    return {**order, "lines": lines, "amount_cents": amount}


def _claim(current: TableItem | None, record: Event) -> Event | None:
    """The order's record for this execution, unless another one placed it (a rejected
    order's id is free again, so a corrected order can be placed under it)."""
    if current is None or current.value["status"] == "rejected":
        return record
    return None


def _priced(item: Mapping[str, Any]) -> Event:
    """One order line at the catalogue's price (InvalidOrder for an unknown or large line)."""
    product = CATALOGUE.get(item["sku"])
    if product is None:
        raise InvalidOrder(f"unknown product {item['sku']}")
    if item["qty"] > MAX_PER_LINE:
        raise InvalidOrder(f"at most {MAX_PER_LINE} of {item['sku']} per order")
    return {
        "sku": item["sku"],
        "name": product["name"],
        "qty": item["qty"],
        "price_cents": product["price_cents"],
        "subtotal_cents": product["price_cents"] * item["qty"],
    }


@app.function(timeout=5, concurrency=STEP_CONCURRENCY)
def reserve_inventory(event: Event, context: Any) -> Event:
    """Reserve an order's lines (InventoryBusy on the first attempt for each order).

    A reservation is made once; after a release it is not made again.
    """
    order_id = event["order_id"]
    attempts = update(
        inventory_attempts,
        order_id,
        lambda current: {"attempts": (current.value["attempts"] if current else 0) + 1},
    )
    if attempts["attempts"] == 1:  # a lock held elsewhere, as a real store would report it
        raise InventoryBusy(f"inventory for order {order_id} is locked; try again")
    missing = [line["sku"] for line in event["lines"] if not CATALOGUE[line["sku"]]["in_stock"]]
    if missing:
        raise OutOfStock(f"not in stock: {', '.join(missing)}")
    reservation = {
        "status": "reserved",
        "reservation_id": str(uuid.uuid4()),
        "lines": [{"sku": line["sku"], "qty": line["qty"]} for line in event["lines"]],
    }
    return update(inventory, order_id, lambda current: None if current else reservation)


@app.function(timeout=5, concurrency=STEP_CONCURRENCY)
def charge_payment(event: Event, context: Any) -> Event:
    """Charge an order's amount (PaymentDeclined for a declined card).

    A charge is made once; after a refund or a void it is not made again.
    """
    card = event["card_number"]
    if card.endswith(DECLINED_SUFFIX):
        raise PaymentDeclined(f"card ending {card[-4:]} was declined")
    charge = {
        "status": "charged",
        "charge_id": str(uuid.uuid4()),
        "amount_cents": event["amount_cents"],
        "refunded_cents": 0,
        "card_last4": card[-4:],
    }
    return update(payments, event["order_id"], lambda current: None if current else charge)


@app.function(timeout=5, concurrency=STEP_CONCURRENCY)
def send_confirmation(event: Event, context: Any) -> Event:
    """Record the order's confirmation email in `emails`, once: the demo's "sending"."""
    email = {
        "email_id": str(uuid.uuid4()),
        "to": event["email"],
        "subject": f"Your order {event['order_id']} is confirmed",
        "body": _receipt(event["lines"], event["amount_cents"]),
        "charge_id": event["charge_id"],
    }
    return update(emails, event["order_id"], lambda current: None if current else email)


def _receipt(lines: list[Mapping[str, Any]], amount_cents: int) -> str:
    rows = [f"{line['qty']} x {line['name']}: {line['subtotal_cents'] / 100:.2f}" for line in lines]
    return "\n".join([*rows, f"Total: {amount_cents / 100:.2f}"])


@app.function(timeout=5, concurrency=STEP_CONCURRENCY)
def release_inventory(event: Event, context: Any) -> Event:
    """Compensation: release an order's reservation, or forbid one if none was made yet."""

    def release(current: TableItem | None) -> Event | None:
        if current is None:
            return {"status": "released", "reservation_id": None, "lines": []}
        if current.value["status"] == "released":
            return None
        return {**current.value, "status": "released"}

    return update(inventory, event["order_id"], release)


@app.function(timeout=5, concurrency=STEP_CONCURRENCY)
def refund_payment(event: Event, context: Any) -> Event:
    """Compensation: refund an order's charge in full, or void it if none was made yet."""

    def refund(current: TableItem | None) -> Event | None:
        if current is None:
            return {"status": "voided", "charge_id": None, "amount_cents": 0, "refunded_cents": 0}
        if current.value["status"] != "charged":
            return None
        charged = current.value["amount_cents"]
        return {**current.value, "status": "refunded", "refunded_cents": charged}

    return update(payments, event["order_id"], refund)


@app.function(timeout=5, concurrency=STEP_CONCURRENCY)
def close_order(event: Event, context: Any) -> Event:
    """Record how an order ended (`completed`, `rejected` or `failed`, with the reason).

    An order placed twice keeps the record of its first execution: a later one leaves it.
    """
    failure = event.get("failure")
    reason = _reason(failure) if failure else None
    order_id, execution = event["order_id"], event["execution"]

    def close(current: TableItem | None) -> Event | None:
        if current is not None and current.value["execution_arn"] != execution:
            return None
        base = current.value if current is not None else {"amount_cents": None}
        return {
            **base,
            "order_id": order_id,
            "status": event["status"],
            "reason": reason,
            "execution_arn": execution,
        }

    stored = update(orders, order_id, close)
    return {**stored, "status": event["status"], "reason": reason}


def _reason(failure: Mapping[str, Any]) -> str:
    """`<Error>: <message>` of a caught error (Lambda's error object, or a States cause)."""
    error, cause = failure.get("Error", "Error"), failure.get("Cause") or ""
    try:
        message = json.loads(cause).get("errorMessage", cause)
    except (ValueError, AttributeError):
        message = cause
    return f"{error}: {message}"


@app.function(timeout=5)
def order_status(event: Event, context: Any) -> Response:
    """An order as the tables tell it: its status and its reservation, payment and email."""
    order_id = event["order_id"]
    order = orders.get(order_id)
    if order is None:
        return respond(404, {"message": f"order {order_id} not found"})
    return respond(
        200,
        {
            **order,
            "reservation": inventory.get(order_id),
            "payment": payments.get(order_id),
            "email": emails.get(order_id),
        },
    )


def _close(status: str, failure: bool) -> Event:
    """The Parameters of a `close_order` task."""
    parameters: Event = {
        "order_id.$": "$.order_id",
        "execution.$": "$$.Execution.Id",
        "status": status,
    }
    if failure:
        parameters["failure.$"] = "$.failure"
    return parameters


def _compensation(function: str, result_path: str, next_state: str) -> Event:
    """A compensating task: retried until it succeeds (within reason), never caught."""
    return {
        "Type": "Task",
        "Resource": function,
        "Parameters": {"order_id.$": "$.order_id"},
        "ResultPath": result_path,
        "Retry": [
            {
                "ErrorEquals": ["States.ALL"],
                "IntervalSeconds": 1,
                "MaxAttempts": 5,
                "BackoffRate": 2.0,
            }
        ],
        "Next": next_state,
    }


ORDER_SAGA: Event = {
    "Comment": "Validate, reserve and charge in parallel, confirm; compensate on failure.",
    "StartAt": "ValidateOrder",
    "States": {
        "ValidateOrder": {
            "Type": "Task",
            "Resource": "validate_order",
            "Parameters": {"order.$": "$", "execution.$": "$$.Execution.Id"},
            "Catch": [
                {"ErrorEquals": ["InvalidOrder"], "ResultPath": "$.failure", "Next": "RejectOrder"}
            ],
            "Next": "ReserveAndCharge",
        },
        "RejectOrder": {
            "Type": "Task",
            "Resource": "close_order",
            "Parameters": _close("rejected", failure=True),
            "ResultPath": "$.closed",
            "Next": "OrderRejected",
        },
        "OrderRejected": {"Type": "Fail", "Error": "OrderRejected", "CausePath": "$.closed.reason"},
        "ReserveAndCharge": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "ReserveInventory",
                    "States": {
                        "ReserveInventory": {
                            "Type": "Task",
                            "Resource": "reserve_inventory",
                            "Parameters": {"order_id.$": "$.order_id", "lines.$": "$.lines"},
                            "Retry": [
                                {
                                    "ErrorEquals": ["InventoryBusy"],
                                    "IntervalSeconds": 1,
                                    "MaxAttempts": 3,
                                    "BackoffRate": 2.0,
                                }
                            ],
                            "End": True,
                        }
                    },
                },
                {
                    "StartAt": "ChargePayment",
                    "States": {
                        "ChargePayment": {
                            "Type": "Task",
                            "Resource": "charge_payment",
                            "Parameters": {
                                "order_id.$": "$.order_id",
                                "amount_cents.$": "$.amount_cents",
                                "card_number.$": "$.payment.card_number",
                            },
                            "End": True,
                        }
                    },
                },
            ],
            "ResultSelector": {"reservation.$": "$[0]", "charge.$": "$[1]"},
            "ResultPath": "$.booking",
            "Catch": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "ResultPath": "$.failure",
                    "Next": "ReleaseInventory",
                }
            ],
            "Next": "SendConfirmation",
        },
        "SendConfirmation": {
            "Type": "Task",
            "Resource": "send_confirmation",
            "Parameters": {
                "order_id.$": "$.order_id",
                "email.$": "$.customer.email",
                "lines.$": "$.lines",
                "amount_cents.$": "$.amount_cents",
                "charge_id.$": "$.booking.charge.charge_id",
            },
            "ResultPath": "$.confirmation",
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 3}],
            "Next": "CompleteOrder",
        },
        "CompleteOrder": {
            "Type": "Task",
            "Resource": "close_order",
            "Parameters": _close("completed", failure=False),
            "End": True,
        },
        "ReleaseInventory": _compensation(
            "release_inventory", "$.compensation.inventory", "RefundPayment"
        ),
        "RefundPayment": _compensation(
            "refund_payment", "$.compensation.payment", "CloseFailedOrder"
        ),
        "CloseFailedOrder": {
            "Type": "Task",
            "Resource": "close_order",
            "Parameters": _close("failed", failure=True),
            "ResultPath": "$.closed",
            "Next": "OrderFailed",
        },
        "OrderFailed": {"Type": "Fail", "Error": "OrderFailed", "CausePath": "$.closed.reason"},
    },
}

order_saga = app.workflow("order-saga", ORDER_SAGA)


# -- the sales report: a Map over batches ------------------------------------------------

CATEGORIES = ("books", "games", "garden", "kitchen", "music")
DEFAULT_BATCHES = 100
DEFAULT_BATCH_SIZE = 100


def sale(index: int) -> Event:
    """Sale number `index` of every data set: the same category and amount on every run."""
    return {
        "id": index,
        "category": CATEGORIES[(index % 7 + index % 3) % len(CATEGORIES)],
        "amount_cents": (index * 7919) % 5000 + 1,
    }


def batch_key(dataset: str, batch: int) -> str:
    """Where batch `batch` of a data set is stored in `sales`."""
    return f"{dataset}/{batch:05d}"


@app.function(timeout=30)
def generate_sales(event: Event, context: Any) -> Event:
    """Store a data set of `batches` x `batch_size` sales in `sales`; the Map's plan.

    The sales are generated deterministically, so storing them again writes the same.
    """
    dataset = event["dataset"]
    batches = int(event.get("batches") or DEFAULT_BATCHES)
    size = int(event.get("batch_size") or DEFAULT_BATCH_SIZE)
    for batch in range(batches):
        records = [sale(i) for i in range(batch * size, (batch + 1) * size)]
        sales.put(batch_key(dataset, batch), {"sales": records})
    return {"dataset": dataset, "records": batches * size, "batches": list(range(batches))}


@app.function(timeout=10, concurrency=10)
def sum_batch(event: Event, context: Any) -> Event:
    """Count and sum one batch's sales per category."""
    stored = sales.get(batch_key(event["dataset"], event["batch"]))
    if stored is None:
        raise LookupError(f"no batch {event['batch']} in data set {event['dataset']}")
    by_category: dict[str, dict[str, int]] = {}
    for record in stored["sales"]:
        totals = by_category.setdefault(record["category"], {"count": 0, "amount_cents": 0})
        totals["count"] += 1
        totals["amount_cents"] += record["amount_cents"]
    return {"batch": event["batch"], "records": len(stored["sales"]), "by_category": by_category}


@app.function(timeout=10)
def aggregate_sales(event: Event, context: Any) -> Event:
    """Add up the batches' sums into the data set's report (stored in `reports`)."""
    by_category: dict[str, dict[str, int]] = {}
    for partial in event["partials"]:
        for category, sums in partial["by_category"].items():
            totals = by_category.setdefault(category, {"count": 0, "amount_cents": 0})
            totals["count"] += sums["count"]
            totals["amount_cents"] += sums["amount_cents"]
    report = {
        "dataset": event["dataset"],
        "execution_arn": event["execution"],
        "batches": len(event["partials"]),
        "records": sum(p["records"] for p in event["partials"]),
        "amount_cents": sum(t["amount_cents"] for t in by_category.values()),
        "by_category": dict(sorted(by_category.items())),
    }
    reports.put(event["dataset"], report)
    return report


@app.function(timeout=5)
def sales_report(event: Event, context: Any) -> Response:
    """A data set's report, once its workflow has aggregated it."""
    report = reports.get(event["dataset"])
    if report is None:
        return respond(404, {"message": f"no report for data set {event['dataset']} yet"})
    return respond(200, report)


SALES_REPORT: Event = {
    "Comment": "Generate a data set, sum it batch by batch in a Map, aggregate the sums.",
    "StartAt": "GenerateSales",
    "States": {
        "GenerateSales": {"Type": "Task", "Resource": "generate_sales", "Next": "SumBatches"},
        "SumBatches": {
            "Type": "Map",
            "ItemsPath": "$.batches",
            "MaxConcurrency": 10,
            "ItemSelector": {"dataset.$": "$.dataset", "batch.$": "$$.Map.Item.Value"},
            "ItemProcessor": {
                "StartAt": "SumBatch",
                "States": {"SumBatch": {"Type": "Task", "Resource": "sum_batch", "End": True}},
            },
            "ResultPath": "$.partials",
            "Next": "Aggregate",
        },
        "Aggregate": {
            "Type": "Task",
            "Resource": "aggregate_sales",
            "Parameters": {
                "dataset.$": "$.dataset",
                "partials.$": "$.partials",
                "execution.$": "$$.Execution.Id",
            },
            "End": True,
        },
    },
}

sales_report_workflow = app.workflow("sales-report", SALES_REPORT)


# -- the HTTP API ------------------------------------------------------------------------

ID = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}
ORDER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["order_id", "customer", "items", "payment"],
    "properties": {
        "order_id": ID,
        "customer": {
            "type": "object",
            "additionalProperties": False,
            "required": ["email"],
            "properties": {
                "name": {"type": "string", "maxLength": 200},
                "email": {"type": "string", "pattern": "^[^@\\s]+@[^@\\s]+$", "maxLength": 254},
            },
        },
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": 20,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["sku", "qty"],
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z0-9-]{1,32}$"},
                    "qty": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
            },
        },
        "payment": {
            "type": "object",
            "additionalProperties": False,
            "required": ["card_number"],
            "properties": {"card_number": {"type": "string", "pattern": "^[0-9]{12,19}$"}},
        },
    },
}
REPORT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["dataset"],
    "properties": {
        "dataset": ID,
        "batches": {"type": "integer", "minimum": 1, "maximum": 1000},
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
}


def path(name: str) -> dict[str, Any]:
    """A required path parameter with the id pattern."""
    return {"name": name, "in": "path", "required": True, "schema": ID}


api = app.api
api.post(
    "/orders",
    start_workflow=order_saga,
    request_schema=ORDER,
    example={
        "order_id": "o-1",
        "customer": {"email": "ada@example.com"},
        "items": [{"sku": "TEA-1", "qty": 2}],
        "payment": {"card_number": "4242424242424242"},
    },
)
api.get(
    "/orders/{id}",
    invoke=order_status,
    parameters=[path("id")],
    body={"order_id": "$request.path.id"},
)
api.post(
    "/reports",
    start_workflow=sales_report_workflow,
    request_schema=REPORT,
    example={"dataset": "demo", "batches": 100, "batch_size": 100},
)
api.get(
    "/reports/{dataset}",
    invoke=sales_report,
    parameters=[path("dataset")],
    body={"dataset": "$request.path.dataset"},
)

# Bound to loopback (the default) the routes are open, so `curl` works as is; anywhere else
# they need an API key (`ORDERS_SAGA_API_KEY`) on this plan.
api.open_on_loopback = True
api.usage_plan("standard", rate=50, burst=100, quota_per_day=100_000)

if api_key := os.environ.get("ORDERS_SAGA_API_KEY"):
    api.api_key(api_key, plan="standard")
