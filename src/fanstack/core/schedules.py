"""Schedules (EventBridge Scheduler): a schedule's spec with AWS's names, limits and defaults, pure.

A schedule fires its target on its expression (`rate`, `cron` or `at`, see
`schedule_expression.py`) in its time zone, between its optional start and end dates; with a
flexible time window each occurrence fires at a uniform random moment inside the window after
its scheduled time. `at` schedules fire once; `ActionAfterCompletion` `DELETE` removes a
schedule once it has nothing left to fire. The target is a rule target's spec (retry policy,
dead-letter queue), given the schedule's constant input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fanstack.core.arns import arn
from fanstack.core.errors import ValidationException
from fanstack.core.rules import API, TargetSpec
from fanstack.core.schedule_expression import (
    ScheduleExpression,
    load_timezone,
    parse_schedule_expression,
)
from fanstack.core.target_input import MAX_INPUT_LENGTH, TargetInput

MAX_FLEXIBLE_WINDOW_MINUTES = 1440
ENABLED, DISABLED = "ENABLED", "DISABLED"
COMPLETION_ACTIONS = ("NONE", "DELETE")
_SCHEDULE_NAME = re.compile(r"^[0-9a-zA-Z\-_.]{1,64}$")


def schedule_arn(name: str) -> str:
    """The ARN of a schedule (of the default schedule group)."""
    return arn("scheduler", f"schedule/default/{name}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleSpec:
    """One schedule: when it fires (expression, zone, dates, window) and what (target, input)."""

    name: str
    expression: str
    target: TargetSpec
    input: str | None = None  # the text the target receives
    timezone: str = "UTC"
    start: float | None = None  # StartDate, seconds since the epoch
    end: float | None = None  # EndDate
    flexible_window_minutes: int | None = None  # None: FlexibleTimeWindow OFF
    enabled: bool = True
    action_after_completion: str = "NONE"
    description: str | None = None
    rule_arn: str | None = None  # a bus rule's own schedule: the rule whose targets it fires

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _SCHEDULE_NAME.match(self.name):
            raise ValidationException(
                f"schedule name {self.name!r} must be 1-64 letters, digits, '-', '_' or '.'"
            )
        self.parsed()  # ValidationException naming what is wrong with the expression
        load_timezone(self.timezone)
        window = self.flexible_window_minutes
        if window is not None and not (
            isinstance(window, int) and 1 <= window <= MAX_FLEXIBLE_WINDOW_MINUTES
        ):
            raise ValidationException(
                f"schedule {self.name!r}: flexible_window_minutes is {window!r}; it must be "
                f"between 1 and {MAX_FLEXIBLE_WINDOW_MINUTES} (or None: the window is OFF)"
            )
        if self.action_after_completion not in COMPLETION_ACTIONS:
            raise ValidationException(
                f"schedule {self.name!r}: action_after_completion must be NONE or DELETE"
            )
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValidationException(f"schedule {self.name!r}: end must come after start")
        if self.input is not None and len(self.input) > MAX_INPUT_LENGTH:
            raise ValidationException(
                f"schedule {self.name!r}: the input is {len(self.input)} characters; the "
                f"limit is {MAX_INPUT_LENGTH}"
            )
        if self.target.kind == API or self.target.input != TargetInput():
            raise ValidationException(
                f"schedule {self.name!r}: a schedule's target is a function, queue, topic, bus "
                "or workflow, and takes the schedule's input (no input_path or transformer)"
            )

    @property
    def arn(self) -> str:
        """The schedule's ARN."""
        return schedule_arn(self.name)

    @property
    def state(self) -> str:
        """`ENABLED` or `DISABLED`, as AWS names it."""
        return ENABLED if self.enabled else DISABLED

    def parsed(self) -> ScheduleExpression:
        """The validated expression."""
        return parse_schedule_expression(self.expression)

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """StartDate and EndDate as aware datetimes."""
        return _moment(self.start), _moment(self.end)

    def fire_times(
        self,
        created: float,
        after: float | None,
        count: int,
        expression: ScheduleExpression | None = None,
    ) -> list[datetime]:
        """Its next `count` fire times (aware, UTC) after `after`; None: from its creation
        (`created`), which a rate schedule without a StartDate fires at once, as AWS's do.
        `expression`: the parsed expression, when the caller keeps it."""
        start, end = self.bounds()
        created_at = datetime.fromtimestamp(created, UTC)
        anchor = start or created_at
        moment = (
            datetime.fromtimestamp(after, UTC)
            if after is not None
            else min(anchor, created_at) - timedelta(microseconds=1)
        )
        parsed = expression or self.parsed()
        return parsed.fire_times(moment, self.timezone, count, start=anchor, end=end)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, as stored."""
        return {
            "name": self.name,
            "expression": self.expression,
            "target": self.target.to_dict(),
            "input": self.input,
            "timezone": self.timezone,
            "start": self.start,
            "end": self.end,
            "flexible_window_minutes": self.flexible_window_minutes,
            "enabled": self.enabled,
            "action_after_completion": self.action_after_completion,
            "description": self.description,
            "rule_arn": self.rule_arn,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduleSpec:
        """The spec from its stored form (unknown fields ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["target"] = TargetSpec.from_dict(data["target"])
        return cls(**known)


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)
