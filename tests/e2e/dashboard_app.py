"""An app with a piece of everything, for the dashboard's browser tests."""

from __future__ import annotations

from typing import Any

from fanstack import App, RetryPolicy

app = App("dashboard-test")
orders = app.topic("orders")
parked = app.queue("parked", dead_letter=app.queue("parked-dlq"), max_receive_count=3)
audit = app.queue("audit")
orders.subscribe(audit, raw=True)


class CardDeclined(Exception):
    """The payment provider said no."""


@app.subscriber(
    orders,
    queue="payments",
    filter_policy={"market": ["ru", "de"], "total": [{"numeric": [">", 100]}]},
    retry=RetryPolicy(base_delay=0, max_delay=0, max_attempts=1),
    batch_size=1,  # one invocation per order, however close together they arrive
    timeout=5,
)
def charge(event: Any, context: Any) -> None:
    """Fails for an order that says so."""
    for record in event["Records"]:
        if "decline" in record["body"]:
            raise CardDeclined(f"card declined for {record['body']}")


app.api.post(
    "/orders",
    publish=orders,
    request_schema={"type": "object", "required": ["market", "total"]},
    attributes={"market": "$request.body#/market", "total": "$request.body#/total"},
    auth="open",
)
app.api.post("/parked", send=parked, auth="open")

bus = app.bus("shop")
bus.rule(
    "big-orders",
    event_pattern={"source": ["shop"], "detail": {"total": [{"numeric": [">", 1000]}]}},
    targets=[audit],
)
app.schedule("nightly-report", "rate(1 day)", audit, input={"report": "nightly"})
fulfil = app.workflow(
    "fulfil",
    {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}},
)
app.api.post("/fulfil", start_workflow=fulfil, auth="open")
