"""The schedules of rules made over the wire with a `ScheduleExpression`, kept in step with
their rule (as `bus.rule(..., schedule_expression=...)` keeps a declared one's).

The schedule fires on the scheduler of a worker whose app has schedules of its own.
"""

from __future__ import annotations

import contextlib

from fanstack.aws.context import CallContext
from fanstack.core.errors import ResourceNotFound
from fanstack.core.rules import RuleSpec
from fanstack.schedules.schedule import rule_schedule
from fanstack.schedules.scheduler import SchedulerClock
from fanstack.schedules.store import ScheduleStore


def sync_rule_schedule(call: CallContext, rule: RuleSpec, before: RuleSpec | None) -> None:
    """Store the schedule of a rule as it now is (or stop it, if it no longer has one)."""
    if rule.schedule_expression is not None:
        now = SchedulerClock.from_environment()()
        ScheduleStore(call.backend).declare(rule_schedule(rule), now)
    elif before is not None:
        forget_rule_schedule(call, before)


def forget_rule_schedule(call: CallContext, rule: RuleSpec) -> None:
    """Stop the schedule of a scheduled rule that is deleted or no longer scheduled."""
    if rule.schedule_expression is None:
        return
    with contextlib.suppress(ResourceNotFound):
        ScheduleStore(call.backend).delete(rule_schedule(rule).name)
