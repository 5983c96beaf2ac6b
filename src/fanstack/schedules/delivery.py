"""What an occurrence delivers: the schedule's input to its target, as a bus rule's delivery
(so retries, the maximum event age and the dead-letter queue work as for rule targets).

A function, queue, topic or workflow target gets the schedule's input as it is (`{}` when it
has none); a bus target gets an event whose `detail` is the input, `source`
`fanstack.scheduler` and `detail-type` `Scheduled Event` (EventBridge Scheduler's
EventBridgeParameters), and a bus rule's own schedule gets EventBridge's scheduled event:
`source` `aws.events`, the rule's ARN in `resources`. The event also carries the occurrence's
id (a FIFO queue's deduplication id, a workflow execution's name) and its scheduled time.
"""

from __future__ import annotations

import json
from typing import Any

from fanstack.bus.delivery import Delivery
from fanstack.core.arns import arn_scope
from fanstack.core.events import iso_seconds
from fanstack.core.rules import BUS
from fanstack.core.schedules import ScheduleSpec

SCHEDULER_SOURCE = "fanstack.scheduler"
SCHEDULED_EVENT = "Scheduled Event"
RULE_SOURCE = "aws.events"  # what EventBridge sends a rule of its own schedule


def scheduled_event(spec: ScheduleSpec, occurrence: str, scheduled: float) -> dict[str, Any]:
    """The event of one occurrence (what a bus target receives)."""
    detail: Any = {}
    if spec.input:
        try:
            detail = json.loads(spec.input)
        except ValueError:
            detail = spec.input
    rule_arn = spec.rule_arn
    return {
        "version": "0",
        "id": occurrence,
        "detail-type": SCHEDULED_EVENT,
        "source": RULE_SOURCE if rule_arn else SCHEDULER_SOURCE,
        "account": arn_scope().account,
        "time": iso_seconds(scheduled),
        "region": arn_scope().region,
        "resources": [rule_arn or spec.arn],
        "detail": detail,
    }


def scheduled_delivery(
    spec: ScheduleSpec, occurrence: str, scheduled: float, not_before: float
) -> Delivery:
    """The delivery of one occurrence, due at `not_before` (real time)."""
    event = scheduled_event(spec, occurrence, scheduled)
    if spec.target.kind == BUS:
        text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    else:
        text = spec.input if spec.input is not None else "{}"
    return Delivery(
        rule_arn=spec.arn,
        target=spec.target,
        event=event,
        text=text,
        ingested=not_before,
        not_before=not_before,
    )
