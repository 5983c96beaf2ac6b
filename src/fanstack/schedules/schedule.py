"""The schedules a user touches: `Schedule`, and `Schedules`, the capability.

`app.schedule(name, expression, target, ...)` validates the schedule when it is declared and
stores it when the backend opens; every worker process runs the scheduler service, and the one
holding the lease fires (`scheduler.py`). A bus rule with a `schedule_expression` is a schedule
of its own (`rule_schedule`), firing the rule's targets through its bus.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from fanstack.backends.base import Backend
from fanstack.bus.router import Retrier
from fanstack.bus.targets import Target, target_spec
from fanstack.core.rules import (
    BUS,
    DEFAULT_MAXIMUM_EVENT_AGE,
    DEFAULT_MAXIMUM_RETRY_ATTEMPTS,
    RuleSpec,
    TargetSpec,
)
from fanstack.core.schedule_expression import load_timezone
from fanstack.core.schedules import ScheduleSpec
from fanstack.core.specs import QueueSpec
from fanstack.runtime.services import Service
from fanstack.schedules.scheduler import RETRY_QUEUE, Scheduler, SchedulerClock
from fanstack.schedules.store import ScheduleState, ScheduleStore

RULE_SCHEDULE_PREFIX = "events-rule."


class Schedules:
    """Every schedule an app declares (the schedule capability)."""

    def __init__(
        self,
        backend: Callable[[], Backend],
        opened: Callable[[], Backend | None],
        rule_schedules: Callable[[], list[ScheduleSpec]] = list,
    ) -> None:
        self._backend = backend
        self._opened = opened
        self._rule_schedules = rule_schedules
        self.declared: dict[str, ScheduleSpec] = {}
        self._lock = threading.Lock()

    def schedule(
        self,
        name: str,
        expression: str,
        target: Any,
        *,
        timezone: str = "UTC",
        start: datetime | float | str | None = None,
        end: datetime | float | str | None = None,
        flexible_window_minutes: int | None = None,
        input: Any = None,
        maximum_event_age: int = DEFAULT_MAXIMUM_EVENT_AGE,
        maximum_retry_attempts: int = DEFAULT_MAXIMUM_RETRY_ATTEMPTS,
        dead_letter: Any = None,
        enabled: bool = True,
        action_after_completion: str = "NONE",
        description: str | None = None,
    ) -> Schedule:
        """Declare a schedule: `target` (a function, queue, topic, bus or workflow, or a
        `Target` with its retry policy and dead-letter queue) gets `input` on `expression`."""
        declared = target if isinstance(target, Target) else Target(
            target, id="schedule", maximum_event_age=maximum_event_age,
            maximum_retry_attempts=maximum_retry_attempts, dead_letter=dead_letter,
        )  # fmt: skip
        spec = ScheduleSpec(
            name=name,
            expression=expression,
            target=target_spec(declared),
            input=_input_text(input),
            timezone=timezone,
            start=_seconds(start, timezone),
            end=_seconds(end, timezone),
            flexible_window_minutes=flexible_window_minutes,
            enabled=enabled,
            action_after_completion=action_after_completion,
            description=description,
        )
        with self._lock:
            self.declared[name] = spec
        backend = self._opened()
        if backend is not None:
            self.provision(backend)
        return Schedule(name, self._backend)

    def declare_rule(self, rule: RuleSpec) -> None:
        """Store the schedule of a scheduled rule declared once the backend is open."""
        backend = self._opened()
        if backend is not None:
            store = ScheduleStore(backend)
            store.declare(rule_schedule(rule), SchedulerClock.from_environment()())

    def provision(self, backend: Backend) -> None:
        """Create the scheduler's retry queue and store the declared schedules."""
        # A short visibility: a delivery a dead worker had taken is made again within seconds.
        backend.declare_queue(QueueSpec(name=RETRY_QUEUE, visibility_timeout=10))
        store = ScheduleStore(backend)
        now = SchedulerClock.from_environment()()
        for spec in [*self.declared.values(), *self._rule_schedules()]:
            store.declare(spec, now)

    def services(self) -> list[Service]:
        """The scheduler and its retrier (always: a schedule may be made at run time, over
        the AWS API, in an app that declares none)."""
        retrier = Retrier("scheduler", queue=RETRY_QUEUE, name="scheduler-retrier")
        return [Scheduler(), retrier]

    def get(self, name: str) -> Schedule:
        """A schedule stored in the backend (ResourceNotFound if none)."""
        ScheduleStore(self._backend()).get(name)
        return Schedule(name, self._backend)

    def all(self) -> list[Schedule]:
        """Every schedule stored in the backend, by name."""
        backend = self._backend()
        return [Schedule(spec.name, self._backend) for spec in ScheduleStore(backend).schedules()]


