"""An app whose queues are also reached over the AWS wire API (tests/e2e/test_aws_sqs.py)."""

from __future__ import annotations

from fanstack import App

app = App("aws-test")
declared = app.queue("declared")
