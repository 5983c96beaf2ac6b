"""Where schedules live: items of backend tables, so both backends keep them through restarts.

- `fanstack-schedules`: `<name>` -> `{"spec", "declared", "extras"}`. `spec` is the schedule as
  it runs (enabled or not: `fanstack schedule disable` changes it); `declared` is what the app's
  code last declared, so a restart re-applies the code only where the code changed; `extras`,
  for a schedule made at run time, is what the API that made it keeps beside it (the AWS
  endpoint: its Scheduler group and name, dates, the ARNs it was given).
- `fanstack-schedule-state`: `<name>` -> when it last fired, when it fires next, how many
  occurrences fired and were skipped, whether it is done.
- `fanstack-schedule-occurrences`: `<name>/<scheduled time>` -> one occurrence, written once
  (a conditional write) before it is delivered: whoever writes it fires it, so no occurrence
  fires twice, whatever leader, restart or clock step came before. Kept `OCCURRENCE_TTL`.
- `fanstack-scheduler`: `leader` -> the lease of the process that fires schedules;
  `generation` -> bumped when any schedule changes, so the leader reloads only then.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.errors import (
    ConditionalCheckFailed,
    ResourceAlreadyExists,
    ResourceNotFound,
)
from fanstack.core.schedules import ScheduleSpec

SCHEDULES_TABLE = "fanstack-schedules"
STATE_TABLE = "fanstack-schedule-state"
OCCURRENCES_TABLE = "fanstack-schedule-occurrences"
SCHEDULER_TABLE = "fanstack-scheduler"
LEADER_KEY, GENERATION_KEY = "leader", "generation"
OCCURRENCE_TTL = 3 * 86_400  # longer than any retry (24 h) and window (24 h) together


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """A schedule's progress: its last and next fire (scheduled times) and its counts."""

    created: float
    last_fire: float | None = None
    next_fire: float | None = None
    fired: int = 0
    skipped: int = 0
    done: bool = False
    resumed: float | None = None  # enabled again then: what fell due while disabled is not owed

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleState:
        """The state from its stored form."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class ScheduleStore:
    """The schedule tables of one backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # -- schedules -------------------------------------------------------------------------

    def declare(self, spec: ScheduleSpec, now: float) -> None:
        """Store a schedule the code declares (created `now`, in schedule time); a restart
        changes only what the code changed, so a schedule disabled from the command line stays
        so until its declaration changes."""
        declared = spec.to_dict()
        item = self.backend.table_get(SCHEDULES_TABLE, spec.name)
        if item is not None and item.value.get("declared") == declared:
            return
        self.backend.table_put(SCHEDULES_TABLE, spec.name, {"spec": declared, "declared": declared})
        state = self.backend.table_get(STATE_TABLE, spec.name)
        if state is None or state.value.get("done"):  # new, or declared again after it ended
            self.backend.table_put(STATE_TABLE, spec.name, ScheduleState(created=now).to_dict())
        self.bump()

    def create(
        self, spec: ScheduleSpec, now: float, *, extras: Mapping[str, Any] | None = None
    ) -> None:
        """Store a schedule made at run time (CreateSchedule), with fresh progress from `now`
        and its maker's `extras`; what the code declared under that name, if anything, stays
        recorded as declared (ResourceAlreadyExists if a schedule of that name exists)."""
        item = self.backend.table_get(SCHEDULES_TABLE, spec.name)
        if item is not None and item.value.get("spec") is not None:
            raise ResourceAlreadyExists(f"Schedule {spec.name} already exists.")
        value = {
            "spec": spec.to_dict(),
            "declared": item.value.get("declared") if item else None,
            "extras": dict(extras or {}),
        }
        try:
            if item is None:
                self.backend.table_put(SCHEDULES_TABLE, spec.name, value, if_absent=True)
            else:
                self.backend.table_put(SCHEDULES_TABLE, spec.name, value, if_version=item.version)
        except ConditionalCheckFailed as exc:  # made by another call meanwhile
            raise ResourceAlreadyExists(f"Schedule {spec.name} already exists.") from exc
        self.backend.table_put(STATE_TABLE, spec.name, ScheduleState(created=now).to_dict())
        self.bump()

    def update(
        self, spec: ScheduleSpec, now: float, *, extras: Mapping[str, Any] | None = None
    ) -> None:
        """Replace a schedule as it runs (UpdateSchedule), and its `extras` if given; when its
        timing changed, or it is enabled again, it goes on from `now` (what fell due before
        is not owed)."""
        before = self.get(spec.name)
        timing = ("expression", "timezone", "start", "end")
        retimed = any(getattr(before, name) != getattr(spec, name) for name in timing)
        if retimed or (spec.enabled and not before.enabled):
            state = replace(self.state(spec.name), next_fire=None, done=False, resumed=now)
            self.save_state(spec.name, state)
        self.put(spec, extras=extras)

    def put(self, spec: ScheduleSpec, *, extras: Mapping[str, Any] | None = None) -> None:
        """Store a schedule as it should run now (enable, disable), keeping what was declared
        (and its extras, unless new ones are given)."""
        item = self.backend.table_get(SCHEDULES_TABLE, spec.name)
        if item is None:
            raise ResourceNotFound(f"Schedule {spec.name} does not exist.")
        value = {**item.value, "spec": spec.to_dict()}
        if extras is not None:
            value["extras"] = dict(extras)
        self.backend.table_put(SCHEDULES_TABLE, spec.name, value)
        self.bump()

    def delete(self, name: str) -> None:
        """Delete a schedule (its state stays, marked done, so a restart does not bring it
        back while its declaration is unchanged)."""
        item = self.backend.table_get(SCHEDULES_TABLE, name)
        if item is None:
            raise ResourceNotFound(f"Schedule {name} does not exist.")
        value = {**item.value, "spec": None}
        self.backend.table_put(SCHEDULES_TABLE, name, value)
        self.bump()

    def get(self, name: str) -> ScheduleSpec:
        """The schedule as it runs (ResourceNotFound if absent or deleted)."""
        item = self.backend.table_get(SCHEDULES_TABLE, name)
        if item is None or item.value.get("spec") is None:
            raise ResourceNotFound(f"Schedule {name} does not exist.")
        return ScheduleSpec.from_dict(item.value["spec"])

    def schedules(self) -> Iterator[ScheduleSpec]:
        """Every schedule that exists, by name."""
        for spec, _ in self.schedules_with_extras():
            yield spec

    def extras(self, name: str) -> dict[str, Any]:
        """What the API that made a schedule keeps beside it (empty for a declared one;
        ResourceNotFound if the schedule does not exist)."""
        item = self.backend.table_get(SCHEDULES_TABLE, name)
        if item is None or item.value.get("spec") is None:
            raise ResourceNotFound(f"Schedule {name} does not exist.")
        return dict(item.value.get("extras") or {})

    def schedules_with_extras(self) -> Iterator[tuple[ScheduleSpec, dict[str, Any]]]:
        """Every schedule that exists, by name, with its extras."""
        for item in self.backend.table_items(SCHEDULES_TABLE):
            if item.value.get("spec") is not None:
                spec = ScheduleSpec.from_dict(item.value["spec"])
                yield spec, dict(item.value.get("extras") or {})

    # -- state -----------------------------------------------------------------------------

    def state(self, name: str) -> ScheduleState:
        """A schedule's progress (a fresh one, created now, if none is stored)."""
        item = self.backend.table_get(STATE_TABLE, name)
        if item is None:
            return ScheduleState(created=self.backend.clock())
        return ScheduleState.from_dict(item.value)

    def states(self) -> dict[str, ScheduleState]:
        """Every schedule's progress, by name."""
        return {
            item.key: ScheduleState.from_dict(item.value)
            for item in self.backend.table_items(STATE_TABLE)
        }

    def save_state(self, name: str, state: ScheduleState) -> None:
        """Store a schedule's progress (only the leader writes it)."""
        self.backend.table_put(STATE_TABLE, name, state.to_dict())

    # -- occurrences -----------------------------------------------------------------------

    def record_occurrence(self, name: str, scheduled: float, value: Mapping[str, Any]) -> bool:
        """Record an occurrence once; True if this call recorded it (and so must fire it)."""
        key = f"{name}/{scheduled:015.3f}"
        try:
            self.backend.table_put(OCCURRENCES_TABLE, key, value, if_absent=True,
                                   ttl=OCCURRENCE_TTL)  # fmt: skip
            return True
        except ConditionalCheckFailed:
            return False

    def occurrences_after(self, name: str, after: float | None) -> list[tuple[float, float]]:
        """The (scheduled, fire_at) of the occurrences of `name` recorded after `after`."""
        start = "" if after is None else f"{name}/{after:015.3f}"
        return [
            (float(item.value["scheduled"]), float(item.value["fire_at"]))
            for item in self.backend.table_items(
                OCCURRENCES_TABLE, prefix=f"{name}/", start_after=start
            )
        ]

    # -- the catalog's generation ----------------------------------------------------------

    def generation(self) -> int:
        """A number that changes whenever a schedule is declared, changed or deleted."""
        item = self.backend.table_get(SCHEDULER_TABLE, GENERATION_KEY)
        return 0 if item is None else item.version

    def bump(self) -> None:
        """Tell the leader the schedules changed."""
        self.backend.table_put(SCHEDULER_TABLE, GENERATION_KEY, {})
