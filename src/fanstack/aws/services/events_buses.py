"""EventBridge's event buses on fanstack's buses: create, describe, list, update, delete.

A bus made here is a bus of the catalog like one `app.bus(...)` declares: the same queues and
catalog item, routed by every worker (`bus/discovery.py`), listed by `fanstack buses`. The
default bus exists as on AWS: it is made the first time a call needs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.services.events_extras import (
    add_tags,
    extras_of,
    forget,
    keep,
    made_now,
    tags_from_wire,
    times,
)
from fanstack.aws.services.events_names import DEFAULT_BUS, bus_arn, bus_name, page, paged
from fanstack.aws.services.events_schedules import forget_rule_schedule
from fanstack.bus.bus import Bus
from fanstack.bus.catalog import Catalog
from fanstack.bus.delivery import retry_queue
from fanstack.core.errors import (
    QueueDoesNotExist,
    ResourceAlreadyExists,
    ValidationException,
)
from fanstack.core.events import ingress_queue
from fanstack.core.rules import check_bus_name

KEPT = ("Description", "KmsKeyIdentifier", "DeadLetterConfig")


def bus_object(call: CallContext, name: str) -> Bus:
    """The bus as the Python API has it: the app's own if it declares it."""
    return call.app.buses.declared.get(name) or Bus(name, lambda: call.backend)


def existing_bus(call: CallContext, value: str | None, what: str = "EventBusName") -> str:
    """The name of the bus a parameter names (by name or ARN; default: the default bus), which
    must exist (ResourceNotFoundException)."""
    name = bus_name(value, what)
    if name == DEFAULT_BUS:
        ensure_default_bus(call)
    else:
        Catalog(call.backend).require_bus(name)
    return name


def ensure_default_bus(call: CallContext) -> None:
    """Make the default bus if it does not exist yet (every AWS account has one)."""
    if Catalog(call.backend).bus_version(DEFAULT_BUS) is None:
        bus_object(call, DEFAULT_BUS).provision(call.backend)
        keep(call.backend, f"bus/{DEFAULT_BUS}", **made_now(call.backend))


def _described(call: CallContext, name: str) -> dict[str, Any]:
    kept = extras_of(call.backend, f"bus/{name}")
    answer: dict[str, Any] = {"Name": name, "Arn": bus_arn(call, name)}
    answer.update({field: kept[field] for field in KEPT if field in kept})
    return {**answer, **times(kept, "CreationTime", "LastModifiedTime")}


def create_event_bus(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = str(params.get("Name") or "")
    if params.get("EventSourceName"):
        raise ValidationException(
            "fanstack has no partner event sources; leave EventSourceName out"
        )
    check_bus_name(name)
    if Catalog(call.backend).bus_version(name) is not None or name == DEFAULT_BUS:
        raise ResourceAlreadyExists(f"Event bus {name} already exists.")
    Bus(name, lambda: call.backend).provision(call.backend)
    kept = {field: params[field] for field in KEPT if params.get(field) is not None}
    keep(call.backend, f"bus/{name}", **made_now(call.backend), **kept)
    add_tags(call.backend, f"bus/{name}", tags_from_wire(params.get("Tags")))
    return {"EventBusArn": bus_arn(call, name), **kept}


def describe_event_bus(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    return _described(call, existing_bus(call, params.get("Name"), "Name"))


def list_event_buses(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    ensure_default_bus(call)
    prefix = str(params.get("NamePrefix") or "")
    names = [name for name in Catalog(call.backend).buses() if name.startswith(prefix)]
    chosen, token = page(names, params)
    return paged({"EventBuses": [_described(call, name) for name in chosen]}, token)


def update_event_bus(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = existing_bus(call, params.get("Name"), "Name")
    changes = {field: params[field] for field in KEPT if field in params}
    keep(call.backend, f"bus/{name}", modified=call.backend.clock(), **changes)
    described = _described(call, name)
    return {key: described[key] for key in ("Arn", "Name", *KEPT) if key in described}


def delete_event_bus(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Delete a bus and its rules (a bus that does not exist is no error, as on AWS)."""
    name = bus_name(params.get("Name"), "Name")
    if name == DEFAULT_BUS:
        raise ValidationException("Cannot delete event bus default.")
    catalog = Catalog(call.backend)
    rules = catalog.rules(name) if catalog.bus_version(name) is not None else []
    declared = call.app.buses.declared.get(name)
    for rule in rules:
        if declared is not None:
            declared.delete_rule(rule.name)  # the app does not put it back while it runs
        forget_rule_schedule(call, rule)
    catalog.delete_bus(name)
    forget(call.backend, f"bus/{name}", prefix=f"rule/{name}/")
    forget(call.backend, prefix=f"target/{name}/")
    if declared is None:  # a declared bus's own routers keep leasing its queues while it runs
        for queue in (ingress_queue(name), retry_queue(name)):
            with contextlib.suppress(QueueDoesNotExist):
                call.backend.delete_queue(queue)
    return {}
