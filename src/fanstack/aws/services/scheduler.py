"""Amazon EventBridge Scheduler's API on fanstack's schedules: schedules, groups and their tags.

A schedule made here is a schedule as `app.schedule(...)` declares it: the same spec in the
same store, fired once per occurrence by the worker processes' scheduler, listed by
`fanstack schedules`, enabled and disabled by `fanstack schedule enable|disable`; and the
app's declared schedules are the `default` group's here. Groups, and how a schedule of a group
is stored, are in `scheduler_groups.py`; targets in `scheduler_targets.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.protocols.errors import AwsError
from fanstack.aws.services.scheduler_groups import (
    DEFAULT_GROUP,
    ScheduleGroup,
    ScheduleGroups,
    check_name,
    find_schedule,
    free_name,
    group_and_name,
)
from fanstack.aws.services.scheduler_targets import target_spec, wire_target
from fanstack.core.arns import PARTITIONS
from fanstack.core.errors import ResourceAlreadyExists, ResourceNotFound, ValidationException
from fanstack.core.rules import MAX_DESCRIPTION_LENGTH
from fanstack.core.schedules import DISABLED, ENABLED, ScheduleSpec
from fanstack.schedules.scheduler import SchedulerClock
from fanstack.schedules.store import ScheduleStore

Handler = Callable[[CallContext, Mapping[str, Any]], dict[str, Any]]
MAX_LIST_RESULTS = 100
START_DATE_GRACE = 300  # seconds: a StartDate may be up to five minutes in the past, as AWS's


def _group(call: CallContext, params: Mapping[str, Any]) -> str:
    """The call's `GroupName` (`default` if none; ResourceNotFound if the group is not)."""
    group = str(params.get("GroupName") or DEFAULT_GROUP)
    check_name("GroupName", group)
    ScheduleGroups(call.backend).get(group)
    return group


def schedule_arn(call: CallContext, group: str, name: str) -> str:
    """`arn:aws:scheduler:<region>:<account>:schedule/<group>/<name>`."""
    return call.arn("scheduler", f"schedule/{group}/{name}")


def group_arn(call: CallContext, group: str) -> str:
    """`arn:aws:scheduler:<region>:<account>:schedule-group/<group>`."""
    return call.arn("scheduler", f"schedule-group/{group}")


# -- schedules -------------------------------------------------------------------------------


