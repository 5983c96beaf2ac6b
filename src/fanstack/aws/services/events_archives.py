"""EventBridge's archives and replays on fanstack's (`ArchiveSpec`, `ReplaySpec` in the bus
catalog, replays run by the workers' replayer).

An archive made here keeps its bus's events as one `bus.archive(...)` declares; a replay
started here re-sends them as `archive.replay(...)` does. AWS's archive states are ENABLED
(fanstack archives are never paused); replay states are fanstack's, which are AWS's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.protocols.errors import AwsError
from fanstack.aws.services.events_buses import existing_bus
from fanstack.aws.services.events_extras import extras_of, forget, keep, made_now, times
from fanstack.aws.services.events_names import (
    archive_arn,
    bus_arn,
    bus_name,
    named_resource,
    page,
    paged,
    replay_arn,
    rule_arn,
    rule_of_arn,
)
from fanstack.bus.catalog import Catalog
from fanstack.bus.replay import cancel_replay, start_replay
from fanstack.core.archives import ArchiveSpec, ReplaySpec
from fanstack.core.errors import ResourceAlreadyExists, ValidationException
from fanstack.core.event_pattern import EventPattern

ARCHIVE_STATE = "ENABLED"

# -- archives --------------------------------------------------------------------------------


def _archive_to_wire(call: CallContext, spec: ArchiveSpec, *, full: bool) -> dict[str, Any]:
    count, size = Catalog(call.backend).archive_stats(spec.name)
    answer: dict[str, Any] = {
        "ArchiveName": spec.name,
        "EventSourceArn": bus_arn(call, spec.bus),
        "State": ARCHIVE_STATE,
        "RetentionDays": spec.retention_days,
        "SizeBytes": size,
        "EventCount": count,
        **times(extras_of(call.backend, f"archive/{spec.name}"), "CreationTime"),
    }
    if full:
        answer["ArchiveArn"] = archive_arn(call, spec.name)
        if spec.description is not None:
            answer["Description"] = spec.description
        if spec.event_pattern is not None:
            answer["EventPattern"] = spec.event_pattern
    return answer


def _pattern(params: Mapping[str, Any], current: str | None = None) -> str | None:
    text = params.get("EventPattern")
    if text is None:
        return current
    return EventPattern.parse(text).to_json() if text else None


def create_archive(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = str(params.get("ArchiveName") or "")
    bus = existing_bus(call, str(params.get("EventSourceArn") or ""), "EventSourceArn")
    catalog = Catalog(call.backend)
    if any(spec.name == name for spec in catalog.archives()):
        raise ResourceAlreadyExists(f"Archive {name} already exists.")
    spec = ArchiveSpec(
        name=name,
        bus=bus,
        event_pattern=_pattern(params),
        retention_days=int(params.get("RetentionDays") or 0),
        description=params.get("Description"),
    )
    catalog.put_archive(spec)
    kept = keep(call.backend, f"archive/{name}", **made_now(call.backend),
                KmsKeyIdentifier=params.get("KmsKeyIdentifier"))  # fmt: skip
    return {
        "ArchiveArn": archive_arn(call, name),
        "State": ARCHIVE_STATE,
        **times(kept, "CreationTime"),
    }


def describe_archive(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    spec = Catalog(call.backend).archive(str(params.get("ArchiveName") or ""))
    return _archive_to_wire(call, spec, full=True)


def list_archives(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    prefix = str(params.get("NamePrefix") or "")
    source = params.get("EventSourceArn")
    bus = bus_name(str(source), "EventSourceArn") if source else None
    state = params.get("State")
    specs = {
        spec.name: spec
        for spec in Catalog(call.backend).archives(bus)
        if spec.name.startswith(prefix) and state in (None, ARCHIVE_STATE)
    }
    chosen, token = page(list(specs), params)
    shown = [_archive_to_wire(call, specs[name], full=False) for name in chosen]
    return paged({"Archives": shown}, token)


def update_archive(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    catalog = Catalog(call.backend)
    spec = catalog.archive(str(params.get("ArchiveName") or ""))
    retention = params.get("RetentionDays")
    description = params.get("Description")
    changed = dataclasses.replace(
        spec,
        event_pattern=_pattern(params, spec.event_pattern),
        retention_days=spec.retention_days if retention is None else int(retention),
        description=spec.description if description is None else description,
    )
    catalog.put_archive(changed)
    key = f"archive/{spec.name}"
    kms = params.get("KmsKeyIdentifier")
    kept = keep(call.backend, key, **({} if kms is None else {"KmsKeyIdentifier": kms}))
    return {
        "ArchiveArn": archive_arn(call, spec.name),
        "State": ARCHIVE_STATE,
        **times(kept, "CreationTime"),
    }


def delete_archive(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = str(params.get("ArchiveName") or "")
    Catalog(call.backend).delete_archive(name)
    forget(call.backend, f"archive/{name}")
    return {}


# -- replays ---------------------------------------------------------------------------------


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    raise ValidationException(f"Parameter {what} is not valid. Reason: it is not a timestamp.")


def _replay_to_wire(call: CallContext, spec: ReplaySpec, *, full: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "ReplayName": spec.name,
        "EventSourceArn": archive_arn(call, spec.archive),
        "State": spec.state,
        "EventStartTime": spec.start,
        "EventEndTime": spec.end,
    }
    optional = {
        "StateReason": spec.reason,
        "EventLastReplayedTime": spec.last_replayed,
        "ReplayStartTime": spec.started_at,
        "ReplayEndTime": spec.ended_at,
    }
    answer.update({key: value for key, value in optional.items() if value is not None})
    if full:
        answer["ReplayArn"] = replay_arn(call, spec.name)
        destination: dict[str, Any] = {"Arn": bus_arn(call, spec.bus)}
        if spec.rules is not None:
            destination["FilterArns"] = [rule_arn(call, spec.bus, rule) for rule in spec.rules]
        answer["Destination"] = destination
        description = extras_of(call.backend, f"replay/{spec.name}").get("Description")
        if description is not None:
            answer["Description"] = description
    return answer


def start_replay_operation(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = str(params.get("ReplayName") or "")
    source = str(params.get("EventSourceArn") or "")
    archive = Catalog(call.backend).archive(named_resource(source, "archive", "EventSourceArn"))
    destination = params.get("Destination") or {}
    if bus_name(str(destination.get("Arn") or ""), "Destination.Arn") != archive.bus:
        raise ValidationException(
            "Parameter Destination.Arn is not valid. Reason: Cross event bus replay is not "
            "permitted."
        )
    filters = destination.get("FilterArns")
    rules = None
    if filters is not None:
        named = [rule_of_arn(str(arn)) for arn in filters]
        if any(bus != archive.bus for bus, _ in named):
            raise ValidationException(
                "Parameter Destination.FilterArns is not valid. Reason: a rule is not on the "
                "archive's event bus."
            )
        rules = [rule for _, rule in named]
    start = _seconds(params.get("EventStartTime"), "EventStartTime")
    end = _seconds(params.get("EventEndTime"), "EventEndTime")
    spec = start_replay(call.backend, name, archive.name, start, end, rules)
    keep(call.backend, f"replay/{name}", Description=params.get("Description"))
    return {
        "ReplayArn": replay_arn(call, name),
        "State": spec.state,
        "ReplayStartTime": call.backend.clock(),
    }


def describe_replay(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    spec, _ = Catalog(call.backend).replay_item(str(params.get("ReplayName") or ""))
    return _replay_to_wire(call, spec, full=True)


def list_replays(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    prefix = str(params.get("NamePrefix") or "")
    state = params.get("State")
    source = params.get("EventSourceArn")
    archive = named_resource(str(source), "archive", "EventSourceArn") if source else None
    specs = {
        spec.name: spec
        for spec in Catalog(call.backend).replays()
        if spec.name.startswith(prefix)
        and state in (None, spec.state)
        and archive in (None, spec.archive)
    }
    chosen, token = page(list(specs), params)
    shown = [_replay_to_wire(call, specs[name], full=False) for name in chosen]
    return paged({"Replays": shown}, token)


def cancel_replay_operation(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = str(params.get("ReplayName") or "")
    current, _ = Catalog(call.backend).replay_item(name)
    if current.done:
        raise AwsError(
            "IllegalStatusException", f"Replay {name} is {current.state} and cannot be cancelled."
        )
    try:
        spec = cancel_replay(call.backend, name)
    except ValidationException as error:  # it ended between the check and the cancel
        raise AwsError(
            "IllegalStatusException", f"Replay {name} has ended and cannot be cancelled."
        ) from error
    if spec.state not in ("CANCELLING", "CANCELLED"):  # it ended meanwhile
        raise AwsError(
            "IllegalStatusException", f"Replay {name} is {spec.state} and cannot be cancelled."
        )
    return {"ReplayArn": replay_arn(call, name), "State": spec.state}
