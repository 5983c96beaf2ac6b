"""EventBridge Scheduler's `Target` as fanstack's target of a schedule, both ways.

The target's ARN names what fires: an SQS queue, an SNS topic, an EventBridge bus
(`...:event-bus/<name>`), a fanstack function by its Lambda ARN (`...:function:<name>`, a
qualifier ignored) or a workflow by its state machine ARN (`...:stateMachine:<name>`). Its
RetryPolicy, DeadLetterConfig (an SQS queue) and SqsParameters.MessageGroupId become the
target's retry policy, dead-letter queue and message group. A bus target's event is fanstack's
scheduled event (`source` `fanstack.scheduler`, `detail-type` `Scheduled Event`): other
EventBridgeParameters, and the targets fanstack has no counterpart for (ECS, Kinesis,
SageMaker, universal `aws-sdk` targets), are answered with a ValidationException.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.core.errors import ValidationException
from fanstack.core.rules import BUS, FUNCTION, QUEUE, TOPIC, WORKFLOW, TargetSpec
from fanstack.core.schedules import ScheduleSpec
from fanstack.schedules.delivery import SCHEDULED_EVENT, SCHEDULER_SOURCE

TARGET_ID = "schedule"  # the id `app.schedule(...)` gives its target too
UNSUPPORTED_PARAMETERS = (
    "EcsParameters",
    "EventBridgePutEventsV2Parameters",
    "EventBridgePutRawEventsParameters",
    "KinesisParameters",
    "SageMakerPipelineParameters",
)
# ARN service -> (target kind, the prefix of the resource part before the name).
_KINDS = {
    "sqs": (QUEUE, ""),
    "sns": (TOPIC, ""),
    "events": (BUS, "event-bus/"),
    "lambda": (FUNCTION, "function:"),
    "states": (WORKFLOW, "stateMachine:"),
}
_SERVICES = {kind: (service, prefix) for service, (kind, prefix) in _KINDS.items()}


def resource_of(arn: str, field: str) -> tuple[str, str]:
    """The target kind and resource name an ARN names (ValidationException naming `field`)."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] not in _KINDS:
        raise ValidationException(
            f"{field} {arn!r} is not a target fanstack fires: give the ARN of an SQS queue, an "
            "SNS topic, an EventBridge bus, a Lambda function or a Step Functions state machine"
        )
    kind, prefix = _KINDS[parts[2]]
    resource = parts[5]
    if not resource.startswith(prefix) or len(resource) == len(prefix):
        raise ValidationException(f"{field} {arn!r}: expected {prefix}<name> after the account")
    name = resource[len(prefix) :]
    if kind == FUNCTION:
        name = name.split(":", 1)[0]  # a version or alias qualifier: fanstack has one version
    return kind, name


def target_arn(call: CallContext, kind: str, resource: str) -> str:
    """The ARN of a target, in AWS's format with the endpoint's account and region."""
    service, prefix = _SERVICES.get(kind, ("events", "api-destination/"))
    return call.arn(service, f"{prefix}{resource}")


def target_spec(target: Mapping[str, Any]) -> TargetSpec:
    """The spec of a wire `Target` (its Input goes on the schedule, not the target)."""
    for name in UNSUPPORTED_PARAMETERS:
        if target.get(name) is not None:
            raise ValidationException(f"Target.{name}: fanstack has no such target")
    kind, resource = resource_of(str(target.get("Arn") or ""), "Target.Arn")
    _check_event_parameters(kind, target.get("EventBridgeParameters"))
    retry = target.get("RetryPolicy") or {}
    age = retry.get("MaximumEventAgeInSeconds")
    attempts = retry.get("MaximumRetryAttempts")
    message_group = (target.get("SqsParameters") or {}).get("MessageGroupId")
    if kind == QUEUE and resource.endswith(".fifo") and not message_group:
        raise ValidationException(
            f"Target.SqsParameters.MessageGroupId is required: queue {resource} is FIFO"
        )
    options: dict[str, Any] = {}
    if age is not None:
        options["maximum_event_age"] = int(age)
    if attempts is not None:
        options["maximum_retry_attempts"] = int(attempts)
    return TargetSpec(
        id=TARGET_ID,
        kind=kind,
        resource=resource,
        dead_letter=_dead_letter(target.get("DeadLetterConfig")),
        message_group_id=message_group,
        **options,
    )


def wire_target(call: CallContext, spec: ScheduleSpec, extras: Mapping[str, Any]) -> dict[str, Any]:
    """A schedule's `Target` as GetSchedule answers it (the ARNs as given, when given)."""
    target = spec.target
    wire: dict[str, Any] = {
        "Arn": extras.get("target_arn") or target_arn(call, target.kind, target.resource),
        "RoleArn": extras.get("role_arn") or default_role(call),
        "RetryPolicy": {
            "MaximumEventAgeInSeconds": target.maximum_event_age,
            "MaximumRetryAttempts": target.maximum_retry_attempts,
        },
    }
    if spec.input is not None:
        wire["Input"] = spec.input
    if target.dead_letter is not None:
        wire["DeadLetterConfig"] = {
            "Arn": extras.get("dead_letter_arn") or call.arn("sqs", target.dead_letter)
        }
    if target.message_group_id is not None:
        wire["SqsParameters"] = {"MessageGroupId": target.message_group_id}
    if target.kind == BUS:
        wire["EventBridgeParameters"] = {"DetailType": SCHEDULED_EVENT, "Source": SCHEDULER_SOURCE}
    return wire


def default_role(call: CallContext) -> str:
    """The RoleArn shown for a schedule declared in Python (which names no role)."""
    return f"arn:aws:iam::{call.settings.account}:role/fanstack-scheduler"


def _dead_letter(config: Mapping[str, Any] | None) -> str | None:
    arn = (config or {}).get("Arn")
    if not arn:
        return None
    kind, name = resource_of(str(arn), "Target.DeadLetterConfig.Arn")
    if kind != QUEUE or name.endswith(".fifo"):
        raise ValidationException(
            f"Target.DeadLetterConfig.Arn {arn!r} must be the ARN of a standard SQS queue"
        )
    return name


def _check_event_parameters(kind: str, parameters: Mapping[str, Any] | None) -> None:
    if parameters is None:
        return
    if kind != BUS:
        raise ValidationException("Target.EventBridgeParameters: the target is not an event bus")
    given = (parameters.get("Source"), parameters.get("DetailType"))
    if given != (SCHEDULER_SOURCE, SCHEDULED_EVENT):
        raise ValidationException(
            "Target.EventBridgeParameters: fanstack's schedules send their events with Source "
            f"{SCHEDULER_SOURCE!r} and DetailType {SCHEDULED_EVENT!r} (got {given[0]!r} and "
            f"{given[1]!r})"
        )
