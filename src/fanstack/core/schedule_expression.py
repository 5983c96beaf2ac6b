"""EventBridge Scheduler's schedule expressions: `at()`, `rate()` and `cron()`, and when they fire.

Followed to the letter from AWS's pages:
https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html (the three forms, time
zones, daylight saving), https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cron-expressions.html
(the cron table, see `core/cron.py`) and
https://docs.aws.amazon.com/scheduler/latest/APIReference/API_CreateSchedule.html (StartDate,
EndDate, ScheduleExpressionTimezone, lengths).

- `at(yyyy-mm-ddThh:mm:ss)`: one moment, no zone suffix, read in the schedule's time zone.
  EventBridge Scheduler ignores StartDate and EndDate for one-time schedules, so do we.
- `rate(value unit)`: `value` a positive whole number, `unit` `minute|hour|day` for 1 and
  `minutes|hours|days` above 1. A rate counts elapsed time, not the wall clock: a day is 24 hours
  even across daylight saving ("EventBridge Scheduler evaluates the rate expression 24 hours after
  the schedule's last invocation", https://repost.aws/knowledge-center/eventbridge-scheduler-adjust-dst).
  It fires at `start + k * period`; without a StartDate it fires at once, so the caller passes the
  creation time as `start`.
- `cron(...)`: fields read on the wall clock of the schedule's time zone.

Daylight saving, as AWS documents for EventBridge Scheduler (schedule-types.html, "Daylight saving
time on EventBridge Scheduler"): when clocks go forward, a local time that does not exist is
skipped; when clocks go back, a local time that occurs twice fires once, at its first occurrence.
The same holds for the one moment of `at()`. All fire times come back as aware UTC datetimes.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fanstack.core.cron import CronExpression, CronFieldError
from fanstack.core.errors import ValidationException

MAX_EXPRESSION_LENGTH = 256
MAX_TIMEZONE_LENGTH = 50
DEFAULT_TIMEZONE = "UTC"
RATE_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
_FORM = re.compile(r"(at|rate|cron)\((.*)\)", re.DOTALL)
_AT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})")
_JUST_BEFORE = timedelta(microseconds=1)


def load_timezone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (a ScheduleExpressionTimezone); ValidationException if unknown."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_TIMEZONE_LENGTH:
        raise ValidationException(
            f"Invalid ScheduleExpressionTimezone {name!r}: it must be an IANA time zone name of "
            f"1-{MAX_TIMEZONE_LENGTH} characters"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValidationException(
            f"Invalid ScheduleExpressionTimezone {name!r}: not an IANA time zone name "
            "(such as UTC or America/New_York)"
        ) from exc


def parse_schedule_expression(text: str) -> ScheduleExpression:
    """Validate a ScheduleExpression like EventBridge Scheduler; raise ValidationException."""
    if not isinstance(text, str):
        raise ValidationException(f"Invalid Schedule Expression {text!r}: it must be a string")
    if not 1 <= len(text) <= MAX_EXPRESSION_LENGTH:
        raise _invalid(text, f"it must be 1-{MAX_EXPRESSION_LENGTH} characters")
    form = _FORM.fullmatch(text)
    if form is None:
        raise _invalid(text, "expected at(yyyy-mm-ddThh:mm:ss), rate(value unit) or cron(fields)")
    kind, body = form.groups()
    if kind == "cron":
        try:
            return CronSchedule(text, CronExpression.parse(body))
        except CronFieldError as exc:
            raise _invalid(text, str(exc)) from exc
    if kind == "rate":
        return RateSchedule(text, _rate_period(text, body))
    return AtSchedule(text, _at_moment(text, body))


def next_fire_times(
    expression: str | ScheduleExpression,
    tz: str | tzinfo,
    after: datetime,
    count: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[datetime]:
    """Up to `count` fire times (aware, UTC) strictly after `after`; see `ScheduleExpression`."""
    if isinstance(expression, str):
        expression = parse_schedule_expression(expression)
    return expression.fire_times(after, tz, count, start=start, end=end)


@dataclass(frozen=True, slots=True)
class ScheduleExpression(ABC):
    """A validated schedule expression; `kind` is `at`, `rate` or `cron`.

    Fire times are aware UTC datetimes strictly after `after`, computed in time zone `tz` (an
    IANA name or a tzinfo). `start` and `end` (aware) bound a recurring schedule: no fire before
    `start`, none after `end`; a one-time schedule ignores both, as EventBridge Scheduler does.
    A rate schedule needs `start`: its fires are `start + k * period`, and one without a
    StartDate fires at once, so pass its creation time.
    """

    text: str
    kind: ClassVar[str]
    bounded: ClassVar[bool] = True
    """Whether StartDate and EndDate apply (not to one-time schedules)."""

    def next_after(
        self,
        after: datetime,
        tz: str | tzinfo = DEFAULT_TIMEZONE,
        start: datetime | None = None,
        *,
        end: datetime | None = None,
    ) -> datetime | None:
        """The first fire time strictly after `after`, or None if the schedule is done."""
        fires = self.fire_times(after, tz, 1, start=start, end=end)
        return fires[0] if fires else None

    def fire_times(
        self,
        after: datetime,
        tz: str | tzinfo,
        count: int,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[datetime]:
        """Up to `count` fire times (aware, UTC) strictly after `after`, ascending."""
        for name, moment in (("after", after), ("start", start), ("end", end)):
            if moment is not None and moment.utcoffset() is None:
                raise ValueError(f"{name} must be an aware datetime, got {moment!r}")
        zone = load_timezone(tz) if isinstance(tz, str) else tz
        if not self.bounded:
            end = None
        elif start is not None and start > after:
            after = start - _JUST_BEFORE
        fires: list[datetime] = []
        if count <= 0:
            return fires
        for fire in self._fires_after(after, zone, start):
            if end is not None and fire > end:
                break
            fires.append(fire)
            if len(fires) == count:
                break
        return fires

    @abstractmethod
    def _fires_after(
        self, after: datetime, zone: tzinfo, start: datetime | None
    ) -> Iterator[datetime]:
        """Every fire time (aware, UTC) strictly after `after`, ascending; may be endless."""


@dataclass(frozen=True, slots=True)
class AtSchedule(ScheduleExpression):
    """`at(yyyy-mm-ddThh:mm:ss)`: one moment, on the wall clock of the schedule's time zone."""

    moment: datetime
    """Naive: the local date and time as written."""
    kind: ClassVar[str] = "at"
    bounded: ClassVar[bool] = False

    def _fires_after(
        self, after: datetime, zone: tzinfo, start: datetime | None
    ) -> Iterator[datetime]:
        fire = wall_clock(self.moment, zone)
        if fire is not None and fire > after:
            yield fire


