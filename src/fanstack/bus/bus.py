"""The event bus a user touches: `Bus`, its `Rule`s and `Archive`s, and `Buses`, the capability.

`app.bus(name)` declares a bus; `bus.rule(...)` and `bus.archive(...)` declare its rules and
archives, stored in the backend's catalog when it opens (or at once if it is open), so the app
code is the stack, and every process sees rules enabled, disabled, changed or deleted by any.
`bus.put_events` stores events durably in the bus's ingress queue and returns; the worker role
routes them (`bus/router.py`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fanstack.backends.base import Backend
from fanstack.bus.catalog import Catalog
from fanstack.bus.delivery import retry_queue
from fanstack.bus.discovery import StoredBuses
from fanstack.bus.replay import REPLAY_QUEUE, Replayer, cancel_replay, start_replay
from fanstack.bus.router import Retrier, Router
from fanstack.bus.targets import target_spec
from fanstack.core.archives import ArchiveSpec, ReplaySpec
from fanstack.core.errors import FanstackError, ValidationException
from fanstack.core.event_pattern import EventPattern
from fanstack.core.events import EntryError, EventEntry, check_request, ingress_queue, make_event
from fanstack.core.message import OutgoingMessage
from fanstack.core.rules import (
    BUS,
    MAX_RULES_PER_BUS,
    RuleSpec,
    bus_arn,
    check_bus_name,
    scheduled_rule_pattern,
)
from fanstack.core.specs import QueueSpec
from fanstack.runtime.services import Service

INTERNAL_QUEUE_SIZE = 1024 * 1024  # an event (256 KiB) plus its rendered input and envelope
INTERNAL_RETENTION = 14 * 86_400  # longer than any target's maximum_event_age


@dataclass(frozen=True, slots=True)
class PutEventsEntry:
    """The result of one PutEvents entry: its event id, or an error code and message."""

    event_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class PutEventsResult:
    """PutEvents' answer: one result per entry, in order, and how many failed."""

    entries: list[PutEventsEntry] = field(default_factory=list)

    @property
    def failed_entry_count(self) -> int:
        """How many entries were not accepted."""
        return sum(1 for entry in self.entries if entry.event_id is None)


class Buses:
    """Every bus an app declares (the bus capability: provisioning and worker services)."""

    def __init__(self, backend: Callable[[], Backend], opened: Callable[[], Backend | None]):
        self._backend = backend
        self._opened = opened
        self.declared: dict[str, Bus] = {}
        self._lock = threading.Lock()
        # Set by the app: declares a scheduled rule's schedule once the backend is open.
        self.on_scheduled_rule: Callable[[RuleSpec], None] | None = None

    def bus(self, name: str, *, max_rules: int = MAX_RULES_PER_BUS) -> Bus:
        """Declare a bus (or return the one declared under that name)."""
        check_bus_name(name)
        with self._lock:
            bus = self.declared.get(name)
            if bus is None:
                bus = self.declared[name] = Bus(
                    name, self._backend, max_rules=max_rules, scheduled=self._scheduled
                )
            bus.max_rules = max_rules
        backend = self._opened()
        if backend is not None:
            bus.provision(backend)
        return bus

    def provision(self, backend: Backend) -> None:
        """Create every declared bus, its queues, rules and archives."""
        for bus in list(self.declared.values()):
            bus.provision(backend)

    def services(self) -> list[Service]:
        """A router and a retrier per bus, one replayer, and the loops of the buses made at
        run time (`StoredBuses`)."""
        services: list[Service] = []
        for name in self.declared:
            services.extend([Router(name), Retrier(name)])
        if self.declared:
            services.append(Replayer())
        services.append(StoredBuses(lambda: list(self.declared), replayer=not self.declared))
        return services

    def _scheduled(self, rule: RuleSpec) -> None:
        if self.on_scheduled_rule is not None:
            self.on_scheduled_rule(rule)

    def scheduled_rules(self) -> list[RuleSpec]:
        """The declared rules that fire on a schedule (the schedule capability runs them)."""
        return [
            rule
            for bus in self.declared.values()
            for rule in bus.declared_rules()
            if rule.schedule_expression is not None
        ]


