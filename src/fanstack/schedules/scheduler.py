"""The scheduler: a worker service in every process; the one holding the lease fires schedules.

Leadership is a lease in the backend (`fanstack-scheduler`/`leader`): the leader renews it every
tick with a conditional write; another process takes it once it has not been renewed for
`LEASE_SECONDS`, so a dead leader is replaced within seconds. Every occurrence is recorded once,
keyed by (schedule, scheduled time), before it is delivered: a leader that lost its lease
without knowing, a restart or a clock step can never fire an occurrence twice; delivery is then
at-least-once, with the target's retry policy and dead-letter queue (`Retrier` on the
scheduler's retry queue).

Catching up. A leader that took over within `FAILOVER_LIMIT` of the last renewal fires every
occurrence that fell due meanwhile, each once, late. After a longer downtime, the occurrences a
schedule missed fire once, as one: the latest of them, if it is still inside the schedule's
flexible window (or, without a window, the target's maximum event age); the others are skipped
and counted (state `skipped`, and a log line) — never a burst of catch-up fires.

The clock: `SchedulerClock` reads the time; `FANSTACK_SCHEDULER_CLOCK_RATE` (with
`FANSTACK_SCHEDULER_CLOCK_ORIGIN`, seconds since the epoch, shared by every process) makes the
schedules' time run that many times faster than real time, for demonstrations and tests of
long schedules; leases, retries and queues keep real time.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import logging
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from fanstack.backends.base import Backend
from fanstack.bus.delivery import Delivery, queue_deliveries
from fanstack.core.errors import ConditionalCheckFailed, FanstackError
from fanstack.core.schedule_expression import ScheduleExpression
from fanstack.core.schedules import ScheduleSpec
from fanstack.schedules.delivery import scheduled_delivery
from fanstack.schedules.store import (
    LEADER_KEY,
    SCHEDULER_TABLE,
    ScheduleState,
    ScheduleStore,
)

log = logging.getLogger("fanstack.schedules")

LEASE_SECONDS = 5.0  # real seconds a leader may go without renewing
TICK = 0.5  # real seconds between two looks at what is due
FAILOVER_LIMIT = 30.0  # real seconds: a takeover sooner than this catches up every occurrence
MAX_SKIPPED_COUNTED = 100_000  # a longer downtime's skipped occurrences are counted up to this
RETRY_QUEUE = "fanstack-scheduler-retry"
HAND_OVER_BATCH = 500  # occurrences queued for delivery in one write
HOST = socket.gethostname()
RATE_ENV, ORIGIN_ENV = "FANSTACK_SCHEDULER_CLOCK_RATE", "FANSTACK_SCHEDULER_CLOCK_ORIGIN"


class SchedulerClock:
    """The schedules' time: real time, or real time sped up `rate` times from `origin`."""

    def __init__(self, rate: float = 1.0, origin: float | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"{RATE_ENV} must be positive, not {rate}")
        self.rate = rate
        self.origin = time.time() if origin is None else origin

    @classmethod
    def from_environment(cls) -> SchedulerClock:
        """The clock `FANSTACK_SCHEDULER_CLOCK_RATE` / `_ORIGIN` ask for (real time if unset)."""
        rate = os.environ.get(RATE_ENV)
        if not rate:
            return cls()
        origin = os.environ.get(ORIGIN_ENV)
        return cls(float(rate), float(origin) if origin else None)

    def __call__(self) -> float:
        real = time.time()
        return real if self.rate == 1.0 else self.origin + (real - self.origin) * self.rate

    def real_seconds(self, seconds: float) -> float:
        """How many real seconds `seconds` of schedule time take."""
        return seconds / self.rate


