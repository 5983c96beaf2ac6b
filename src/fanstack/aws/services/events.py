"""Amazon EventBridge's API on fanstack's event buses: buses, rules, targets, PutEvents,
TestEventPattern, archives, replays and tags.

Every operation works on the bus catalog that `app.bus(...)` declares into, so a bus, rule or
archive made over the wire is one the Python API, `fanstack buses` and `fanstack rules` see,
and events put here are routed by the same workers. Operations take and return the parameters
of botocore's `events` model; they are spread over `events_*.py`, one concept a module.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.services import (
    events_archives,
    events_buses,
    events_extras,
    events_rules,
    events_targets,
)
from fanstack.aws.services.events_names import DEFAULT_BUS, bus_name
from fanstack.bus.bus import PutEventsEntry
from fanstack.bus.catalog import Catalog
from fanstack.core.errors import FanstackError
from fanstack.core.event_pattern import test_event_pattern as matches
from fanstack.core.events import EventEntry, check_request

Handler = Callable[[CallContext, Mapping[str, Any]], dict[str, Any]]


def put_events(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Store 1-10 events, each on the bus it names; per-entry results, in order."""
    wire_entries = list(params.get("Entries") or [])
    entries = [EventEntry.from_dict(entry) for entry in wire_entries]
    check_request(entries)
    results: list[PutEventsEntry | None] = [None] * len(entries)
    by_bus: dict[str, list[int]] = defaultdict(list)
    catalog = Catalog(call.backend)
    for position, wire in enumerate(wire_entries):
        try:
            name = bus_name(wire.get("EventBusName"))
        except FanstackError as error:
            results[position] = PutEventsEntry(
                error_code="InvalidArgument", error_message=str(error)
            )
            continue
        if name == DEFAULT_BUS:
            events_buses.ensure_default_bus(call)
        elif catalog.bus_version(name) is None:
            results[position] = PutEventsEntry(
                error_code="EventBusNotFound", error_message=f"Event bus {name} does not exist."
            )
            continue
        by_bus[name].append(position)
    for name, positions in by_bus.items():
        bus = events_buses.bus_object(call, name)
        put = bus.put_events([entries[position] for position in positions])
        for position, result in zip(positions, put.entries, strict=True):
            results[position] = result
    shaped = [_entry_to_wire(result) for result in results if result is not None]
    failed = sum(1 for result in results if result is None or result.event_id is None)
    return {"FailedEntryCount": failed, "Entries": shaped}


def _entry_to_wire(result: PutEventsEntry) -> dict[str, Any]:
    if result.event_id is not None:
        return {"EventId": result.event_id}
    return {"ErrorCode": result.error_code, "ErrorMessage": result.error_message}


def test_event_pattern(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Whether an event matches a pattern, as fanstack's routing decides it."""
    return {
        "Result": matches(str(params.get("EventPattern") or ""), str(params.get("Event") or ""))
    }


OPERATIONS: dict[str, Handler] = {
    "CreateEventBus": events_buses.create_event_bus,
    "DeleteEventBus": events_buses.delete_event_bus,
    "DescribeEventBus": events_buses.describe_event_bus,
    "ListEventBuses": events_buses.list_event_buses,
    "UpdateEventBus": events_buses.update_event_bus,
    "PutRule": events_rules.put_rule,
    "DeleteRule": events_rules.delete_rule,
    "DescribeRule": events_rules.describe_rule,
    "ListRules": events_rules.list_rules,
    "EnableRule": events_rules.enable_rule,
    "DisableRule": events_rules.disable_rule,
    "PutTargets": events_targets.put_targets,
    "RemoveTargets": events_targets.remove_targets,
    "ListTargetsByRule": events_targets.list_targets_by_rule,
    "ListRuleNamesByTarget": events_targets.list_rule_names_by_target,
    "PutEvents": put_events,
    "TestEventPattern": test_event_pattern,
    "CreateArchive": events_archives.create_archive,
    "DeleteArchive": events_archives.delete_archive,
    "DescribeArchive": events_archives.describe_archive,
    "ListArchives": events_archives.list_archives,
    "UpdateArchive": events_archives.update_archive,
    "StartReplay": events_archives.start_replay_operation,
    "CancelReplay": events_archives.cancel_replay_operation,
    "DescribeReplay": events_archives.describe_replay,
    "ListReplays": events_archives.list_replays,
    "TagResource": events_extras.tag_resource,
    "UntagResource": events_extras.untag_resource,
    "ListTagsForResource": events_extras.list_tags_for_resource,
}