class Bus:
    """An event bus (EventBridge): put events; its rules route them to targets."""

    kind = BUS

    def __init__(
        self,
        name: str,
        backend: Callable[[], Backend],
        *,
        max_rules: int = MAX_RULES_PER_BUS,
        scheduled: Callable[[RuleSpec], None] | None = None,
    ) -> None:
        self.name = name
        self._scheduled = scheduled
        self.max_rules = max_rules
        self.arn = bus_arn(name)
        self._backend = backend
        self._rules: dict[str, RuleSpec] = {}
        self._archives: dict[str, ArchiveSpec] = {}
        self._provisioned: Backend | None = None

    def __repr__(self) -> str:
        return f"Bus({self.name!r})"

    def provision(self, backend: Backend) -> None:
        """Create the bus's queues and catalog entries, and store its declared rules/archives."""
        for queue in (ingress_queue(self.name), retry_queue(self.name), REPLAY_QUEUE):
            backend.declare_queue(
                QueueSpec(
                    name=queue,
                    visibility_timeout=60,
                    retention=INTERNAL_RETENTION,
                    max_message_size=INTERNAL_QUEUE_SIZE,
                )
            )
        catalog = Catalog(backend)
        catalog.put_bus(self.name, max_rules=self.max_rules)
        for rule in list(self._rules.values()):
            catalog.declare_rule(rule)
        for archive in list(self._archives.values()):
            catalog.put_archive(archive)
        self._provisioned = backend

    @property
    def catalog(self) -> Catalog:
        """The catalog of the backend (opened, with the bus provisioned, on first use)."""
        backend = self._backend()
        if self._provisioned is not backend:
            self.provision(backend)
        return Catalog(backend)

    # -- events --------------------------------------------------------------------------

    def put_events(self, entries: Sequence[EventEntry | Mapping[str, Any]]) -> PutEventsResult:
        """Store 1-10 events durably; per-entry results (PutEvents)."""
        parsed = [e if isinstance(e, EventEntry) else EventEntry.from_dict(e) for e in entries]
        check_request(parsed)
        backend = self.catalog.backend
        now = backend.clock()
        results: list[PutEventsEntry] = []
        messages: list[tuple[int, OutgoingMessage]] = []
        for entry in parsed:
            try:
                event = make_event(entry, event_id=str(uuid.uuid4()), now=now)
            except EntryError as error:
                results.append(PutEventsEntry(error_code=error.code, error_message=str(error)))
                continue
            body = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
            messages.append((len(results), OutgoingMessage(id=event["id"], body=body)))
            results.append(PutEventsEntry(event_id=event["id"]))
        if messages:
            outcomes = backend.send(ingress_queue(self.name), [m for _, m in messages])
            for (position, _), outcome in zip(messages, outcomes, strict=True):
                if isinstance(outcome, FanstackError):
                    results[position] = PutEventsEntry(
                        error_code=outcome.code, error_message=str(outcome)
                    )
        return PutEventsResult(results)

    def put_event(
        self,
        source: str,
        detail_type: str,
        detail: Mapping[str, Any] | str,
        *,
        resources: Sequence[str] = (),
        time: datetime | str | float | None = None,
    ) -> str:
        """Put one event; its id (raises ValidationException if it was not accepted)."""
        entry = EventEntry(
            source=source, detail_type=detail_type, detail=detail, resources=resources, time=time
        )
        [result] = self.put_events([entry]).entries
        if result.event_id is None:
            raise ValidationException(f"{result.error_code}: {result.error_message}")
        return result.event_id

    # -- rules ---------------------------------------------------------------------------

    def rule(
        self,
        name: str,
        *,
        event_pattern: Mapping[str, Any] | str | None = None,
        targets: Sequence[Any] = (),
        enabled: bool = True,
        description: str | None = None,
        schedule_expression: str | None = None,
    ) -> Rule:
        """Declare (or replace) a rule: events matching `event_pattern`, or, with a
        `schedule_expression` (`rate(...)`/`cron(...)`, UTC), a scheduled event on that
        schedule, go to up to 5 targets."""
        if (event_pattern is None) == (schedule_expression is None):
            raise ValidationException(
                f"rule {name!r}: give an event_pattern or a schedule_expression (fanstack "
                "rules take one or the other)"
            )
        pattern = (
            EventPattern.parse(event_pattern).to_json()
            if event_pattern is not None
            else scheduled_rule_pattern(self.name, name)
        )
        spec = RuleSpec(
            bus=self.name,
            name=name,
            event_pattern=pattern,
            targets=tuple(target_spec(target) for target in targets),
            enabled=enabled,
            description=description,
            schedule_expression=schedule_expression,
        )
        self._rules[name] = spec
        if self._provisioned is not None:
            Catalog(self._provisioned).declare_rule(spec)
            if spec.schedule_expression is not None and self._scheduled is not None:
                self._scheduled(spec)
        return Rule(self, name)

    def declared_rules(self) -> list[RuleSpec]:
        """The rules this app's code declares (as declared; `rules()` reads the store)."""
        return list(self._rules.values())

    def declared_archives(self) -> list[ArchiveSpec]:
        """The archives this app's code declares."""
        return list(self._archives.values())

    def rules(self) -> list[RuleSpec]:
        """Every rule of the bus as stored (declared here or by any process)."""
        return self.catalog.rules(self.name)

    def describe_rule(self, name: str) -> RuleSpec:
        """One rule as stored (ResourceNotFound if absent)."""
        return self.catalog.rule(self.name, name)

    def put_rule(self, spec: RuleSpec) -> None:
        """Store a rule as given (enable, disable, update)."""
        self.catalog.put_rule(spec)

    def delete_rule(self, name: str) -> None:
        """Delete a rule (ResourceNotFound if absent)."""
        self._rules.pop(name, None)
        self.catalog.delete_rule(self.name, name)

    # -- archives ------------------------------------------------------------------------

    def archive(
        self,
        name: str,
        *,
        event_pattern: Mapping[str, Any] | str | None = None,
        retention_days: int = 0,
        description: str | None = None,
    ) -> Archive:
        """Declare an archive of this bus's events (those matching `event_pattern`, or all)."""
        pattern = None if event_pattern is None else EventPattern.parse(event_pattern).to_json()
        spec = ArchiveSpec(
            name=name,
            bus=self.name,
            event_pattern=pattern,
            retention_days=retention_days,
            description=description,
        )
        self._archives[name] = spec
        if self._provisioned is not None:
            Catalog(self._provisioned).put_archive(spec)
        return Archive(self, name)

    def archives(self) -> list[ArchiveSpec]:
        """Every archive of this bus."""
        return self.catalog.archives(self.name)