class Schedule:
    """A schedule: describe it, see when it fires, enable, disable or delete it."""

    def __init__(self, name: str, backend: Callable[[], Backend]) -> None:
        self.name = name
        self._backend = backend

    def __repr__(self) -> str:
        return f"Schedule({self.name!r})"

    def describe(self) -> ScheduleSpec:
        """The schedule as it runs (GetSchedule)."""
        return ScheduleStore(self._backend()).get(self.name)

    def state(self) -> ScheduleState:
        """When it last fired and fires next, how many fired and were skipped."""
        return ScheduleStore(self._backend()).state(self.name)

    def next_fire_times(self, count: int = 3) -> list[datetime]:
        """Its next `count` fire times (aware, UTC), from now or from its last fire."""
        spec, state = self.describe(), self.state()
        now = SchedulerClock.from_environment()()
        return spec.fire_times(state.created, max(now, state.last_fire or now), count)

    def enable(self) -> None:
        """Let it fire (State ENABLED)."""
        self._set_enabled(True)

    def disable(self) -> None:
        """Stop it firing until enabled again (State DISABLED); it keeps its progress."""
        self._set_enabled(False)

    def delete(self) -> None:
        """Delete it (DeleteSchedule)."""
        ScheduleStore(self._backend()).delete(self.name)

    def _set_enabled(self, enabled: bool) -> None:
        store = ScheduleStore(self._backend())
        spec = store.get(self.name)
        if spec.enabled == enabled:
            return
        if enabled:  # it goes on from now: what fell due while it was disabled is not owed
            resumed = SchedulerClock.from_environment()()
            state = replace(store.state(self.name), next_fire=None, resumed=resumed)
            store.save_state(self.name, state)
        store.put(ScheduleSpec.from_dict({**spec.to_dict(), "enabled": enabled}))


def rule_schedule(rule: RuleSpec) -> ScheduleSpec:
    """The schedule of a bus rule with a `schedule_expression` (in UTC, as EventBridge's are)."""
    assert rule.schedule_expression is not None
    name = f"{RULE_SCHEDULE_PREFIX}{rule.bus}.{rule.name}"
    if len(name) > 64:
        digest = hashlib.sha256(f"{rule.bus}/{rule.name}".encode()).hexdigest()[:12]
        name = f"{name[: 64 - 13]}-{digest}"
    return ScheduleSpec(
        name=name,
        expression=rule.schedule_expression,
        target=TargetSpec(id="rule", kind=BUS, resource=rule.bus),
        enabled=rule.enabled,
        description=f"the schedule of rule {rule.name} of bus {rule.bus}",
        rule_arn=rule.arn,
    )


def _input_text(value: Any) -> str | None:
    """A schedule's input as the text its target receives (a string as is, else JSON)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _seconds(value: datetime | float | str | None, timezone: str) -> float | None:
    """A StartDate or EndDate as seconds since the epoch (a naive time is in `timezone`)."""
    if value is None or isinstance(value, int | float):
        return value
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=load_timezone(timezone))
    return moment.timestamp()
