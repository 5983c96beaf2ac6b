"""AWS Step Functions' API on fanstack's workflows: state machines, executions, history, task
tokens, validation and tags.

A state machine made here is a workflow as `app.workflow(...)` declares one: stored where
declared workflows are stored, listed by `fanstack workflows`, run by the worker role's engine;
its executions are the ones `fanstack executions` lists. A workflow declared in the app's code
is owned by that code: it is listed, described, started and tagged over the wire, but not
updated or deleted there (the code would put it back when the app next starts). The operations
on executions are in `stepfunctions_executions.py`, history in `stepfunctions_history.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.protocols.errors import AwsError
from fanstack.aws.services import stepfunctions_executions as executions
from fanstack.aws.services.stepfunctions_history import get_execution_history
from fanstack.aws.services.stepfunctions_machines import (
    MachineExtras,
    check_machine_name,
    checked_definition,
    compact,
    definition_text,
    extras_of,
    forget_extras,
    is_declared,
    machine_arn,
    machine_name,
    page_size,
    revision_id,
    role_of,
    same_definition,
    save_extras,
    stored_machine,
)
from fanstack.core.errors import (
    ConditionalCheckFailed,
    InvalidDefinition,
    StateMachineDoesNotExist,
    ValidationException,
)
from fanstack.workflows import STANDARD, Execution
from fanstack.workflows.store import RUNNING, WORKFLOWS_TABLE, Store

Handler = Callable[[CallContext, Mapping[str, Any]], dict[str, Any]]
MAX_TAGS = 50
LOGGING_OFF = {"level": "OFF", "includeExecutionData": False}


# -- state machines --------------------------------------------------------------------------


def create_state_machine(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """CreateStateMachine: store a workflow (the same one again is no change)."""
    name = str(params.get("name") or "")
    check_machine_name(name)
    type = str(params.get("type") or STANDARD)
    machine = checked_definition(name, params.get("definition"), type)
    text = compact(machine)
    tags = _tags(params.get("tags") or [])
    backend = call.backend
    value = {"name": name, "definition": text, "type": type}
    try:
        backend.table_put(WORKFLOWS_TABLE, name, value, if_absent=True)
    except ConditionalCheckFailed:
        existing = stored_machine(call, name)
        if existing.get("type") != type or not same_definition(existing["definition"], text):
            raise AwsError(
                "StateMachineAlreadyExists",
                f"State Machine Already Exists: '{machine_arn(call, name)}'",
            ) from None
        return {"stateMachineArn": machine_arn(call, name), "creationDate": _created(call, name)}
    now = time.time()
    extras = MachineExtras(
        created=now,
        updated=now,
        role_arn=str(params.get("roleArn") or "") or None,
        definition_text=str(params["definition"]),
        tags=tags,
        logging=params.get("loggingConfiguration"),
        tracing=params.get("tracingConfiguration"),
    )
    save_extras(backend, name, extras)
    return {"stateMachineArn": machine_arn(call, name), "creationDate": now}


def describe_state_machine(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """DescribeStateMachine."""
    name = machine_name(params.get("stateMachineArn"))
    return describe_machine(call, name, stored_machine(call, name))


def describe_machine(call: CallContext, name: str, stored: Mapping[str, Any]) -> dict[str, Any]:
    """DescribeStateMachine's answer for a stored workflow."""
    extras = extras_of(call.backend, name)
    return {
        "stateMachineArn": machine_arn(call, name),
        "name": name,
        "status": "ACTIVE",
        "definition": definition_text(stored, extras),
        "roleArn": role_of(call, extras),
        "type": str(stored.get("type", STANDARD)),
        "creationDate": extras.created,
        "loggingConfiguration": extras.logging or LOGGING_OFF,
        "tracingConfiguration": extras.tracing or {"enabled": False},
        "revisionId": revision_id(str(stored["definition"])),
    }