class Rule:
    """A rule of a bus, as stored: enable, disable, update or delete it."""

    def __init__(self, bus: Bus, name: str) -> None:
        self.bus = bus
        self.name = name

    def __repr__(self) -> str:
        return f"Rule({self.bus.name!r}, {self.name!r})"

    @property
    def spec(self) -> RuleSpec:
        """The rule as stored now."""
        return self.bus.describe_rule(self.name)

    def enable(self) -> None:
        """Route matching events again."""
        self.bus.put_rule(self.spec.with_enabled(True))

    def disable(self) -> None:
        """Stop routing events to the targets (events put meanwhile are not routed to them)."""
        self.bus.put_rule(self.spec.with_enabled(False))

    def update(
        self,
        *,
        event_pattern: Mapping[str, Any] | str | None = None,
        targets: Sequence[Any] | None = None,
        description: str | None = None,
    ) -> None:
        """Change the pattern, the targets or the description."""
        current = self.spec
        self.bus.put_rule(
            RuleSpec(
                bus=current.bus,
                name=current.name,
                event_pattern=current.event_pattern
                if event_pattern is None
                else EventPattern.parse(event_pattern).to_json(),
                targets=current.targets
                if targets is None
                else tuple(target_spec(t) for t in targets),
                enabled=current.enabled,
                description=current.description if description is None else description,
            )
        )

    def delete(self) -> None:
        """Delete the rule."""
        self.bus.delete_rule(self.name)


class Archive:
    """An archive of a bus: replay a time window of its events."""

    def __init__(self, bus: Bus, name: str) -> None:
        self.bus = bus
        self.name = name

    def __repr__(self) -> str:
        return f"Archive({self.name!r})"

    @property
    def spec(self) -> ArchiveSpec:
        """The archive as stored."""
        return self.bus.catalog.archive(self.name)

    def events(self) -> list[dict[str, Any]]:
        """The archived events, in event-time order."""
        return [dict(event) for _, event in self.bus.catalog.archived(self.name, "", "~")]

    def replay(
        self,
        name: str,
        start: datetime | float,
        end: datetime | float,
        *,
        rules: Sequence[str] | None = None,
    ) -> Replay:
        """Re-send the events archived between `start` and `end` to the bus (StartReplay)."""
        backend = self.bus.catalog.backend
        start_replay(backend, name, self.name, _epoch(start), _epoch(end), rules)
        return Replay(backend, name)


class Replay:
    """A replay: its state and progress, cancel it, wait for it."""

    def __init__(self, backend: Backend, name: str) -> None:
        self.backend = backend
        self.name = name

    def __repr__(self) -> str:
        return f"Replay({self.name!r})"

    def describe(self) -> ReplaySpec:
        """State, progress and counts (DescribeReplay)."""
        return Catalog(self.backend).replay_item(self.name)[0]

    def cancel(self) -> ReplaySpec:
        """Stop the replay (CancelReplay)."""
        return cancel_replay(self.backend, self.name)

    def wait(self, timeout: float = 60.0, interval: float = 0.1) -> ReplaySpec:
        """Wait until the replay ends; its final record (TimeoutError past `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            replay = self.describe()
            if replay.done:
                return replay
            if time.monotonic() > deadline:
                raise TimeoutError(f"replay {self.name!r} is still {replay.state}")
            time.sleep(interval)


def _epoch(moment: datetime | float) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)