class Lease:
    """The scheduler's leadership: one process at a time, taken over when it goes stale."""

    def __init__(self, backend: Backend, owner: str, seconds: float = LEASE_SECONDS) -> None:
        self.backend = backend
        self.owner = owner
        self.seconds = seconds
        self.held = False

    def hold(self) -> tuple[bool, float | None]:
        """Take or renew the lease: (leading now, real seconds since the previous holder's last
        renewal when this call took it over, None if none held it or it was ours)."""
        now = time.time()
        item = self.backend.table_get(SCHEDULER_TABLE, LEADER_KEY)
        ours = item is not None and item.value.get("owner") == self.owner
        free = item is None or item.value.get("released") or (
            item.value["alive_at"] + self.seconds <= now
        )
        if not ours and not free:
            self.held = False
            return False, None
        value = {"owner": self.owner, "alive_at": now, "host": HOST, "pid": os.getpid()}
        try:
            if item is None:
                self.backend.table_put(SCHEDULER_TABLE, LEADER_KEY, value, if_absent=True)
            else:
                self.backend.table_put(SCHEDULER_TABLE, LEADER_KEY, value, if_version=item.version)
        except ConditionalCheckFailed:  # another process took it (or renewed it) first
            self.held = False
            return False, None
        self.held = True
        if ours or item is None:
            return True, None
        return True, now - float(item.value["alive_at"])

    def release(self) -> None:
        """Give the lease up at once (a stopping leader), so another takes over without delay;
        its last renewal stays, so the next leader knows how long nobody led."""
        if not self.held:
            return
        item = self.backend.table_get(SCHEDULER_TABLE, LEADER_KEY)
        if item is not None and item.value.get("owner") == self.owner:
            released = {**item.value, "released": True}
            with contextlib.suppress(ConditionalCheckFailed):  # taken over meanwhile
                self.backend.table_put(SCHEDULER_TABLE, LEADER_KEY, released,
                                       if_version=item.version)  # fmt: skip
        self.held = False


def current_leader(
    backend: Backend, *, now: float | None = None, seconds: float = LEASE_SECONDS
) -> dict[str, Any] | None:
    """The lease of the scheduler leading now (`owner`, `host`, `pid`, `alive_at`), or None
    when no process holds it (never taken, released, or not renewed for `seconds`)."""
    item = backend.table_get(SCHEDULER_TABLE, LEADER_KEY)
    now = time.time() if now is None else now
    if item is None or item.value.get("released") or item.value["alive_at"] + seconds <= now:
        return None
    return dict(item.value)


@dataclass
class Plan:
    """What the leader knows: the schedules, their progress, and a heap of what is due next."""

    generation: int
    specs: dict[str, ScheduleSpec]
    states: dict[str, ScheduleState]
    parsed: dict[str, ScheduleExpression]
    due: list[tuple[float, str]]
    loaded_at: float  # schedule time
    after_downtime: bool


