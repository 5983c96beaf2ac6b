"""GetExecutionHistory: fanstack's history events in Step Functions' `HistoryEvent` shape.

fanstack records events in AWS's types already (`ExecutionStarted`, `TaskStateEntered`,
`TaskScheduled`, ...) with AWS's detail names; each goes into the details member the model has
for its type (`taskScheduledEventDetails`), or `stateEnteredEventDetails` /
`stateExitedEventDetails` for the states' own, with the resource split into AWS's resource type
and resource (`arn:aws:states:::lambda:invoke` is `lambda` and `invoke`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from botocore.model import StructureShape

from fanstack.aws.context import CallContext
from fanstack.aws.protocols import service_model
from fanstack.aws.services.stepfunctions_executions import execution_of
from fanstack.aws.services.stepfunctions_machines import extras_of, page_size, role_of
from fanstack.core.errors import InvalidToken

SERVICE_PREFIX = "arn:aws:states:::"
DATA_FIELDS = ("input", "output", "parameters")


def get_execution_history(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """An execution's events, oldest first (or newest first), a page at a time."""
    execution = execution_of(call, params.get("executionArn"))
    record = execution.describe()
    role = role_of(call, extras_of(call.backend, record.workflow))
    data = params.get("includeExecutionData", True) is not False
    region = call.settings.region
    events = [history_event(raw, role, region, data=data) for raw in execution.history()]
    reverse = bool(params.get("reverseOrder"))
    if reverse:
        events.reverse()
    token = params.get("nextToken")
    if token:
        start = _event_id(str(token))
        events = [e for e in events if (e["id"] <= start if reverse else e["id"] >= start)]
    limit = page_size(params)
    answer: dict[str, Any] = {"events": events[:limit]}
    if len(events) > limit:
        answer["nextToken"] = str(events[limit]["id"])
    return answer


def history_event(
    raw: Mapping[str, Any], role: str, region: str, *, data: bool = True
) -> dict[str, Any]:
    """One stored event as a `HistoryEvent` (input and output left out unless `data`)."""
    kind = str(raw["type"])
    number = int(raw["id"])
    event: dict[str, Any] = {
        "timestamp": raw["timestamp"],
        "type": kind,
        "id": number,
        "previousEventId": number - 1,
    }
    member = details_member(kind)
    if member is None:
        return event
    fields = _detail_fields(member)
    details = {k: v for k, v in raw.items() if k in fields and (data or k not in DATA_FIELDS)}
    if "resource" in fields and "resource" in raw:
        details["resourceType"], details["resource"] = resource_parts(str(raw["resource"]))
        if "region" in fields:
            details["region"] = region
    if kind == "ExecutionStarted":
        details["roleArn"] = raw.get("roleArn") or role
    for name in ("input", "output"):
        if name in details and f"{name}Details" in fields:
            details[f"{name}Details"] = {"truncated": False}
    event[member] = details
    return event


def _history_shape() -> StructureShape:
    shape = service_model("stepfunctions").shape_for("HistoryEvent")
    assert isinstance(shape, StructureShape)
    return shape


@functools.cache
def details_member(kind: str) -> str | None:
    """The `HistoryEvent` member that holds the details of an event of type `kind`."""
    members = _history_shape().members
    own = f"{kind[:1].lower()}{kind[1:]}EventDetails"
    if own in members:
        return own
    if kind.endswith("StateEntered"):
        return "stateEnteredEventDetails"
    if kind.endswith("StateExited"):
        return "stateExitedEventDetails"
    return None


@functools.cache
def _detail_fields(member: str) -> frozenset[str]:
    shape = _history_shape().members[member]
    assert isinstance(shape, StructureShape)
    return frozenset(shape.members)


def resource_parts(resource: str) -> tuple[str, str]:
    """AWS's resource type and resource of a task's `Resource`."""
    if resource.startswith(SERVICE_PREFIX):
        service, _, action = resource.removeprefix(SERVICE_PREFIX).partition(":")
        return service, action
    return "lambda", resource  # a function, by name or Lambda ARN


def _event_id(token: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise InvalidToken(f"Invalid Token: '{token}'") from None
