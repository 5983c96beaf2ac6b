"""Schedules on every backend: occurrences fire on time and once, whoever leads; a takeover
catches up, a long downtime does not burst; windows, one-time schedules, disabling, restarts,
retries and dead-letters — the scheduler driven tick by tick on a clock the test moves."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from fanstack.backends.base import Backend
from fanstack.bus.router import Retrier
from fanstack.core.errors import ResourceNotFound
from fanstack.core.rules import QUEUE, TargetSpec
from fanstack.core.schedules import ScheduleSpec
from fanstack.schedules.scheduler import RETRY_QUEUE, Lease, Plan, Scheduler, SchedulerClock
from fanstack.schedules.store import OCCURRENCES_TABLE, ScheduleStore

from .conftest import Clock, queue

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


class ManualClock(SchedulerClock):
    """Schedule time that moves only when the test says."""

    def __init__(self, now: float = T0) -> None:
        super().__init__()
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Leader:
    """One scheduler process: its scheduler, lease and plan, ticked by the test."""

    def __init__(self, backend: Backend, clock: ManualClock, **options: Any) -> None:
        self.backend = backend
        self.scheduler = Scheduler(clock, **options)
        self.lease = Lease(backend, self.scheduler.owner, self.scheduler.lease_seconds)
        self.plan: Plan | None = None

    def tick(self) -> None:
        self.plan = self.scheduler.tick_once(self.backend, self.lease, self.plan)


def declare(backend: Backend, clock: ManualClock, expression: str, **fields: Any) -> ScheduleSpec:
    queue(backend, "ticks")
    target = TargetSpec(id="schedule", kind=QUEUE, resource=fields.pop("queue", "ticks"),
                        **fields.pop("target", {}))  # fmt: skip
    spec = ScheduleSpec(name=fields.pop("name", "tick"), expression=expression, target=target,
                        **fields)  # fmt: skip
    backend.declare_queue(queue(backend, RETRY_QUEUE))
    ScheduleStore(backend).declare(spec, clock())
    return spec


def deliver(backend: Backend) -> int:
    """Attempt every queued delivery once, as the scheduler's retrier does."""
    retrier = Retrier("scheduler", queue=RETRY_QUEUE, name="scheduler-retrier")
    attempted = 0
    while batch := backend.receive(RETRY_QUEUE, max_messages=10, wait_seconds=0):
        for message in batch:
            retrier.attempt(backend, message)
            attempted += 1
    return attempted


def delivered(backend: Backend, name: str = "ticks") -> list[Any]:
    found = []
    while batch := backend.receive(name, max_messages=10, wait_seconds=0):
        found.extend(json.loads(m.body) for m in batch)
        backend.delete_messages(name, [m.receipt_handle for m in batch])
    return found


def run_minutes(leader: Leader, clock: ManualClock, minutes: int, step: float = 20) -> None:
    for _ in range(int(minutes * 60 / step)):
        clock.advance(step)
        leader.tick()


def test_a_rate_schedule_fires_at_creation_then_every_period_once(backend: Backend) -> None:
    clock = ManualClock()
    declare(backend, clock, "rate(5 minutes)", input='{"n": 1}')
    leader = Leader(backend, clock)
    leader.tick()
    run_minutes(leader, clock, 30)
    deliver(backend)
    assert delivered(backend) == [{"n": 1}] * 7  # at 0, 5, ..., 30 minutes
    state = ScheduleStore(backend).state("tick")
    assert state.fired == 7 and state.last_fire == T0 + 30 * 60
    assert state.next_fire == T0 + 35 * 60


def test_only_the_lease_holder_fires_and_a_takeover_catches_up_each_occurrence_once(
    backend: Backend,
) -> None:
    clock = ManualClock()
    declare(backend, clock, "rate(1 minute)")
    first = Leader(backend, clock, lease_seconds=0.3, failover_limit=30)
    second = Leader(backend, clock, lease_seconds=0.3, failover_limit=30)
    for _ in range(10):
        clock.advance(60)
        first.tick()
        second.tick()
    assert first.lease.held and not second.lease.held
    # The leader dies: for a moment nobody fires while schedule time goes on.
    clock.advance(5 * 60)
    time.sleep(0.4)
    second.tick()
    assert second.lease.held
    deliver(backend)
    assert len(delivered(backend)) == 16  # minutes 0 to 15, each once
    assert ScheduleStore(backend).state("tick").skipped == 0


def test_an_occurrence_is_recorded_once_so_a_stale_leader_cannot_fire_it_again(
    backend: Backend,
) -> None:
    clock = ManualClock()
    spec = declare(backend, clock, "rate(1 hour)")
    store = ScheduleStore(backend)
    old, new = Scheduler(clock), Scheduler(clock)
    fired = new.fire(backend, store, spec, T0, clock())
    assert fired is not None
    new.hand_over(backend, [fired])
    assert old.fire(backend, store, spec, T0, clock()) is None
    deliver(backend)
    assert len(delivered(backend)) == 1
    assert len(list(backend.table_items(OCCURRENCES_TABLE))) == 1


def test_after_a_long_downtime_the_missed_occurrences_fire_once_as_one(backend: Backend) -> None:
    clock = ManualClock()
    declare(backend, clock, "rate(1 minute)")
    before = Leader(backend, clock, lease_seconds=0.1, failover_limit=0.2)
    before.tick()
    before.scheduler_stops = before.lease.release()  # type: ignore[func-returns-value]
    time.sleep(0.3)
    clock.advance(3 * 3600 + 30)  # three hours without a scheduler
    after = Leader(backend, clock, lease_seconds=0.1, failover_limit=0.2)
    after.tick()
    deliver(backend)
    assert len(delivered(backend)) == 2  # the one at creation, and one for the 180 missed
    state = ScheduleStore(backend).state("tick")
    assert (state.fired, state.skipped) == (2, 179)
    assert state.next_fire == T0 + 181 * 60