class Scheduler:
    """Fires every schedule of the backend on time, while this process holds the lease."""

    name = "scheduler"

    def __init__(
        self,
        clock: SchedulerClock | None = None,
        *,
        lease_seconds: float = LEASE_SECONDS,
        failover_limit: float = FAILOVER_LIMIT,
        tick: float = TICK,
    ) -> None:
        self.clock = clock or SchedulerClock.from_environment()
        self.owner = uuid.uuid4().hex
        self.rng = random.Random()
        self.lease_seconds = lease_seconds
        self.failover_limit = failover_limit
        self.tick = tick

    def run(self, backend: Backend, stopping: threading.Event) -> None:
        """Lead (or wait to lead) until stopped."""
        lease = Lease(backend, self.owner, self.lease_seconds)
        plan: Plan | None = None
        try:
            while not stopping.is_set():
                plan = self.tick_once(backend, lease, plan)
                stopping.wait(self.tick)
        finally:
            lease.release()

    def tick_once(self, backend: Backend, lease: Lease, plan: Plan | None) -> Plan | None:
        """One look: hold the lease, and if this process leads, fire what is due; the plan."""
        store = ScheduleStore(backend)
        try:
            leading, gap = lease.hold()
            if not leading:
                return None
            if gap is not None or plan is None:  # it has just taken the lead
                plan = self.load(store, gap is not None and gap > self.failover_limit)
                self.recover(backend, store, plan)
            elif plan.generation != store.generation():
                plan = self.load(store, after_downtime=False)
            self.fire_due(backend, store, plan)
        except FanstackError:
            log.exception("the scheduler's tick failed; it tries again")
        return plan

    def load(self, store: ScheduleStore, after_downtime: bool) -> Plan:
        """Read every schedule and its progress; work out when each fires next."""
        generation = store.generation()
        specs = {spec.name: spec for spec in store.schedules()}
        states = store.states()
        now = self.clock()
        plan = Plan(generation, specs, states, {}, [], now, after_downtime)
        for name, spec in specs.items():
            state = states.get(name) or ScheduleState(created=now)
            states[name] = state
            plan.parsed[name] = spec.parsed()
            if not spec.enabled or state.done:
                continue
            following = state.next_fire
            if following is None:
                after = max(state.last_fire or 0.0, state.resumed or 0.0) or None
                following = self.next_fire(plan, spec, state, after)
            if following is not None:
                plan.due.append((following, name))
        heapq.heapify(plan.due)
        return plan

    def next_fire(
        self, plan: Plan, spec: ScheduleSpec, state: ScheduleState, after: float | None
    ) -> float | None:
        """The schedule's first occurrence after `after` (None: from its creation)."""
        fires = spec.fire_times(state.created, after, 1, plan.parsed[spec.name])
        return fires[0].timestamp() if fires else None

    def fire_due(self, backend: Backend, store: ScheduleStore, plan: Plan) -> None:
        """Fire what is due now (each occurrence once) and note each schedule's progress.

        Occurrences are recorded one by one (the record decides who fires), then handed to
        delivery together and the schedules' progress saved; a leader that dies in between
        leaves occurrences recorded after the saved progress, which the next one queues again
        (`recover`): delivery stays at-least-once.
        """
        now = self.clock()
        handed: list[tuple[Delivery, float]] = []
        progress: list[tuple[ScheduleSpec, ScheduleState, bool]] = []
        while plan.due and plan.due[0][0] <= now:
            scheduled, name = heapq.heappop(plan.due)
            spec, state = plan.specs[name], plan.states[name]
            occurrences, skipped, last = self.overdue(spec, state, scheduled, now, plan)
            fired = [self.fire(backend, store, spec, moment, now) for moment in occurrences]
            handed.extend(pending for pending in fired if pending is not None)
            following = self.next_fire(plan, spec, state, last)
            if skipped:
                log.warning("schedule %s missed %d occurrence(s) while no scheduler ran; they "
                            "were skipped", name, skipped)  # fmt: skip
            state = replace(state, last_fire=last, next_fire=following,
                            fired=state.fired + sum(p is not None for p in fired),
                            skipped=state.skipped + skipped, done=following is None)  # fmt: skip
            plan.states[name] = state
            progress.append((spec, state, following is None))
            if following is not None:
                heapq.heappush(plan.due, (following, name))
            if len(handed) >= HAND_OVER_BATCH or len(progress) >= HAND_OVER_BATCH:
                self.settle(backend, store, plan, handed, progress)
        self.settle(backend, store, plan, handed, progress)

    def settle(
        self,
        backend: Backend,
        store: ScheduleStore,
        plan: Plan,
        handed: list[tuple[Delivery, float]],
        progress: list[tuple[ScheduleSpec, ScheduleState, bool]],
    ) -> None:
        """Queue the recorded occurrences for delivery, then save the schedules' progress."""
        self.hand_over(backend, handed)
        for spec, state, finished in progress:
            store.save_state(spec.name, state)
            if finished and spec.action_after_completion == "DELETE":
                store.delete(spec.name)
                plan.generation = store.generation()
        handed.clear()
        progress.clear()

    def overdue(
        self, spec: ScheduleSpec, state: ScheduleState, first: float, now: float, plan: Plan
    ) -> tuple[list[float], int, float]:
        """The occurrences to fire from `first` on, up to now; how many are skipped; and the
        last of them all (the schedule goes on after it)."""
        due = [first]
        while (
            following := self.next_fire(plan, spec, state, due[-1])
        ) is not None and following <= now:
            due.append(following)
            if len(due) >= MAX_SKIPPED_COUNTED:
                break
        if not plan.after_downtime or first >= plan.loaded_at:
            return due, 0, due[-1]
        window = spec.flexible_window_minutes
        tolerance = window * 60 if window else spec.target.maximum_event_age
        kept = [moment for moment in due if moment >= now - tolerance][-1:]
        return kept, len(due) - len(kept), due[-1]

    def fire(
        self, backend: Backend, store: ScheduleStore, spec: ScheduleSpec, scheduled: float,
        now: float,
    ) -> tuple[Delivery, float] | None:  # fmt: skip
        """Record one occurrence, if nobody has: its delivery and delay, to hand over."""
        window = spec.flexible_window_minutes
        fire_at = scheduled + (self.rng.uniform(0, window * 60) if window else 0.0)
        record = {"scheduled": scheduled, "fire_at": fire_at, "leader": self.owner}
        if not store.record_occurrence(spec.name, scheduled, record):
            return None  # an earlier leader fired it
        return self.delivery(backend, spec, scheduled, fire_at, now)

    def delivery(
        self, backend: Backend, spec: ScheduleSpec, scheduled: float, fire_at: float, now: float
    ) -> tuple[Delivery, float]:
        """The delivery of a recorded occurrence, and how long (real seconds) it waits."""
        occurrence = hashlib.sha256(f"{spec.name}|{scheduled}".encode()).hexdigest()[:32]
        delay = max(0.0, self.clock.real_seconds(fire_at - now))
        not_before = backend.clock() + delay
        return scheduled_delivery(spec, occurrence, scheduled, not_before), delay

    def hand_over(self, backend: Backend, handed: list[tuple[Delivery, float]]) -> None:
        """Queue recorded occurrences for the scheduler's retrier, together (raises: the next
        leader queues them again from their records)."""
        for start in range(0, len(handed), HAND_OVER_BATCH):
            queue_deliveries(backend, RETRY_QUEUE, handed[start : start + HAND_OVER_BATCH])

    def recover(self, backend: Backend, store: ScheduleStore, plan: Plan) -> None:
        """Queue again the occurrences an earlier leader recorded but may not have handed over
        (recorded after the progress it saved), and move that progress past them."""
        now = self.clock()
        handed: list[tuple[Delivery, float]] = []
        progress: list[tuple[ScheduleSpec, ScheduleState, bool]] = []
        for following, name in plan.due:
            if following > now:
                continue
            spec, state = plan.specs[name], plan.states[name]
            recorded = store.occurrences_after(name, state.last_fire)
            if not recorded:
                continue
            for scheduled, fire_at in recorded:
                handed.append(self.delivery(backend, spec, scheduled, fire_at, now))
            last = recorded[-1][0]
            following_fire = self.next_fire(plan, spec, state, last)
            state = replace(state, last_fire=last, next_fire=following_fire,
                            fired=state.fired + len(recorded),
                            done=following_fire is None)  # fmt: skip
            plan.states[name] = state
            progress.append((spec, state, following_fire is None))
            log.warning("schedule %s: %d recorded occurrence(s) queued again after a leader "
                        "change", name, len(recorded))  # fmt: skip
        if progress:
            moved = {spec.name for spec, _, _ in progress}
            self.settle(backend, store, plan, handed, progress)
            kept = [(due, name) for due, name in plan.due if name not in moved]
            again = [(plan.states[name].next_fire, name) for name in moved]
            plan.due = kept + [(due, name) for due, name in again if due is not None]
            heapq.heapify(plan.due)
