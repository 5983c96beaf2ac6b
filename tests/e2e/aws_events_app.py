"""An app whose bus, rule and queues are also reached over EventBridge's wire API
(tests/e2e/test_aws_events.py)."""

from __future__ import annotations

from typing import Any

from fanstack import App

app = App("aws-events-test")
shop = app.bus("shop")
orders = app.queue("orders")
audit = app.queue("audit")
calls = app.queue("calls")
shop.rule("declared-audit", event_pattern={"source": ["shop.audit"]}, targets=[audit])


@app.function(timeout=5, on_success=calls)
def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Hands the event it was given on to the `calls` queue (a Lambda target's proof)."""
    return {"got": event}