@dataclass(frozen=True, slots=True)
class RateSchedule(ScheduleExpression):
    """`rate(value unit)`: every `period` of elapsed time from the schedule's start."""

    period: timedelta
    kind: ClassVar[str] = "rate"

    def _fires_after(
        self, after: datetime, zone: tzinfo, start: datetime | None
    ) -> Iterator[datetime]:
        if start is None:
            raise ValueError(
                f"{self.text} fires every {self.period} from its start: pass start (the "
                "StartDate, or the creation time of a schedule without one)"
            )
        periods = 0 if after < start else (after - start) // self.period + 1
        fire = (start + periods * self.period).astimezone(UTC)
        while True:
            yield fire
            fire += self.period


@dataclass(frozen=True, slots=True)
class CronSchedule(ScheduleExpression):
    """`cron(...)`: the minutes its fields name on the wall clock of the schedule's time zone."""

    cron: CronExpression
    kind: ClassVar[str] = "cron"

    def _fires_after(
        self, after: datetime, zone: tzinfo, start: datetime | None
    ) -> Iterator[datetime]:
        # Wall-clock times map to UTC in order once skipped ones are dropped and repeated ones
        # take their first occurrence, so the search starts at the wall-clock time of `after`.
        local = after.astimezone(zone).replace(tzinfo=None)
        for moment in self.cron.matches_from(local):
            fire = wall_clock(moment, zone)
            if fire is not None and fire > after:
                yield fire


def wall_clock(moment: datetime, zone: tzinfo) -> datetime | None:
    """Naive local `moment` in `zone` as aware UTC: None if the clocks skip it (spring forward),
    its first occurrence if they repeat it (fall back)."""
    fire = moment.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if fire.astimezone(zone).replace(tzinfo=None) != moment:
        return None
    return fire


def _rate_period(text: str, body: str) -> timedelta:
    parts = body.split(" ")
    if len(parts) != 2:
        raise _invalid(
            text, "rate takes a value and a unit separated by a space, as rate(5 minutes)"
        )
    value, unit = parts
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise _invalid(text, f"rate value {value!r} is not a positive whole number")
    singular = unit.removesuffix("s")
    if singular not in RATE_UNITS:
        raise _invalid(text, f"rate unit {unit!r} is not one of {', '.join(_unit_names())}")
    if int(value) == 1 and unit != singular:
        raise _invalid(text, f"a value of 1 takes the singular unit {singular!r}")
    if int(value) > 1 and unit == singular:
        raise _invalid(text, f"a value above 1 takes the plural unit {singular + 's'!r}")
    return int(value) * RATE_UNITS[singular]


def _unit_names() -> list[str]:
    return [name for unit in RATE_UNITS for name in (unit, f"{unit}s")]


def _at_moment(text: str, body: str) -> datetime:
    written = _AT.fullmatch(body)
    if written is None:
        raise _invalid(
            text,
            "at takes yyyy-mm-ddThh:mm:ss with no zone suffix (the schedule's time zone applies)",
        )
    year, month, day, hour, minute, second = (int(part) for part in written.groups())
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise _invalid(text, f"{body!r} is not a date and time ({exc})") from exc


def _invalid(text: str, reason: str) -> ValidationException:
    return ValidationException(f"Invalid Schedule Expression {text}: {reason}")
