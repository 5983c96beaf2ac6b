"""Archives and replays of an event bus (EventBridge): specs, states and the archive's order, pure.

An archive keeps the events of its bus that match its pattern, for `retention_days` (0: for
ever). A replay re-sends the archived events of a time window to the bus, in event-time order in
one-minute slices, each marked with `replay-name`; its progress is the time of the last event
replayed. States follow EventBridge: STARTING, RUNNING, CANCELLING, COMPLETED, CANCELLED, FAILED.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from fanstack.core.errors import ValidationException
from fanstack.core.event_pattern import EventPattern
from fanstack.core.events import iso_seconds
from fanstack.core.rules import check_bus_name

MAX_DESCRIPTION_LENGTH = 512
SLICE_SECONDS = 60
STARTING, RUNNING, CANCELLING = "STARTING", "RUNNING", "CANCELLING"
COMPLETED, CANCELLED, FAILED = "COMPLETED", "CANCELLED", "FAILED"
FINAL_STATES = (COMPLETED, CANCELLED, FAILED)
_ARCHIVE_NAME = re.compile(r"^[\.\-_A-Za-z0-9]{1,48}$")
_REPLAY_NAME = re.compile(r"^[\.\-_A-Za-z0-9]{1,64}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveSpec:
    """An archive of a bus's events: those matching `event_pattern` (None: all)."""

    name: str
    bus: str
    event_pattern: str | None = None
    retention_days: int = 0
    description: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _ARCHIVE_NAME.match(self.name):
            raise ValidationException(
                f"archive name {self.name!r} must be 1-48 letters, digits, '.', '-' or '_'"
            )
        check_bus_name(self.bus)
        if self.event_pattern is not None:
            EventPattern.parse(self.event_pattern)
        if not isinstance(self.retention_days, int) or self.retention_days < 0:
            raise ValidationException(
                f"archive {self.name!r}: retention_days is {self.retention_days!r}; it must be "
                "a whole number of days, 0 (keep for ever) or more"
            )
        if self.description is not None and len(self.description) > MAX_DESCRIPTION_LENGTH:
            raise ValidationException(
                f"archive {self.name!r}: the description is longer than "
                f"{MAX_DESCRIPTION_LENGTH} characters"
            )

    @property
    def retention_seconds(self) -> float | None:
        """How long an archived event is kept (None: for ever)."""
        return self.retention_days * 86_400 if self.retention_days else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchiveSpec:
        """The archive from its stored form (unknown fields ignored)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def archive_key(event_time: str, ingested_ms: int, event_id: str) -> str:
    """An archived event's key within its archive: event time, then arrival, then id."""
    return f"{event_time}/{ingested_ms:013d}/{event_id}"


def time_key(moment: float) -> str:
    """The archive-key prefix of an event time (whole seconds, UTC)."""
    return iso_seconds(moment)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaySpec:
    """A replay and where it stands: window, rules, state and progress."""

    name: str
    archive: str
    bus: str
    start: float
    end: float
    rules: tuple[str, ...] | None = None
    state: str = STARTING
    reason: str | None = None
    replayed: int = 0
    last_replayed: float | None = None  # event time of the last event re-sent
    resume_after: str | None = None  # archive key of the last event re-sent
    started_at: float | None = None
    ended_at: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _REPLAY_NAME.match(self.name):
            raise ValidationException(
                f"replay name {self.name!r} must be 1-64 letters, digits, '.', '-' or '_'"
            )

    @property
    def done(self) -> bool:
        """Whether the replay has reached a final state."""
        return self.state in FINAL_STATES

    def progress(self) -> float:
        """The share of the time window replayed so far, 0.0-1.0."""
        if self.state == COMPLETED:
            return 1.0
        if self.last_replayed is None or self.end <= self.start:
            return 0.0
        return min(1.0, max(0.0, (self.last_replayed - self.start) / (self.end - self.start)))

    def moved(self, **changes: Any) -> ReplaySpec:
        """The same replay with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        data = asdict(self)
        data["rules"] = list(self.rules) if self.rules is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplaySpec:
        """The replay from its stored form (unknown fields ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if known.get("rules") is not None:
            known["rules"] = tuple(known["rules"])
        return cls(**known)


def check_window(start: float, end: float, now: float) -> None:
    """Raise ValidationException unless start < end and the window does not end in the future."""
    if start >= end:
        raise ValidationException(
            "Parameter EventStartTime is not valid. Reason: EventStartTime must be before "
            "EventEndTime."
        )
    if end > now:
        raise ValidationException(
            "Parameter EventEndTime is not valid. Reason: EventEndTime cannot be in the future."
        )
