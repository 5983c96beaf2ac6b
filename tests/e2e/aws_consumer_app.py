"""An app whose function consumes a queue it does not declare: one made over the AWS API
(as Terraform would), found in the store when the consumers start (tests/e2e/test_aws_sqs.py)."""

from __future__ import annotations

import json
from typing import Any

from fanstack import App

app = App("aws-test")
handled = app.queue("handled")


@app.consumer("made-by-terraform", batch_size=1)
def relay(event: dict[str, Any], context: Any) -> None:
    """Copies each message it gets into `handled`, marked as seen."""
    for record in event["Records"]:
        handled.send(json.dumps({"seen": record["body"]}))
