"""EventBridge's targets on fanstack's (`TargetSpec`s of a rule): put, remove, list, and the
rules that deliver to a target.

A wire target is turned into the spec `Target(...)` would declare: its ARN names the queue,
topic, function, bus or workflow; `Input`, `InputPath` and `InputTransformer` become its
`TargetInput` (checked by fanstack's renderer), `RetryPolicy` its retry limits,
`DeadLetterConfig` its dead-letter queue, `SqsParameters` its message group. A target that
cannot be made fails alone, in `FailedEntries`; the others are put.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.services.events_buses import existing_bus
from fanstack.aws.services.events_extras import extras_of, forget, keep
from fanstack.aws.services.events_names import page, paged, split_arn, target_arn, target_of_arn
from fanstack.aws.services.events_rules import rule_named
from fanstack.bus.catalog import Catalog
from fanstack.core.errors import FanstackError, LimitExceeded, ValidationException
from fanstack.core.rules import (
    DEFAULT_MAXIMUM_EVENT_AGE,
    DEFAULT_MAXIMUM_RETRY_ATTEMPTS,
    MAX_TARGETS_PER_RULE,
    QUEUE,
    TargetSpec,
)
from fanstack.core.target_input import InputTransformer, TargetInput


def target_from_wire(wire: Mapping[str, Any]) -> TargetSpec:
    """The spec of one wire target (ValidationException naming what is wrong)."""
    kind, resource = target_of_arn(str(wire.get("Arn") or ""))
    transformer = wire.get("InputTransformer")
    retry = wire.get("RetryPolicy") or {}
    group = (wire.get("SqsParameters") or {}).get("MessageGroupId")
    target_id = str(wire.get("Id") or "")
    if kind == QUEUE and resource.endswith(".fifo") and not group:
        raise ValidationException(
            f"Parameter(s) SqsParameters must be specified for target: {target_id}."
        )
    return TargetSpec(
        id=target_id,
        kind=kind,
        resource=resource,
        input=TargetInput(
            input=wire.get("Input"),
            input_path=wire.get("InputPath"),
            input_transformer=None
            if transformer is None
            else InputTransformer(
                input_paths=dict(transformer.get("InputPathsMap") or {}),
                input_template=str(transformer.get("InputTemplate") or ""),
            ),
        ),
        maximum_event_age=int(retry.get("MaximumEventAgeInSeconds", DEFAULT_MAXIMUM_EVENT_AGE)),
        maximum_retry_attempts=int(
            retry.get("MaximumRetryAttempts", DEFAULT_MAXIMUM_RETRY_ATTEMPTS)
        ),
        dead_letter=_dead_letter(wire.get("DeadLetterConfig")),
        message_group_id=group,
    )


def _dead_letter(config: Mapping[str, Any] | None) -> str | None:
    arn = (config or {}).get("Arn")
    if not arn:
        return None
    service, queue = split_arn(str(arn), "DeadLetterConfig.Arn")
    if service != "sqs":
        raise ValidationException(
            f"Parameter DeadLetterConfig.Arn is not valid. Reason: {arn!r} is not an SQS queue."
        )
    if queue.endswith(".fifo"):
        raise ValidationException(
            f"Parameter DeadLetterConfig.Arn is not valid. Reason: {queue!r} is a FIFO queue; "
            "a dead-letter queue must be a standard queue."
        )
    return queue


def target_to_wire(
    call: CallContext, target: TargetSpec, kept: Mapping[str, Any]
) -> dict[str, Any]:
    """A target as ListTargetsByRule shows it (only what was set)."""
    answer: dict[str, Any] = {"Id": target.id, "Arn": target_arn(call, target)}
    given = target.input
    if given.input is not None:
        answer["Input"] = given.input
    if given.input_path is not None:
        answer["InputPath"] = given.input_path
    if given.input_transformer is not None:
        answer["InputTransformer"] = {
            "InputPathsMap": dict(given.input_transformer.input_paths),
            "InputTemplate": given.input_transformer.input_template,
        }
    retry = (target.maximum_event_age, target.maximum_retry_attempts)
    if retry != (DEFAULT_MAXIMUM_EVENT_AGE, DEFAULT_MAXIMUM_RETRY_ATTEMPTS):
        answer["RetryPolicy"] = {
            "MaximumEventAgeInSeconds": target.maximum_event_age,
            "MaximumRetryAttempts": target.maximum_retry_attempts,
        }
    if target.dead_letter is not None:
        answer["DeadLetterConfig"] = {"Arn": call.arn("sqs", target.dead_letter)}
    if target.message_group_id is not None:
        answer["SqsParameters"] = {"MessageGroupId": target.message_group_id}
    if kept.get("RoleArn"):
        answer["RoleArn"] = kept["RoleArn"]
    return answer


def _failed(target_id: Any, error: FanstackError) -> dict[str, Any]:
    message = getattr(error, "message", None) or str(error)
    return {"TargetId": str(target_id or ""), "ErrorCode": error.code, "ErrorMessage": message}


def put_targets(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    rule = rule_named(call, params, "Rule")
    wire_targets = list(params.get("Targets") or [])
    ids = [str(t.get("Id") or "") for t in wire_targets]
    if len(set(ids)) != len(ids):
        raise ValidationException("Parameter Targets is not valid. Reason: target ids repeat.")
    made: dict[str, TargetSpec] = {}
    failed: list[dict[str, Any]] = []
    for wire in wire_targets:
        try:
            made[str(wire.get("Id"))] = target_from_wire(wire)
        except FanstackError as error:
            failed.append(_failed(wire.get("Id"), error))
    targets = [made.pop(t.id, t) for t in rule.targets] + list(made.values())
    if len(targets) > MAX_TARGETS_PER_RULE:
        raise LimitExceeded(
            f"Rule {rule.name} would have {len(targets)} targets; the limit is "
            f"{MAX_TARGETS_PER_RULE} targets per rule."
        )
    Catalog(call.backend).put_rule(dataclasses.replace(rule, targets=tuple(targets)))
    for wire in wire_targets:
        if str(wire.get("Id")) in {t.id for t in targets}:
            key = f"target/{rule.bus}/{rule.name}/{wire.get('Id')}"
            keep(call.backend, key, RoleArn=wire.get("RoleArn"))
    return {"FailedEntryCount": len(failed), "FailedEntries": failed}


def remove_targets(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Remove targets by id (an id the rule does not have is no error)."""
    rule = rule_named(call, params, "Rule")
    removed = {str(target_id) for target_id in params.get("Ids") or []}
    kept = tuple(t for t in rule.targets if t.id not in removed)
    if len(kept) != len(rule.targets):
        Catalog(call.backend).put_rule(dataclasses.replace(rule, targets=kept))
    forget(call.backend, *(f"target/{rule.bus}/{rule.name}/{i}" for i in removed))
    return {"FailedEntryCount": 0, "FailedEntries": []}


def list_targets_by_rule(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    rule = rule_named(call, params, "Rule")
    targets = {t.id: t for t in rule.targets}
    chosen, token = page(list(targets), params)
    shown = [
        target_to_wire(
            call, targets[i], extras_of(call.backend, f"target/{rule.bus}/{rule.name}/{i}")
        )
        for i in chosen
    ]
    return paged({"Targets": shown}, token)


def list_rule_names_by_target(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    bus = existing_bus(call, params.get("EventBusName"))
    wanted = target_of_arn(str(params.get("TargetArn") or ""))
    names = [
        rule.name
        for rule in Catalog(call.backend).rules(bus)
        if any((t.kind, t.resource) == wanted for t in rule.targets)
    ]
    chosen, token = page(names, params)
    return paged({"RuleNames": chosen}, token)
