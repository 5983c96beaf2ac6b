"""An app whose schedules are also reached over the AWS wire API (tests/e2e/test_aws_scheduler.py).

It declares the queues schedules made with boto3 deliver to, and one schedule of its own, so
the wire's `default` group shows it.
"""

from __future__ import annotations

from fanstack import App

app = App("aws-scheduler-test")
ticks = app.queue("ticks")
nightly = app.queue("nightly")
stopped = app.queue("stopped")
dead_letters = app.queue("schedule-dead-letters")
app.schedule(
    "declared-nightly",
    "cron(0 3 * * ? *)",
    nightly,
    input={"from": "python"},
    timezone="Europe/Paris",
    description="declared in Python",
)
