"""Where buses, rules, archives and replays live: items of one backend table.

Keys of the `fanstack-bus` table: `bus/<bus>` (its version counts changes to its rules and
archives, so a router reloads them only when they change), `rule/<bus>/<rule>`,
`archive/<archive>` and `replay/<replay>`. Archived events are items of `fanstack-archive`, keyed
`<archive>/<event time>/<arrival ms>/<event id>` so that a scan returns them in event-time order.
Every process reads the same catalog, so rules changed by one are seen by all.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.archives import ArchiveSpec, ReplaySpec
from fanstack.core.errors import (
    ConditionalCheckFailed,
    LimitExceeded,
    ResourceNotFound,
    ValidationException,
)
from fanstack.core.rules import MAX_RULES_PER_BUS, MAX_RULES_QUOTA, RuleSpec, check_bus_name
from fanstack.core.tables import TableItem

CATALOG_TABLE = "fanstack-bus"
ARCHIVE_TABLE = "fanstack-archive"


class Catalog:
    """The buses, rules, archives and replays stored in a backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # -- buses ---------------------------------------------------------------------------

    def put_bus(self, name: str, *, max_rules: int = MAX_RULES_PER_BUS) -> None:
        """Create the bus, or update its rule quota (its version counts changes)."""
        check_bus_name(name)
        if not 1 <= max_rules <= MAX_RULES_QUOTA:
            raise ValidationException(
                f"bus {name!r}: max_rules is {max_rules}; it must be between 1 and "
                f"{MAX_RULES_QUOTA}"
            )
        item = self.backend.table_get(CATALOG_TABLE, f"bus/{name}")
        if item is None:
            value = {"name": name, "max_rules": max_rules, "rules": 0}
            with contextlib.suppress(ConditionalCheckFailed):  # or another process did first
                self.backend.table_put(CATALOG_TABLE, f"bus/{name}", value, if_absent=True)
        elif item.value.get("max_rules") != max_rules:
            self._touch(name, max_rules=max_rules)

    def buses(self) -> list[str]:
        """The names of every bus."""
        return [item.value["name"] for item in self._scan("bus/")]

    def bus_version(self, name: str) -> int | None:
        """A number that changes whenever the bus's rules or archives change (None: no bus)."""
        item = self.backend.table_get(CATALOG_TABLE, f"bus/{name}")
        return None if item is None else item.version

    def delete_bus(self, name: str) -> bool:
        """Delete a bus and its rules (its archives stay); False if there was no such bus."""
        for item in self._scan(f"rule/{name}/"):
            self.backend.table_delete(CATALOG_TABLE, item.key)
        return self.backend.table_delete(CATALOG_TABLE, f"bus/{name}")

    def require_bus(self, name: str) -> None:
        """Raise ResourceNotFound unless the bus exists."""
        if self.bus_version(name) is None:
            raise ResourceNotFound(f"Event bus {name} does not exist.")

    def _touch(self, bus: str, *, rules: int = 0, max_rules: int | None = None) -> None:
        """Move the bus's version on (routers reload), counting `rules` rules more or fewer.

        The rule count lives in the bus's item, changed with a conditional write, so counting
        against the quota never scans the rules, whatever their number.
        """
        while True:
            item = self.backend.table_get(CATALOG_TABLE, f"bus/{bus}")
            if item is None:
                raise ResourceNotFound(f"Event bus {bus} does not exist.")
            value = dict(item.value)
            value["rules"] = max(int(value.get("rules", 0)) + rules, 0)
            if max_rules is not None:
                value["max_rules"] = max_rules
            try:
                self.backend.table_put(CATALOG_TABLE, f"bus/{bus}", value, if_version=item.version)
                return
            except ConditionalCheckFailed:
                continue  # another process changed the bus meanwhile

    # -- rules ---------------------------------------------------------------------------

    def declare_rule(self, spec: RuleSpec) -> None:
        """Store a rule as the app declares it, unless that declaration is stored already.

        The stored rule keeps the declaration it came from, so a process that starts with the
        same code leaves runtime changes (a rule disabled by an operator) alone, and new code
        that changes the rule replaces it: the app code is the stack.
        """
        declared = json.dumps(spec.to_dict(), sort_keys=True)
        item = self.backend.table_get(CATALOG_TABLE, f"rule/{spec.bus}/{spec.name}")
        if item is None or item.value.get("declared") != declared:
            self.put_rule(spec, declared=declared)

    def put_rule(self, spec: RuleSpec, *, declared: str | None = None) -> None:
        """Create or replace a rule (LimitExceeded past the bus's quota, 300 by default)."""
        bus = self.backend.table_get(CATALOG_TABLE, f"bus/{spec.bus}")
        if bus is None:
            raise ResourceNotFound(f"Event bus {spec.bus} does not exist.")
        key = f"rule/{spec.bus}/{spec.name}"
        current = self.backend.table_get(CATALOG_TABLE, key)
        if current is None:
            quota = int(bus.value.get("max_rules", MAX_RULES_PER_BUS))
            count = int(bus.value.get("rules", 0))
            if count >= quota:
                raise LimitExceeded(
                    f"bus {spec.bus!r} has {count} rules; the limit is {quota} rules per bus "
                    "(the bus's max_rules)"
                )
        value = spec.to_dict()
        value["declared"] = declared or (current.value.get("declared") if current else None)
        self.backend.table_put(CATALOG_TABLE, key, value)
        self._touch(spec.bus, rules=1 if current is None else 0)

    def rule(self, bus: str, name: str) -> RuleSpec:
        """The rule, or ResourceNotFound."""
        item = self.backend.table_get(CATALOG_TABLE, f"rule/{bus}/{name}")
        if item is None:
            raise ResourceNotFound(f"Rule {name} does not exist on EventBus {bus}.")
        return RuleSpec.from_dict(item.value)

    def rules(self, bus: str) -> list[RuleSpec]:
        """Every rule of the bus, by name."""
        return [RuleSpec.from_dict(item.value) for item in self._scan(f"rule/{bus}/")]

    def delete_rule(self, bus: str, name: str) -> None:
        """Delete a rule (ResourceNotFound if absent)."""
        if not self.backend.table_delete(CATALOG_TABLE, f"rule/{bus}/{name}"):
            raise ResourceNotFound(f"Rule {name} does not exist on EventBus {bus}.")
        self._touch(bus, rules=-1)

    # -- archives ------------------------------------------------------------------------

    def put_archive(self, spec: ArchiveSpec) -> None:
        """Create or update an archive (nothing to do if it is stored as given)."""
        self.require_bus(spec.bus)
        item = self.backend.table_get(CATALOG_TABLE, f"archive/{spec.name}")
        if item is not None and item.value == spec.to_dict():
            return
        self.backend.table_put(CATALOG_TABLE, f"archive/{spec.name}", spec.to_dict())
        self._touch(spec.bus)

    def archive(self, name: str) -> ArchiveSpec:
        """The archive, or ResourceNotFound."""
        item = self.backend.table_get(CATALOG_TABLE, f"archive/{name}")
        if item is None:
            raise ResourceNotFound(f"Archive {name} does not exist.")
        return ArchiveSpec.from_dict(item.value)

    def delete_archive(self, name: str) -> None:
        """Delete an archive and the events it keeps (ResourceNotFound if absent)."""
        spec = self.archive(name)
        self.backend.table_delete(CATALOG_TABLE, f"archive/{name}")
        if self.bus_version(spec.bus) is not None:
            self._touch(spec.bus)  # its routers stop archiving into it
        for item in list(self.backend.table_items(ARCHIVE_TABLE, prefix=f"{name}/")):
            self.backend.table_delete(ARCHIVE_TABLE, item.key)

    def archives(self, bus: str | None = None) -> list[ArchiveSpec]:
        """Every archive (of one bus, if given), by name."""
        specs = [ArchiveSpec.from_dict(item.value) for item in self._scan("archive/")]
        return [spec for spec in specs if bus is None or spec.bus == bus]

    def archived(self, archive: str, after: str, until: str) -> Iterator[tuple[str, Any]]:
        """(key, event) of archived events with `after` < key < `until`, in key order."""
        prefix = f"{archive}/"
        for item in self.backend.table_items(
            ARCHIVE_TABLE, prefix=prefix, start_after=prefix + after
        ):
            key = item.key.removeprefix(prefix)
            if key >= until:
                return
            yield key, item.value

    def archive_event(self, archive: ArchiveSpec, key: str, event: Mapping[str, Any]) -> None:
        """Keep one event in an archive (idempotent: the same key holds the same event)."""
        self.backend.table_put(
            ARCHIVE_TABLE, f"{archive.name}/{key}", event, ttl=archive.retention_seconds
        )

    def archive_stats(self, archive: str) -> tuple[int, int]:
        """(events, bytes) held by an archive."""
        count = size = 0
        for _, event in self.archived(archive, "", "~"):
            count += 1
            size += len(str(event))
        return count, size

    # -- replays -------------------------------------------------------------------------

    def put_replay(self, spec: ReplaySpec, *, if_version: int | None = None) -> TableItem:
        """Store a replay's record; `if_version` guards against a concurrent change."""
        return self.backend.table_put(
            CATALOG_TABLE,
            f"replay/{spec.name}",
            spec.to_dict(),
            if_absent=if_version is None,
            if_version=if_version,
        )

    def replay_item(self, name: str) -> tuple[ReplaySpec, int]:
        """A replay and the version of its record, or ResourceNotFound."""
        item = self.backend.table_get(CATALOG_TABLE, f"replay/{name}")
        if item is None:
            raise ResourceNotFound(f"Replay {name} does not exist.")
        return ReplaySpec.from_dict(item.value), item.version

    def replays(self) -> list[ReplaySpec]:
        """Every replay, by name."""
        return [ReplaySpec.from_dict(item.value) for item in self._scan("replay/")]

    def _scan(self, prefix: str) -> list[TableItem]:
        return list(self.backend.table_items(CATALOG_TABLE, prefix=prefix))
