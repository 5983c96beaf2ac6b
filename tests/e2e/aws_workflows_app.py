"""An app whose workflows and functions are also reached over the AWS wire API (Step Functions,
Lambda's Invoke): tests/e2e/test_aws_stepfunctions.py and tests/e2e/test_aws_lambda.py."""

from __future__ import annotations

from typing import Any

from fanstack import App

app = App("aws-workflows")
tokens = app.queue("tokens")  # where `.waitForTaskToken` tasks leave their tokens


@app.function
def double(event: dict[str, Any]) -> dict[str, Any]:
    """Doubles `value`."""
    return {"value": event["value"] * 2}


@app.function
def flaky(event: dict[str, Any]) -> dict[str, Any]:
    """Fails when asked to."""
    if event.get("fail"):
        raise ValueError(f"asked to fail: {event.get('reason', 'no reason')}")
    return {"ok": True, "echo": event}


@app.function
def remember(event: dict[str, Any]) -> dict[str, Any]:
    """Writes its event into a table (so a test sees an asynchronous invocation happen)."""
    app.table("remembered").put(str(event["id"]), event)
    return event


app.workflow(
    "declared-flow",
    {
        "StartAt": "Double",
        "States": {
            "Double": {"Type": "Task", "Resource": "double", "Next": "Done"},
            "Done": {"Type": "Succeed"},
        },
    },
)
app.workflow(
    "declared-express",
    {
        "StartAt": "Double",
        "States": {"Double": {"Type": "Task", "Resource": "double", "End": True}},
    },
    type="EXPRESS",
)