def test_missed_occurrences_older_than_the_maximum_event_age_are_all_skipped(
    backend: Backend,
) -> None:
    clock = ManualClock()
    declare(backend, clock, "cron(0 3 * * ? *)", target={"maximum_event_age": 60})
    before = Leader(backend, clock, lease_seconds=0.1, failover_limit=0.2)
    before.tick()
    before.lease.release()
    time.sleep(0.3)
    clock.advance(2 * 86_400)  # two 03:00 occurrences pass, the latest 15 hours ago
    after = Leader(backend, clock, lease_seconds=0.1, failover_limit=0.2)
    after.tick()
    deliver(backend)
    assert delivered(backend) == []
    assert ScheduleStore(backend).state("tick").skipped == 2


def test_a_flexible_window_puts_each_occurrence_inside_it(
    backend: Backend, clock: Clock
) -> None:
    schedule_clock = ManualClock()
    declare(backend, schedule_clock, "rate(1 hour)", flexible_window_minutes=15)
    queued_at = backend.clock()
    Leader(backend, schedule_clock).tick()
    (record,) = [item.value for item in backend.table_items(OCCURRENCES_TABLE)]
    assert record["scheduled"] == T0
    assert T0 <= record["fire_at"] <= T0 + 15 * 60
    assert deliver(backend) == 0  # held back until its moment in the window
    clock.advance(15 * 60 + 1)
    (message,) = backend.receive(RETRY_QUEUE, max_messages=10, wait_seconds=0)
    waiting = json.loads(message.body)["not_before"] - queued_at
    assert abs(waiting - (record["fire_at"] - T0)) < 2


def test_a_one_time_schedule_fires_once_in_its_zone_and_delete_removes_it(
    backend: Backend,
) -> None:
    clock = ManualClock()
    declare(backend, clock, "at(2026-03-01T14:30:00)", timezone="Europe/Berlin",
            action_after_completion="DELETE")  # fmt: skip
    leader = Leader(backend, clock)
    run_minutes(leader, clock, 60)  # 13:30 in Berlin: not yet
    assert ScheduleStore(backend).state("tick").fired == 0
    run_minutes(leader, clock, 60)
    deliver(backend)
    assert delivered(backend) == [{}]
    with pytest.raises(ResourceNotFound):
        ScheduleStore(backend).get("tick")
    run_minutes(leader, clock, 120)
    assert delivered(backend) == []


def test_a_disabled_schedule_does_not_fire_and_enabling_it_does_not_catch_up(
    backend: Backend,
) -> None:
    from fanstack.schedules import Schedule

    clock = ManualClock()
    declare(backend, clock, "rate(10 minutes)")
    leader = Leader(backend, clock)
    leader.tick()
    schedule = Schedule("tick", lambda: backend)
    schedule.disable()
    run_minutes(leader, clock, 60)
    deliver(backend)
    assert len(delivered(backend)) == 1
    resumed = SchedulerClock.from_environment()
    clock.now = resumed()  # enabling reads the (real) schedule time: go on from there
    schedule.enable()
    leader.tick()
    run_minutes(leader, clock, 30)
    deliver(backend)
    assert 2 <= len(delivered(backend)) <= 4  # every 10 minutes from now, no backlog


def test_a_new_process_goes_on_from_the_stored_progress(backend: Backend) -> None:
    clock = ManualClock()
    declare(backend, clock, "rate(1 minute)")
    leader = Leader(backend, clock, lease_seconds=0.1)
    run_minutes(leader, clock, 5)
    leader.lease.release()
    restarted = Leader(backend, clock, lease_seconds=0.1)
    restarted.tick()
    run_minutes(restarted, clock, 5)
    deliver(backend)
    assert len(delivered(backend)) == 11  # minutes 0 to 10, none twice
    assert ScheduleStore(backend).state("tick").fired == 11


def test_a_delivery_that_cannot_succeed_goes_to_the_dead_letter_queue(backend: Backend) -> None:
    clock = ManualClock()
    queue(backend, "schedule-dlq")
    declare(backend, clock, "rate(1 hour)", queue="missing",
            target={"dead_letter": "schedule-dlq"})  # fmt: skip
    Leader(backend, clock).tick()
    deliver(backend)
    (message,) = backend.receive("schedule-dlq", max_messages=10, wait_seconds=0)
    attributes = {k: v.string_value for k, v in message.message_attributes.items()}
    assert attributes["RULE_ARN"].endswith(":schedule/default/tick")
    assert attributes["ERROR_CODE"] == "NO_RESOURCE"
    assert json.loads(message.body)["detail-type"] == "Scheduled Event"


def test_occurrences_a_dead_leader_recorded_but_did_not_hand_over_are_delivered_once(
    backend: Backend,
) -> None:
    clock = ManualClock()
    spec = declare(backend, clock, "rate(1 minute)")
    store = ScheduleStore(backend)
    dying = Scheduler(clock)
    # It records two occurrences, then dies before queuing them or saving its progress.
    assert dying.fire(backend, store, spec, T0, clock()) is not None
    assert dying.fire(backend, store, spec, T0 + 60, clock()) is not None
    clock.advance(90)
    Leader(backend, clock).tick()
    deliver(backend)
    assert len(delivered(backend)) == 2  # each recorded occurrence once, none fired again
    state = store.state("tick")
    assert (state.fired, state.last_fire, state.next_fire) == (2, T0 + 60, T0 + 120)
