"""EventBridge Scheduler cron expressions: AWS's six fields, and the wall-clock minutes they name.

The grammar follows AWS's table to the letter
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-cron-expressions.html, the same table
as https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based):

    field          values              wildcards
    minutes        0-59                , - * /
    hours          0-23                , - * /
    day-of-month   1-31                , - * ? / L W
    month          1-12 or JAN-DEC     , - * /
    day-of-week    1-7 or SUN-SAT      , - * ? L #      (1 is Sunday)
    year           1970-2199           , - * /

Exactly one of day-of-month and day-of-week is `?`. `a/n` steps from `a` to the top of the field,
as AWS's `1/10` (minutes 1, 11, 21, ...). A range may wrap past the top of its field, as AWS's
example hours `20-2` (20 to 2 the next morning); years do not wrap. `L` is the last day of the month
in day-of-month and the last day of the week (Saturday) in day-of-week; `nL` the last weekday `n` of
the month (AWS's example `6L`, the last Friday); `nW` the weekday (Monday-Friday) nearest day `n`,
not leaving the month (on the 1st, a Saturday gives Monday the 3rd); `LW` the last weekday of the
month; `n#k` the k-th weekday `n` of the month. Each of these stands alone in its field (AWS: with
`#`, "you can define only one expression in the day-of-week field"). `L-n` (n days before the end)
is not in AWS's documentation, so it is rejected. Where AWS's pages are silent, Quartz (whose
syntax AWS's is) decides: `LW` combines the two documented day-of-month wildcards; a weekday name
may stand before `L` or `#` (`FRIL`, `MON#1`); names are read case-insensitively; a step is
1 to the size of its field; `nW` for a day the month lacks does not fire, as a plain `31` does not.

Matching works in naive local time, field by field (year, month, day, hour, minute) over sorted
allowed values, so a rare schedule (leap days, one year in 2199) costs a few steps, not a walk
minute by minute. Time zones and daylight saving belong to `schedule_expression`.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

FIELD_NAMES = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
SATURDAY = 7
SUNDAY = 1


class CronFieldError(ValueError):
    """A cron field is malformed; the message names the field and why (wrapped at the boundary)."""


class Field(NamedTuple):
    """One of the six fields: its name, bounds, value names, and the wildcards AWS allows."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    steps: bool = True
    wraps: bool = True

    def value(self, text: str) -> int:
        """One value of the field, a number or a name, checked against the field's bounds."""
        if text in self.names:
            return self.low + self.names.index(text)
        if not _is_number(text):
            raise CronFieldError(f"{self.name}: {text!r} is not a value ({self.bounds})")
        value = int(text)
        if not self.low <= value <= self.high:
            raise CronFieldError(f"{self.name}: {value} is outside {self.bounds}")
        return value

    @property
    def bounds(self) -> str:
        names = f" or {self.names[0]}-{self.names[-1]}" if self.names else ""
        return f"{self.low}-{self.high}{names}"


MINUTES = Field("minutes", 0, 59)
HOURS = Field("hours", 0, 23)
DAY_OF_MONTH = Field("day-of-month", 1, 31)
MONTH = Field("month", 1, 12, MONTH_NAMES)
DAY_OF_WEEK = Field("day-of-week", 1, 7, DAY_NAMES, steps=False)
YEAR = Field("year", 1970, 2199, wraps=False)


def parse_values(text: str, field: Field) -> tuple[int, ...]:
    """A list of values, ranges, steps and `*` (`,` `-` `*` `/`), as sorted distinct values."""
    values: set[int] = set()
    for item in text.split(","):
        values.update(_parse_item(item, field))
    return tuple(sorted(values))


def _parse_item(item: str, field: Field) -> list[int]:
    head, slash, step_text = item.partition("/")
    if slash and not field.steps:
        raise CronFieldError(f"{field.name}: AWS allows no '/' here ({item!r})")
    step = _step(step_text, field) if slash else 1
    if head == "*":
        low, high = field.low, field.high
    elif "-" in head:
        first, _, last = head.partition("-")
        low, high = field.value(first), field.value(last)
        if low > high and not field.wraps:
            raise CronFieldError(f"{field.name}: range {head!r} runs backwards")
    else:
        low = field.value(head)
        high = field.high if slash else low
    if low <= high:
        return list(range(low, high + 1, step))
    span = field.high - field.low + 1  # a range past the top wraps round to the bottom
    return [
        field.low + (low - field.low + offset) % span
        for offset in range(0, high - low + span + 1, step)
    ]


def _step(text: str, field: Field) -> int:
    span = field.high - field.low + 1
    if not _is_number(text) or not 1 <= int(text) <= span:
        raise CronFieldError(f"{field.name}: step {text!r} is not a whole number 1-{span}")
    return int(text)


class DayRule(NamedTuple):
    """Which days of a month fire: a day-of-month or a day-of-week form, and its operands."""

    form: str
    """`days` (of month), `last`, `last-weekday`, `nearest-weekday`, `weekdays`, `last-of-week`
    or `nth-of-week`."""
    values: tuple[int, ...] = ()
    nth: int = 0

    def days(self, year: int, month: int) -> tuple[int, ...]:
        """The days of `month` in `year` that match, ascending."""
        first_weekday, length = calendar.monthrange(year, month)
        sunday_first = (first_weekday + 1) % 7 + 1  # AWS numbering of the 1st: 1 is Sunday
        form = self.form
        if form == "days":
            return self.values if self.values[-1] <= length else _upto(self.values, length)
        if form == "weekdays":
            found: list[int] = []
            for weekday in self.values:
                found.extend(range(1 + (weekday - sunday_first) % 7, length + 1, 7))
            return tuple(sorted(found))
        if form == "last":
            return (length,)
        if form == "last-weekday":
            last = weekday_of(length, sunday_first)
            return (length - 1 if last == SATURDAY else length - 2 if last == SUNDAY else length,)
        if form == "nearest-weekday":
            return _nearest_weekday(self.values[0], length, sunday_first)
        if form == "last-of-week":
            return (length - (weekday_of(length, sunday_first) - self.values[0]) % 7,)
        day = 1 + (self.values[0] - sunday_first) % 7 + 7 * (self.nth - 1)  # nth-of-week
        return (day,) if day <= length else ()


