"""An app exercising every gateway feature, for tests/e2e/test_gateway.py."""

from __future__ import annotations

import logging
import os
from typing import Any

from fanstack import App

app = App("gateway-test")
events = app.topic("events")
inbox = app.queue("inbox")
audit = app.queue("audit")
events.subscribe(audit, raw=True)
results = app.queue("results")
claimed = app.queue("claimed")


@app.function(timeout=5, on_success=results)
def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Returns what it was given."""
    logging.getLogger("echo").info("echoing")
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"echo": event}


SCHEMA = {
    "type": "object",
    "required": ["kind"],
    "properties": {"kind": {"type": "string", "enum": ["a", "b"]}, "n": {"type": "integer"}},
}

app.api.usage_plan("tiny", rate=0.01, burst=3, quota_per_day=5)  # no refill within a test
app.api.usage_plan("roomy", rate=1000, burst=1000)
app.api.usage_plan("counted", rate=1000, burst=1000, quota_per_day=1000)
app.api.usage_plan("daily", rate=1000, burst=1000, quota_per_day=2)
app.api.api_key("tiny-key-0123456789abcdef", plan="tiny")
app.api.api_key("roomy-key-0123456789abcdef", plan="roomy")
app.api.api_key("counted-key-0123456789abcdef", plan="counted")
app.api.api_key("daily-key-0123456789abcdef", plan="daily")
if os.environ.get("GATEWAY_JWKS"):
    app.api.use_jwt(jwks_file=os.environ["GATEWAY_JWKS"], algorithms=["RS256"], audience="shop")
else:
    app.api.use_jwt(secret="test-secret-that-is-long-enough-for-hs256", audience="shop")
app.api.cors("https://shop.example")

app.api.post(
    "/events/{kind}",
    publish=events,
    request_schema=SCHEMA,
    parameters=[
        {
            "name": "kind",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": ["a", "b"]},
        }
    ],
    attributes={"kind": "$request.path.kind", "user": "$context.claims.sub"},
    auth="api_key",
)
app.api.post(
    "/secure",
    send=inbox,
    request_schema=SCHEMA,
    attributes={"user": "$context.claims.sub", "tenant": "$request.header.x-tenant"},
    auth="jwt",
)
app.api.post(
    "/claimed",
    send=claimed,
    request_schema={"type": "object"},
    body={"claims": "$context.claims", "order": "$request.body"},
    auth="jwt",
)
app.api.post("/echo", invoke=echo, request_schema={"type": "object"}, auth="open")
GREET = {
    "StartAt": "Greet",
    "States": {
        "Greet": {
            "Type": "Pass",
            "Parameters": {"greeting.$": "States.Format('hello {}', $.name)"},
            "End": True,
        }
    },
}
greeter = app.workflow("greeter", GREET)
quick = app.workflow("quick-greeter", GREET, type="EXPRESS")
app.api.post(
    "/greet",
    start_workflow=greeter,
    execution_name="$request.header.x-greeting-id",
    request_schema={"type": "object"},
    auth="open",
)
app.api.post("/greet-now", start_workflow=quick, request_schema={"type": "object"}, auth="open")
tokens = app.queue("tokens")
approval = app.workflow(
    "approval",
    {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": "tokens", "MessageBody": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    },
)
app.api.post("/approvals", start_workflow=approval, request_schema={"type": "object"}, auth="open")
app.api.post(
    "/approve/{token}",
    task_callback="success",
    task_token="$request.path.token",
    request_schema={"type": "object"},
    auth="open",
)
shop = app.bus("shop")
checkouts = app.queue("checkouts")
shop.rule("checkouts", event_pattern={"detail-type": ["Checkout"]}, targets=[checkouts])
app.api.post(
    "/checkout/{user}",
    put_events=shop,
    source="$request.header.x-tenant",
    detail_type="Checkout",
    body={"user": "$request.path.user", "basket": "$request.body"},
    request_schema={"type": "object"},
    auth="open",
)
app.api.post("/echo-later", invoke_async=echo, request_schema={"type": "object"}, auth="open")
app.api.get(
    "/search",
    invoke=echo,
    body={
        "q": "$request.query.q",
        "limit": "$request.query.limit",
        "min_price": "$request.query.min_price",
    },
    parameters=[
        {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 50}},
        {"name": "min_price", "in": "query", "schema": {"type": "number"}},
    ],
    auth="open",
)