def create_schedule(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name, group = str(params["Name"]), _group(call, params)
    check_name("Name", name)
    store = ScheduleStore(call.backend)
    token = params.get("ClientToken")
    if token and _made_with(store, group, name, str(token)):  # a retried call: made already
        return {"ScheduleArn": schedule_arn(call, group, name)}
    stored = free_name(store, group, name)
    spec = _spec(stored, params)
    now = time.time()
    extras = {"group": group, "name": name, "created": now, "modified": now, **_given(params)}
    if token:
        extras["client_token"] = str(token)
    try:
        store.create(spec, SchedulerClock.from_environment()(), extras=extras)
    except ResourceAlreadyExists as exc:  # made by another call meanwhile
        raise AwsError("ConflictException", f"Schedule {name} already exists.") from exc
    return {"ScheduleArn": schedule_arn(call, group, name)}


def _made_with(store: ScheduleStore, group: str, name: str, token: str) -> bool:
    """Whether schedule `name` of `group` exists, made by a call with ClientToken `token`."""
    try:
        stored = find_schedule(store, group, name)
    except ResourceNotFound:
        return False
    return store.extras(stored).get("client_token") == token


def get_schedule(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name, group = str(params["Name"]), _group(call, params)
    store = ScheduleStore(call.backend)
    stored = find_schedule(store, group, name)
    spec, extras = store.get(stored), store.extras(stored)
    created, modified = _dates(store, stored, extras)
    answer: dict[str, Any] = {
        "Arn": schedule_arn(call, group, name),
        "GroupName": group,
        "Name": name,
        "ScheduleExpression": spec.expression,
        "ScheduleExpressionTimezone": spec.timezone,
        "State": spec.state,
        "CreationDate": created,
        "LastModificationDate": modified,
        "Target": wire_target(call, spec, extras),
        "FlexibleTimeWindow": _window(spec),
        "ActionAfterCompletion": spec.action_after_completion,
    }
    optional = {
        "StartDate": spec.start,
        "EndDate": spec.end,
        "Description": spec.description,
        "KmsKeyArn": extras.get("kms_key_arn"),
    }
    answer.update({key: value for key, value in optional.items() if value is not None})
    return answer


def update_schedule(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name, group = str(params["Name"]), _group(call, params)
    store = ScheduleStore(call.backend)
    stored = find_schedule(store, group, name)
    spec = _spec(stored, params)
    extras = {**store.extras(stored), "modified": time.time(), **_given(params)}
    for key in ("role_arn", "target_arn", "dead_letter_arn", "kms_key_arn"):
        if key not in _given(params):
            extras.pop(key, None)  # UpdateSchedule replaces the schedule as a whole
    if not extras.get("group"):  # a declared schedule: the wire names it from now on
        extras.update(group=DEFAULT_GROUP, name=name, created=_dates(store, stored, {})[0])
    store.update(spec, SchedulerClock.from_environment()(), extras=extras)
    return {"ScheduleArn": schedule_arn(call, group, name)}


def delete_schedule(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name, group = str(params["Name"]), _group(call, params)
    store = ScheduleStore(call.backend)
    store.delete(find_schedule(store, group, name))
    return {}


def list_schedules(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    group = params.get("GroupName")
    prefix = str(params.get("NamePrefix") or "")
    state = params.get("State")
    store = ScheduleStore(call.backend)
    found = []
    for spec, extras in store.schedules_with_extras():
        in_group, name = group_and_name(spec.name, extras)
        if spec.rule_arn is not None:  # a bus rule's own schedule is EventBridge's, not this
            continue
        if group not in (None, in_group) or not name.startswith(prefix):
            continue
        if state not in (None, spec.state):
            continue
        created, modified = _dates(store, spec.name, extras)
        found.append({
            "Arn": schedule_arn(call, in_group, name),
            "Name": name,
            "GroupName": in_group,
            "State": spec.state,
            "CreationDate": created,
            "LastModificationDate": modified,
            "Target": {"Arn": wire_target(call, spec, extras)["Arn"]},
        })  # fmt: skip
    return _page(found, params, "Schedules", lambda s: f"{s['GroupName']}/{s['Name']}")


def _spec(stored: str, params: Mapping[str, Any]) -> ScheduleSpec:
    """The schedule a CreateSchedule or UpdateSchedule asks for, stored as `stored`."""
    description = params.get("Description")
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        raise ValidationException(
            f"Description is {len(description)} characters; the limit is {MAX_DESCRIPTION_LENGTH}"
        )
    start, end = _date(params, "StartDate"), _date(params, "EndDate")
    now = time.time()
    if start is not None and start < now - START_DATE_GRACE:
        raise ValidationException("StartDate cannot be earlier than 5 minutes before now.")
    if end is not None and end <= now:
        raise ValidationException("EndDate cannot be earlier than the current time.")
    if start is not None and end is not None and end <= start:
        raise ValidationException("EndDate must come after StartDate.")
    target = params["Target"]
    return ScheduleSpec(
        name=stored,
        expression=str(params["ScheduleExpression"]),
        target=target_spec(target),
        input=target.get("Input"),
        timezone=str(params.get("ScheduleExpressionTimezone") or "UTC"),
        start=start,
        end=end,
        flexible_window_minutes=_window_minutes(params["FlexibleTimeWindow"]),
        enabled=str(params.get("State") or ENABLED) != DISABLED,
        action_after_completion=str(params.get("ActionAfterCompletion") or "NONE"),
        description=description,
    )


def _date(params: Mapping[str, Any], key: str) -> float | None:
    value = params.get(key)
    return value.timestamp() if isinstance(value, datetime) else None


def _window_minutes(window: Mapping[str, Any]) -> int | None:
    mode, minutes = window.get("Mode"), window.get("MaximumWindowInMinutes")
    if mode == "OFF":
        if minutes is not None:
            raise ValidationException(
                "FlexibleTimeWindow.MaximumWindowInMinutes is only taken with Mode FLEXIBLE"
            )
        return None
    if mode != "FLEXIBLE" or minutes is None:
        raise ValidationException(
            "FlexibleTimeWindow: Mode is OFF, or FLEXIBLE with MaximumWindowInMinutes (1-1440)"
        )
    return int(minutes)


def _window(spec: ScheduleSpec) -> dict[str, Any]:
    if spec.flexible_window_minutes is None:
        return {"Mode": "OFF"}
    return {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": spec.flexible_window_minutes}


def _given(params: Mapping[str, Any]) -> dict[str, str]:
    """The ARNs a call gave that the spec keeps only as names (echoed back as given)."""
    target = params["Target"]
    given = {
        "role_arn": target.get("RoleArn"),
        "target_arn": target.get("Arn"),
        "dead_letter_arn": (target.get("DeadLetterConfig") or {}).get("Arn"),
        "kms_key_arn": params.get("KmsKeyArn"),
    }
    return {key: str(value) for key, value in given.items() if value}


def _dates(store: ScheduleStore, stored: str, extras: Mapping[str, Any]) -> tuple[float, float]:
    """When a schedule was made and last changed (a declared one: when it was first stored)."""
    if "created" in extras:
        return float(extras["created"]), float(extras.get("modified", extras["created"]))
    created = store.state(stored).created
    return created, created


# -- schedule groups -------------------------------------------------------------------------


def create_schedule_group(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    name = str(params["Name"])
    ScheduleGroups(call.backend).create(name, _tags(params.get("Tags")))
    return {"ScheduleGroupArn": group_arn(call, name)}


def get_schedule_group(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    return _group_summary(call, ScheduleGroups(call.backend).get(str(params["Name"])))


def delete_schedule_group(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    ScheduleGroups(call.backend).delete(str(params["Name"]))
    return {}


def list_schedule_groups(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    prefix = str(params.get("NamePrefix") or "")
    groups = [
        _group_summary(call, group)
        for group in ScheduleGroups(call.backend).all()
        if group.name.startswith(prefix)
    ]
    return _page(groups, params, "ScheduleGroups", lambda group: str(group["Name"]))


def _group_summary(call: CallContext, group: ScheduleGroup) -> dict[str, Any]:
    return {
        "Arn": group_arn(call, group.name),
        "Name": group.name,
        "State": "ACTIVE",
        "CreationDate": group.created,
        "LastModificationDate": group.modified,
    }


# -- tags (Scheduler tags schedule groups only) ----------------------------------------------


def tag_resource(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    groups = ScheduleGroups(call.backend)
    group = groups.get(_tagged_group(str(params["ResourceArn"])))
    groups.set_tags(group.name, {**group.tags, **_tags(params.get("Tags"))})
    return {}


def untag_resource(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    groups = ScheduleGroups(call.backend)
    group = groups.get(_tagged_group(str(params["ResourceArn"])))
    dropped = set(params.get("TagKeys") or [])
    groups.set_tags(group.name, {k: v for k, v in group.tags.items() if k not in dropped})
    return {}


def list_tags_for_resource(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    group = ScheduleGroups(call.backend).get(_tagged_group(str(params["ResourceArn"])))
    return {"Tags": [{"Key": key, "Value": value} for key, value in sorted(group.tags.items())]}


def _tagged_group(arn: str) -> str:
    """The group a tag operation's ARN names (ValidationException for anything else)."""
    parts = arn.split(":", 5)
    resource = parts[5] if len(parts) == 6 else ""
    if (  # either partition: fanstack's earlier ARNs are `arn:fanstack:...`
        not resource.startswith("schedule-group/")
        or (parts[0], parts[2]) != ("arn", "scheduler")
        or parts[1] not in PARTITIONS
    ):
        raise ValidationException(
            f"ResourceArn {arn!r}: Scheduler keeps tags on schedule groups "
            "(arn:aws:scheduler:<region>:<account>:schedule-group/<name>)"
        )
    name = resource.removeprefix("schedule-group/")
    if not name:
        raise ResourceNotFound(f"Schedule group {arn} does not exist.")
    return name


def _tags(tags: Any) -> dict[str, str]:
    return {str(tag["Key"]): str(tag["Value"]) for tag in tags or []}


# -- paging ----------------------------------------------------------------------------------


def _page(
    items: list[dict[str, Any]],
    params: Mapping[str, Any],
    key: str,
    token_of: Callable[[dict[str, Any]], str],
) -> dict[str, Any]:
    """One page of `items` (sorted by their token) after `NextToken`, `MaxResults` long."""
    limit = int(params.get("MaxResults") or MAX_LIST_RESULTS)
    if not 1 <= limit <= MAX_LIST_RESULTS:
        raise ValidationException(f"MaxResults is {limit}; it must be between 1 and 100")
    after = str(params.get("NextToken") or "")
    items = sorted(items, key=token_of)
    rest = [item for item in items if token_of(item) > after] if after else items
    answer: dict[str, Any] = {key: rest[:limit]}
    if len(rest) > limit:
        answer["NextToken"] = token_of(rest[limit - 1])
    return answer


OPERATIONS: dict[str, Handler] = {
    "CreateSchedule": create_schedule,
    "GetSchedule": get_schedule,
    "UpdateSchedule": update_schedule,
    "DeleteSchedule": delete_schedule,
    "ListSchedules": list_schedules,
    "CreateScheduleGroup": create_schedule_group,
    "GetScheduleGroup": get_schedule_group,
    "DeleteScheduleGroup": delete_schedule_group,
    "ListScheduleGroups": list_schedule_groups,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
}