def weekday_of(day: int, sunday_first: int) -> int:
    """AWS's weekday (1 is Sunday) of `day`, given that of the 1st of its month."""
    return (sunday_first - 1 + day - 1) % 7 + 1


def _upto(values: tuple[int, ...], length: int) -> tuple[int, ...]:
    return values[: bisect_left(values, length + 1)]


def _nearest_weekday(day: int, length: int, sunday_first: int) -> tuple[int, ...]:
    if day > length:
        return ()
    weekday = weekday_of(day, sunday_first)
    if weekday == SATURDAY:
        return (day - 1,) if day > 1 else (day + 2,)
    if weekday == SUNDAY:
        return (day + 1,) if day < length else (day - 2,)
    return (day,)


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A parsed cron(...) body: allowed values per field, and the rule choosing days of a month."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    day_rule: DayRule
    months: tuple[int, ...]
    years: tuple[int, ...]

    @classmethod
    def parse(cls, body: str) -> CronExpression:
        """The six fields of `cron(body)`; raise CronFieldError naming the field and why."""
        fields = body.upper().split()
        if len(fields) != len(FIELD_NAMES):
            raise CronFieldError(
                f"cron takes {len(FIELD_NAMES)} fields ({' '.join(FIELD_NAMES)}), got {len(fields)}"
            )
        minutes, hours, day_of_month, month, day_of_week, year = fields
        for name, text in zip(FIELD_NAMES, fields, strict=True):
            if "?" in text and (text != "?" or name not in ("day-of-month", "day-of-week")):
                raise CronFieldError(
                    f"{name}: {text!r}; '?' stands alone, in day-of-month or day-of-week"
                )
        return cls(
            parse_values(minutes, MINUTES),
            parse_values(hours, HOURS),
            _day_rule(day_of_month, day_of_week),
            parse_values(month, MONTH),
            parse_values(year, YEAR),
        )

    def matches_from(self, moment: datetime) -> Iterator[datetime]:
        """Every matching minute at or after naive `moment`, ascending (finite: years end)."""
        start = moment.replace(second=0, microsecond=0)
        if start < moment:
            start += timedelta(minutes=1)
        year0, month0, day0, hour0, minute0 = start.timetuple()[:5]
        for year in self.years[bisect_left(self.years, year0) :]:
            in_year = year == year0
            for month in self.months[bisect_left(self.months, month0) if in_year else 0 :]:
                in_month = in_year and month == month0
                days = self.day_rule.days(year, month)
                for day in days[bisect_left(days, day0) if in_month else 0 :]:
                    in_day = in_month and day == day0
                    for hour in self.hours[bisect_left(self.hours, hour0) if in_day else 0 :]:
                        in_hour = in_day and hour == hour0
                        for minute in self.minutes[
                            bisect_left(self.minutes, minute0) if in_hour else 0 :
                        ]:
                            yield datetime(year, month, day, hour, minute)


def _day_rule(day_of_month: str, day_of_week: str) -> DayRule:
    if day_of_month == "?" and day_of_week == "?":
        raise CronFieldError(
            "day-of-month and day-of-week are both '?'; exactly one of them must be '?'"
        )
    if day_of_week == "?":
        return _day_of_month_rule(day_of_month)
    if day_of_month == "?":
        return _day_of_week_rule(day_of_week)
    raise CronFieldError(
        f"day-of-month {day_of_month!r} and day-of-week {day_of_week!r}: one of them must be '?'"
    )


def _day_of_month_rule(text: str) -> DayRule:
    if "L" not in text and "W" not in text:
        return DayRule("days", parse_values(text, DAY_OF_MONTH))
    if text == "L":
        return DayRule("last")
    if text == "LW":
        return DayRule("last-weekday")
    if text.endswith("W") and _is_number(text[:-1]):
        return DayRule("nearest-weekday", (DAY_OF_MONTH.value(text[:-1]),))
    raise CronFieldError(
        f"day-of-month: {text!r}; 'L', 'LW' and 'nW' stand alone (AWS documents no 'L-n')"
    )


def _day_of_week_rule(text: str) -> DayRule:
    if "L" not in text and "#" not in text:
        return DayRule("weekdays", parse_values(text, DAY_OF_WEEK))
    if text == "L":
        return DayRule("weekdays", (SATURDAY,))
    alone = not any(char in text for char in ",-/*")
    if alone and "#" in text:
        weekday, _, nth = text.partition("#")
        if not _is_number(nth) or not 1 <= int(nth) <= 5:
            raise CronFieldError(f"day-of-week: {text!r}; after '#' comes 1-5, the n-th in a month")
        return DayRule("nth-of-week", (DAY_OF_WEEK.value(weekday),), int(nth))
    if alone and text.endswith("L"):
        return DayRule("last-of-week", (DAY_OF_WEEK.value(text[:-1]),))
    raise CronFieldError(f"day-of-week: {text!r}; 'L', 'nL' and 'n#k' stand alone")


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()
