"""An app with a function that SNS subscriptions made over the wire invoke
(tests/e2e/test_aws_sns_endpoints.py): each invocation's event lands in the `calls` queue."""

from __future__ import annotations

from typing import Any

from fanstack import App

app = App("aws-sns-endpoints-test")
calls = app.queue("calls")


@app.function(timeout=5, on_success=calls)
def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Succeeds, so its destination record (the event as `requestPayload`) reaches `calls`."""
    return {"records": len(event.get("Records", []))}
