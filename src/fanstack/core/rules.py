"""Event buses, rules and targets (EventBridge): specs with AWS's names, limits and defaults, pure.

A rule routes the events of one bus that match its event pattern to up to 5 targets; a target
names where the event goes (a queue, topic, function, another bus, an HTTP endpoint, or a
workflow), how its
input is made, how long and how often delivery is retried, and the dead-letter queue that gets
what could not be delivered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fanstack.core.arns import arn, function_arn, queue_arn, topic_arn
from fanstack.core.errors import LimitExceeded, ValidationException
from fanstack.core.event_pattern import EventPattern
from fanstack.core.schedule_expression import parse_schedule_expression
from fanstack.core.target_input import TargetInput

MAX_TARGETS_PER_RULE = 5
MAX_RULES_PER_BUS = 300  # EventBridge's default quota, adjustable per bus (`max_rules`)
MAX_RULES_QUOTA = 100_000
MAX_DESCRIPTION_LENGTH = 512
DEFAULT_MAXIMUM_EVENT_AGE = 86_400
MIN_MAXIMUM_EVENT_AGE = 60
DEFAULT_MAXIMUM_RETRY_ATTEMPTS = 185
DEFAULT_RATE_LIMIT = 300  # API destinations' default invocations per second
MAX_BUS_NAME_LENGTH = 61  # fanstack: the bus's queues are named after it (SQS names: 80)
QUEUE, TOPIC, FUNCTION, BUS, API = "queue", "topic", "function", "bus", "api"
WORKFLOW = "workflow"
TARGET_KINDS = (QUEUE, TOPIC, FUNCTION, BUS, API, WORKFLOW)
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_RULE_NAME = re.compile(r"^[\.\-_A-Za-z0-9]{1,64}$")
_BUS_NAME = re.compile(r"^[-_A-Za-z0-9]+$")


def check_bus_name(name: str) -> None:
    """Raise ValidationException unless `name` can name a bus."""
    if not isinstance(name, str) or len(name) > MAX_BUS_NAME_LENGTH or not _BUS_NAME.match(name):
        raise ValidationException(
            f"bus name {name!r} must be 1-{MAX_BUS_NAME_LENGTH} letters, digits, '-' or '_' "
            "(a bus's queues are named after it)"
        )


def check_rule_name(kind: str, name: str) -> None:
    """Raise ValidationException unless `name` is a valid rule, target, archive or replay name."""
    if not isinstance(name, str) or not _RULE_NAME.match(name):
        raise ValidationException(
            f"{kind} name {name!r} must be 1-64 letters, digits, '.', '-' or '_'"
        )


def bus_arn(bus: str) -> str:
    """The ARN of an event bus."""
    return arn("events", f"event-bus/{bus}")


def rule_arn(bus: str, rule: str) -> str:
    """The ARN of a rule (AWS leaves the bus out for the default bus)."""
    middle = rule if bus == "default" else f"{bus}/{rule}"
    return arn("events", f"rule/{middle}")


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetSpec:
    """One target of a rule: where events go, their input, retries and dead-letter queue."""

    id: str
    kind: str
    resource: str  # a queue, topic, function or bus name; an URL for an HTTP endpoint
    input: TargetInput = field(default_factory=TargetInput)
    maximum_event_age: int = DEFAULT_MAXIMUM_EVENT_AGE
    maximum_retry_attempts: int = DEFAULT_MAXIMUM_RETRY_ATTEMPTS
    dead_letter: str | None = None
    message_group_id: str | None = None
    http_method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    rate_limit_per_second: int = DEFAULT_RATE_LIMIT

    def __post_init__(self) -> None:
        check_rule_name("target", self.id)
        if self.kind not in TARGET_KINDS:
            raise ValidationException(f"target {self.id!r}: kind must be one of {TARGET_KINDS}")
        if not MIN_MAXIMUM_EVENT_AGE <= self.maximum_event_age <= DEFAULT_MAXIMUM_EVENT_AGE:
            raise ValidationException(
                f"target {self.id!r}: maximum_event_age is {self.maximum_event_age}; it must be "
                f"between {MIN_MAXIMUM_EVENT_AGE} and {DEFAULT_MAXIMUM_EVENT_AGE} seconds"
            )
        if not 0 <= self.maximum_retry_attempts <= DEFAULT_MAXIMUM_RETRY_ATTEMPTS:
            raise ValidationException(
                f"target {self.id!r}: maximum_retry_attempts is {self.maximum_retry_attempts}; "
                f"it must be between 0 and {DEFAULT_MAXIMUM_RETRY_ATTEMPTS}"
            )
        if self.kind == API:
            self._check_http()
        if self.kind == BUS and self.input != TargetInput():
            raise ValidationException(
                f"target {self.id!r}: a bus target takes the event as it is (no input, "
                "input_path or input_transformer)"
            )

    def _check_http(self) -> None:
        if not self.resource.startswith(("http://", "https://")):
            raise ValidationException(
                f"target {self.id!r}: an HTTP endpoint must be an http:// or https:// URL, "
                f"got {self.resource!r}"
            )
        if self.http_method not in HTTP_METHODS:
            raise ValidationException(
                f"target {self.id!r}: http_method must be one of {HTTP_METHODS}"
            )
        if not 1 <= self.rate_limit_per_second <= DEFAULT_RATE_LIMIT:
            raise ValidationException(
                f"target {self.id!r}: rate_limit_per_second is {self.rate_limit_per_second}; it "
                f"must be between 1 and {DEFAULT_RATE_LIMIT}"
            )

    @property
    def arn(self) -> str:
        """The ARN of what the target delivers to (a DLQ message's TARGET_ARN)."""
        if self.kind == QUEUE:
            return queue_arn(self.resource)
        if self.kind == TOPIC:
            return topic_arn(self.resource)
        if self.kind == FUNCTION:
            return function_arn(self.resource)
        if self.kind == BUS:
            return bus_arn(self.resource)
        if self.kind == WORKFLOW:
            return arn("states", f"stateMachine:{self.resource}")
        return arn("events", f"api-destination/{self.id}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, as stored with the rule."""
        return {
            "id": self.id,
            "kind": self.kind,
            "resource": self.resource,
            "input": self.input.to_dict(),
            "maximum_event_age": self.maximum_event_age,
            "maximum_retry_attempts": self.maximum_retry_attempts,
            "dead_letter": self.dead_letter,
            "message_group_id": self.message_group_id,
            "http_method": self.http_method,
            "headers": dict(self.headers),
            "rate_limit_per_second": self.rate_limit_per_second,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetSpec:
        """The target from its stored form (unknown fields ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["input"] = TargetInput.from_dict(data.get("input") or {})
        return cls(**known)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSpec:
    """A rule of a bus: an event pattern and up to 5 targets."""

    bus: str
    name: str
    event_pattern: str  # canonical JSON of the pattern
    targets: tuple[TargetSpec, ...] = ()
    enabled: bool = True
    description: str | None = None
    schedule_expression: str | None = None  # a scheduled rule: rate(...) or cron(...), in UTC
    pattern: EventPattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_bus_name(self.bus)
        check_rule_name("rule", self.name)
        if self.schedule_expression is not None:
            expression = parse_schedule_expression(self.schedule_expression)
            if expression.kind == "at":
                raise ValidationException(
                    f"rule {self.name!r}: a rule's schedule_expression is rate(...) or "
                    "cron(...); one-time at(...) schedules are app.schedule's"
                )
        object.__setattr__(self, "pattern", EventPattern.parse(self.event_pattern))
        if len(self.targets) > MAX_TARGETS_PER_RULE:
            raise LimitExceeded(
                f"rule {self.name!r} has {len(self.targets)} targets; the limit is "
                f"{MAX_TARGETS_PER_RULE} targets per rule"
            )
        ids = [target.id for target in self.targets]
        if len(set(ids)) != len(ids):
            raise ValidationException(f"rule {self.name!r}: target ids must be unique: {ids}")
        if self.description is not None and len(self.description) > MAX_DESCRIPTION_LENGTH:
            raise ValidationException(
                f"rule {self.name!r}: the description is longer than {MAX_DESCRIPTION_LENGTH} "
                "characters"
            )

    @property
    def arn(self) -> str:
        """The rule's ARN (a DLQ message's RULE_ARN)."""
        return rule_arn(self.bus, self.name)

    def target(self, target_id: str) -> TargetSpec | None:
        """The target with this id, if the rule has one."""
        return next((t for t in self.targets if t.id == target_id), None)

    def with_enabled(self, enabled: bool) -> RuleSpec:
        """The same rule, enabled or disabled."""
        return replace(self, enabled=enabled)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, as stored in the bus's catalog."""
        return {
            "bus": self.bus,
            "name": self.name,
            "event_pattern": self.event_pattern,
            "targets": [target.to_dict() for target in self.targets],
            "enabled": self.enabled,
            "description": self.description,
            "schedule_expression": self.schedule_expression,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleSpec:
        """The rule from its stored form."""
        return cls(
            bus=data["bus"],
            name=data["name"],
            event_pattern=data["event_pattern"],
            targets=tuple(TargetSpec.from_dict(t) for t in data.get("targets", ())),
            enabled=bool(data.get("enabled", True)),
            description=data.get("description"),
            schedule_expression=data.get("schedule_expression"),
        )


def scheduled_rule_pattern(bus: str, rule: str) -> str:
    """The event pattern of a rule with a schedule and no pattern of its own: its scheduled
    events only (EventBridge's: `aws.events`, `Scheduled Event`, the rule's ARN)."""
    return EventPattern.parse({
        "source": ["aws.events"],
        "detail-type": ["Scheduled Event"],
        "resources": [rule_arn(bus, rule)],
    }).to_json()