def update_state_machine(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """UpdateStateMachine: a new definition, role, logging or tracing."""
    name = machine_name(params.get("stateMachineArn"))
    stored = stored_machine(call, name)
    if is_declared(call, name):
        raise AwsError(
            "ConflictException",
            f"state machine {name!r} is declared by the app's code (app.workflow); change it there",
        )
    extras = extras_of(call.backend, name)
    given = params.get("definition")
    if given is None and not any(
        k in params for k in ("roleArn", "loggingConfiguration", "tracingConfiguration")
    ):
        raise AwsError(
            "MissingRequiredParameter",
            "Either the definition, the roleArn, the loggingConfiguration or the "
            "tracingConfiguration must be specified",
        )
    text = str(stored["definition"])
    if given is not None:
        text = compact(checked_definition(name, given, str(stored.get("type", STANDARD))))
        call.backend.table_put(WORKFLOWS_TABLE, name, {**stored, "definition": text})
    now = time.time()
    extras = replace(
        extras,
        updated=now,
        role_arn=str(params.get("roleArn") or extras.role_arn or "") or None,
        definition_text=str(given) if given is not None else extras.definition_text,
        logging=params.get("loggingConfiguration", extras.logging),
        tracing=params.get("tracingConfiguration", extras.tracing),
    )
    save_extras(call.backend, name, extras)
    return {"updateDate": now, "revisionId": revision_id(text)}


def delete_state_machine(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """DeleteStateMachine (its running executions are aborted)."""
    name = machine_name(params.get("stateMachineArn"))
    if is_declared(call, name):
        raise ValidationException(
            f"state machine {name!r} is declared by the app's code (app.workflow); remove it there"
        )
    # As AWS does, deleting a state machine that is not there succeeds. Its running executions
    # are aborted: without their definition, the engine could not take them any further.
    backend = call.backend
    for record in Store(backend).executions(name):
        if record.status == RUNNING:
            Execution(backend, record.key).stop("States.Aborted", "the state machine was deleted")
    backend.table_delete(WORKFLOWS_TABLE, name)
    forget_extras(backend, name)
    return {}


def list_state_machines(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """ListStateMachines, by name, a page at a time."""
    limit = page_size(params)
    after = str(params.get("nextToken") or "")
    items = call.backend.table_scan(WORKFLOWS_TABLE, limit=limit + 1, start_after=after)
    page = items[:limit]
    answer: dict[str, Any] = {
        "stateMachines": [
            {
                "stateMachineArn": machine_arn(call, item.key),
                "name": item.key,
                "type": str(item.value.get("type", STANDARD)),
                "creationDate": extras_of(call.backend, item.key).created,
            }
            for item in page
        ]
    }
    if len(items) > limit:
        answer["nextToken"] = page[-1].key
    return answer


def validate_state_machine_definition(
    call: CallContext, params: Mapping[str, Any]
) -> dict[str, Any]:
    """ValidateStateMachineDefinition: OK, or FAIL with the fault."""
    type = str(params.get("type") or STANDARD)
    try:
        checked_definition("definition", params.get("definition"), type)
    except InvalidDefinition as error:
        diagnostic = {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED",
                      "message": str(error)}  # fmt: skip
        return {"result": "FAIL", "diagnostics": [diagnostic], "truncated": False}
    return {"result": "OK", "diagnostics": [], "truncated": False}


def _created(call: CallContext, name: str) -> float:
    return extras_of(call.backend, name).created


# -- tags ------------------------------------------------------------------------------------


def _tags(given: Any) -> dict[str, str]:
    tags = {str(tag.get("key", "")): str(tag.get("value", "")) for tag in given}
    _check_tag_count(tags)
    return tags


def _check_tag_count(tags: Mapping[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise AwsError("TooManyTags", f"a resource has at most {MAX_TAGS} tags; {len(tags)} given")


def _tagged(call: CallContext, params: Mapping[str, Any]) -> str:
    """The state machine a tag operation names (ResourceNotFound if none)."""
    arn = params.get("resourceArn")
    name = machine_name(arn)
    try:
        stored_machine(call, name)
    except StateMachineDoesNotExist:
        raise AwsError("ResourceNotFound", f"Resource not found: '{arn}'") from None
    return name


def tag_resource(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """TagResource."""
    name = _tagged(call, params)
    extras = extras_of(call.backend, name)
    tags = {**extras.tags, **_tags(params.get("tags") or [])}
    _check_tag_count(tags)
    save_extras(call.backend, name, replace(extras, tags=tags))
    return {}


def untag_resource(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """UntagResource."""
    name = _tagged(call, params)
    extras = extras_of(call.backend, name)
    removed = set(params.get("tagKeys") or [])
    tags = {k: v for k, v in extras.tags.items() if k not in removed}
    save_extras(call.backend, name, replace(extras, tags=tags))
    return {}


def list_tags_for_resource(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """ListTagsForResource."""
    tags = extras_of(call.backend, _tagged(call, params)).tags
    return {"tags": [{"key": k, "value": v} for k, v in tags.items()]}


OPERATIONS: dict[str, Handler] = {
    "CreateStateMachine": create_state_machine,
    "DescribeStateMachine": describe_state_machine,
    "UpdateStateMachine": update_state_machine,
    "DeleteStateMachine": delete_state_machine,
    "ListStateMachines": list_state_machines,
    "ValidateStateMachineDefinition": validate_state_machine_definition,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
    "GetExecutionHistory": get_execution_history,
    **executions.OPERATIONS,
}
