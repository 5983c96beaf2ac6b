"""An app whose function reports what it was handed: its SQS record's source ARN and region
and its own ARN (tests/e2e/test_aws_arns.py)."""

from __future__ import annotations

import json
from typing import Any

from fanstack import App

app = App("aws-arns-test")
seen = app.queue("seen")
app.queue("ordered")


@app.consumer("ordered", batch_size=1)
def report(event: dict[str, Any], context: Any) -> None:
    """Sends `seen` the ARNs and region of each record it gets, with the SNS envelope's topic."""
    for record in event["Records"]:
        envelope = json.loads(record["body"])
        seen.send(
            json.dumps(
                {
                    "eventSourceARN": record["eventSourceARN"],
                    "awsRegion": record["awsRegion"],
                    "invoked_function_arn": context.invoked_function_arn,
                    "TopicArn": envelope["TopicArn"],
                }
            )
        )
