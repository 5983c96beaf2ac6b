"""EventBridge's rules on fanstack's rules (`RuleSpec` in the bus catalog): put, describe, list,
enable, disable, delete.

A rule made here is one `bus.rule(...)` could have declared: the same spec, routed by every
worker, listed by `fanstack rules`; a declared rule changed here stays changed until the app's
code changes it. fanstack's pattern checks (with the offending key named) and limits apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.services.events_buses import existing_bus
from fanstack.aws.services.events_extras import (
    add_tags,
    extras_of,
    forget,
    keep,
    made_now,
    tags_from_wire,
)
from fanstack.aws.services.events_names import page, paged, rule_arn
from fanstack.aws.services.events_schedules import forget_rule_schedule, sync_rule_schedule
from fanstack.bus.catalog import Catalog
from fanstack.core.errors import ResourceNotFound, ValidationException
from fanstack.core.event_pattern import EventPattern
from fanstack.core.rules import RuleSpec, scheduled_rule_pattern

ENABLED, DISABLED = "ENABLED", "DISABLED"
STATES = (ENABLED, DISABLED, "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")


def rule_named(call: CallContext, params: Mapping[str, Any], key: str = "Name") -> RuleSpec:
    """The rule a call names on its bus (ResourceNotFoundException if either is absent)."""
    bus = existing_bus(call, params.get("EventBusName"))
    return Catalog(call.backend).rule(bus, str(params.get(key) or ""))


def _current(catalog: Catalog, bus: str, name: str) -> RuleSpec | None:
    try:
        return catalog.rule(bus, name)
    except ResourceNotFound:
        return None


def rule_to_wire(call: CallContext, rule: RuleSpec) -> dict[str, Any]:
    """A rule as DescribeRule and ListRules show it."""
    kept = extras_of(call.backend, f"rule/{rule.bus}/{rule.name}")
    state = ENABLED if rule.enabled else DISABLED
    if rule.enabled and kept.get("State") in STATES and kept["State"] != DISABLED:
        state = kept["State"]  # ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS, as it was put
    answer: dict[str, Any] = {
        "Name": rule.name,
        "Arn": rule_arn(call, rule.bus, rule.name),
        "State": state,
        "EventBusName": rule.bus,
    }
    if rule.schedule_expression is not None:
        answer["ScheduleExpression"] = rule.schedule_expression
    else:
        answer["EventPattern"] = rule.event_pattern
    if rule.description is not None:
        answer["Description"] = rule.description
    if kept.get("RoleArn"):
        answer["RoleArn"] = kept["RoleArn"]
    return answer


def put_rule(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    bus = existing_bus(call, params.get("EventBusName"))
    name = str(params.get("Name") or "")
    pattern, schedule = params.get("EventPattern"), params.get("ScheduleExpression")
    if not pattern and not schedule:
        raise ValidationException(
            "Parameter(s) EventPattern or ScheduleExpression must be specified."
        )
    if pattern and schedule:
        raise ValidationException(
            "fanstack rules take an EventPattern or a ScheduleExpression, not both: make two rules"
        )
    state = str(params.get("State") or ENABLED)
    if state not in STATES:
        raise ValidationException(
            f"Parameter State is not valid. Reason: {state!r} is not a state."
        )
    catalog = Catalog(call.backend)
    before = _current(catalog, bus, name)
    spec = RuleSpec(
        bus=bus,
        name=name,
        event_pattern=EventPattern.parse(pattern).to_json()
        if pattern
        else scheduled_rule_pattern(bus, name),
        targets=before.targets if before is not None else (),
        enabled=state != DISABLED,
        description=params.get("Description"),
        schedule_expression=schedule or None,
    )
    catalog.put_rule(spec)
    sync_rule_schedule(call, spec, before)
    key = f"rule/{bus}/{name}"
    fresh = made_now(call.backend) if before is None else {}
    keep(call.backend, key, State=state, RoleArn=params.get("RoleArn"), **fresh)
    add_tags(call.backend, key, tags_from_wire(params.get("Tags")))
    return {"RuleArn": rule_arn(call, bus, name)}


def describe_rule(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    rule = rule_named(call, params)
    return {**rule_to_wire(call, rule), "CreatedBy": call.settings.account}


def list_rules(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    bus = existing_bus(call, params.get("EventBusName"))
    prefix = str(params.get("NamePrefix") or "")
    rules = {rule.name: rule for rule in Catalog(call.backend).rules(bus)}
    chosen, token = page([name for name in rules if name.startswith(prefix)], params)
    return paged({"Rules": [rule_to_wire(call, rules[name]) for name in chosen]}, token)


def _set_enabled(call: CallContext, params: Mapping[str, Any], enabled: bool) -> dict[str, Any]:
    rule = rule_named(call, params)
    changed = rule.with_enabled(enabled)
    Catalog(call.backend).put_rule(changed)
    sync_rule_schedule(call, changed, rule)
    keep(call.backend, f"rule/{rule.bus}/{rule.name}", State=ENABLED if enabled else DISABLED)
    return {}


def enable_rule(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    return _set_enabled(call, params, True)


def disable_rule(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    return _set_enabled(call, params, False)


def delete_rule(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Delete a rule without targets (or with, given `Force`); no rule is no error, as on AWS."""
    bus = existing_bus(call, params.get("EventBusName"))
    name = str(params.get("Name") or "")
    rule = _current(Catalog(call.backend), bus, name)
    if rule is None:
        return {}
    if rule.targets and not params.get("Force"):
        raise ValidationException("Rule can't be deleted since it has targets.")
    declared = call.app.buses.declared.get(bus)
    if declared is not None:
        declared.delete_rule(name)  # the app does not put it back while it runs
    else:
        Catalog(call.backend).delete_rule(bus, name)
    forget_rule_schedule(call, rule)
    forget(call.backend, f"rule/{bus}/{name}", prefix=f"target/{bus}/{name}/")
    return {}
