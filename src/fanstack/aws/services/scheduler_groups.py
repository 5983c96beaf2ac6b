"""EventBridge Scheduler's schedule groups, and where a schedule of a group is stored.

fanstack's schedules have no groups, so the groups are items of a table,
`fanstack-aws-schedule-groups` (`<group>` -> dates and tags); `default` always exists. Its
schedules have one name space, where Scheduler's names are unique per group: a schedule of the
`default` group is stored under its own name (the schedule an app declares with
`app.schedule(name, ...)` is that one), a schedule of another group under `<group>.<name>`
(or `<group>.<name>` cut short with a digest, when that is over 64 characters or taken). The
stored schedule's extras name its group and name, so either is found from the other.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fanstack.aws.protocols.errors import AwsError
from fanstack.backends.base import Backend
from fanstack.core.errors import ConditionalCheckFailed, ResourceNotFound, ValidationException
from fanstack.schedules.store import ScheduleStore

GROUPS_TABLE = "fanstack-aws-schedule-groups"
DEFAULT_GROUP = "default"
MAX_STORED_NAME = 64  # fanstack's schedule names, as Scheduler's
MAX_TAGS = 200
_NAME = re.compile(r"^[0-9a-zA-Z\-_.]{1,64}$")


def check_name(field_name: str, value: str) -> None:
    """A schedule or group name as Scheduler takes it (ValidationException naming the field)."""
    if not _NAME.match(value):
        raise ValidationException(
            f"{field_name} {value!r} must be 1-64 letters, digits, '-', '_' or '.'"
        )


@dataclass(frozen=True, slots=True)
class ScheduleGroup:
    """A schedule group: its name, dates (seconds since the epoch) and tags."""

    name: str
    created: float
    modified: float
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, as stored."""
        return {"created": self.created, "modified": self.modified, "tags": dict(self.tags)}

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> ScheduleGroup:
        """The group from its stored form."""
        return cls(name, float(data["created"]), float(data["modified"]), dict(data["tags"]))


class ScheduleGroups:
    """The schedule groups of one backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def create(self, name: str, tags: Mapping[str, str]) -> ScheduleGroup:
        """Make a group (ConflictException if it exists)."""
        check_name("Name", name)
        check_tags(tags)
        now = time.time()
        group = ScheduleGroup(name, now, now, dict(tags))
        if name == DEFAULT_GROUP:
            raise _exists(name)
        try:
            self.backend.table_put(GROUPS_TABLE, name, group.to_dict(), if_absent=True)
        except ConditionalCheckFailed as exc:
            raise _exists(name) from exc
        return group

    def get(self, name: str) -> ScheduleGroup:
        """A group (ResourceNotFound if there is none); `default` always is."""
        item = self.backend.table_get(GROUPS_TABLE, name)
        if item is not None:
            return ScheduleGroup.from_dict(name, item.value)
        if name != DEFAULT_GROUP:
            raise ResourceNotFound(f"Schedule group {name} does not exist.")
        now = time.time()  # the default group is dated from when it is first asked about
        default = ScheduleGroup(DEFAULT_GROUP, now, now)
        try:
            self.backend.table_put(GROUPS_TABLE, name, default.to_dict(), if_absent=True)
        except ConditionalCheckFailed:
            return self.get(name)
        return default

    def all(self) -> list[ScheduleGroup]:
        """Every group, `default` among them, by name."""
        self.get(DEFAULT_GROUP)
        return [
            ScheduleGroup.from_dict(item.key, item.value)
            for item in self.backend.table_items(GROUPS_TABLE)
        ]

    def delete(self, name: str) -> None:
        """Delete a group and its schedules (`default` cannot be deleted)."""
        if name == DEFAULT_GROUP:
            raise ValidationException("The default schedule group cannot be deleted.")
        self.get(name)
        store = ScheduleStore(self.backend)
        for spec, extras in list(store.schedules_with_extras()):
            if extras.get("group") == name:
                store.delete(spec.name)
        self.backend.table_delete(GROUPS_TABLE, name)

    def set_tags(self, name: str, tags: Mapping[str, str]) -> None:
        """Replace a group's tags."""
        check_tags(tags)
        group = self.get(name)
        changed = ScheduleGroup(name, group.created, time.time(), dict(tags))
        self.backend.table_put(GROUPS_TABLE, name, changed.to_dict())


def check_tags(tags: Mapping[str, str]) -> None:
    """At most 200 tags, keys of 1-128 and values of 1-256 characters, as Scheduler's."""
    if len(tags) > MAX_TAGS:
        raise ValidationException(f"Tags: {len(tags)} tags; a group takes at most {MAX_TAGS}")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or not 1 <= len(value) <= 256:
            raise ValidationException(
                f"Tags: key {key!r} must be 1-128 characters and its value 1-256"
            )


def stored_names(group: str, name: str) -> list[str]:
    """Where a schedule of `group` may be stored, in the order tried."""
    if group == DEFAULT_GROUP:
        return [name]
    joined = f"{group}.{name}"
    digest = hashlib.sha256(f"{group}/{name}".encode()).hexdigest()[:12]
    short = f"{joined[: MAX_STORED_NAME - 13]}-{digest}"
    return [joined, short] if len(joined) <= MAX_STORED_NAME else [short]


def group_and_name(stored: str, extras: Mapping[str, Any]) -> tuple[str, str]:
    """The Scheduler group and name of a stored schedule (a declared one is of `default`)."""
    return str(extras.get("group") or DEFAULT_GROUP), str(extras.get("name") or stored)


def find_schedule(store: ScheduleStore, group: str, name: str) -> str:
    """The stored name of schedule `name` of `group` (ResourceNotFound if there is none)."""
    for stored in stored_names(group, name):
        try:
            spec, extras = store.get(stored), store.extras(stored)
        except ResourceNotFound:
            continue
        if spec.rule_arn is None and group_and_name(stored, extras) == (group, name):
            return stored
    raise ResourceNotFound(f"Schedule {name} does not exist.")


def free_name(store: ScheduleStore, group: str, name: str) -> str:
    """Where a new schedule `name` of `group` goes (ConflictException if it exists, or if the
    default group's name is taken in fanstack's one name space by another group's)."""
    taken: list[str] = []
    for stored in stored_names(group, name):
        try:
            spec, extras = store.get(stored), store.extras(stored)
        except ResourceNotFound:
            return stored
        if spec.rule_arn is None and group_and_name(stored, extras) == (group, name):
            raise AwsError("ConflictException", f"Schedule {name} already exists.")
        taken.append(stored)
    raise AwsError(
        "ConflictException",
        f"Schedule {name} of group {group} cannot be stored: fanstack's schedule name "
        f"{taken[0]} is taken by another schedule",
    )


def _exists(name: str) -> AwsError:
    return AwsError("ConflictException", f"Schedule group {name} already exists.")
