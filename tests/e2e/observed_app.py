"""An app whose every hop is observable, for tests/e2e/test_metrics.py and test_tracing.py.

POST /orders/{market} publishes to `orders`; `audit` gets every order, `ru-orders` (through a
filter policy) only market=ru, where `fulfil` handles it and publishes a shipment in turn.
An order with `"fail": true` fails in `fulfil` and is dead-lettered after two receives.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fanstack import App, RetryPolicy

app = App("observed")
orders = app.topic("orders")
shipments_topic = app.topic("shipments")
audit = app.queue("audit")
shipments = app.queue("shipments")
orders.subscribe(audit, raw=True)
shipments_topic.subscribe(shipments, raw=True)

app.api.post(
    "/orders/{market}",
    publish=orders,
    attributes={"market": "$request.path.market"},
    request_schema={"type": "object", "required": ["order_id"]},
    auth="open",
)


@app.subscriber(
    orders,
    queue="ru-orders",
    filter_policy={"market": ["ru"]},
    raw=True,
    batch_size=1,
    visibility_timeout=5,
    retry=RetryPolicy(base_delay=0, max_delay=0, max_attempts=2),
)
def fulfil(event: dict[str, Any], context: Any) -> None:
    """Ships a market=ru order (publishes to `shipments`), or fails if asked to."""
    for record in event["Records"]:
        order = json.loads(record["body"])
        logging.getLogger("fulfil").info("fulfilling %s", order["order_id"])
        if order.get("fail"):
            raise ValueError(f"cannot fulfil {order['order_id']}")
        shipments_topic.publish({"order_id": order["order_id"], "shipped": True})
