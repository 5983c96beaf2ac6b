"""EventBridge's names on the wire: ARNs of buses, rules, archives, replays and targets both
ways, and pages of listed names.

A bus is named by its name or its ARN (`arn:aws:events:<region>:<account>:event-bus/<name>`);
a rule's ARN leaves the bus out on the default bus (`rule/<name>`, else `rule/<bus>/<name>`).
A target's ARN names what it delivers to: a queue (`sqs`), a topic (`sns`), a function
(`lambda`, `function:<name>`), a bus (`events`, `event-bus/<name>`) or a workflow (`states`,
`stateMachine:<name>`). fanstack's own ARNs (`arn:fanstack:...`) are read as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.core.errors import ValidationException
from fanstack.core.rules import BUS, FUNCTION, QUEUE, TOPIC, WORKFLOW, TargetSpec

DEFAULT_BUS = "default"
MAX_LIMIT = 100
_ARN_PARTS = 6  # arn:<partition>:<service>:<region>:<account>:<resource>


def split_arn(arn: str, what: str) -> tuple[str, str]:
    """(service, resource) of an ARN; ValidationException naming `what` if it is not one."""
    parts = arn.split(":", _ARN_PARTS - 1)
    if len(parts) != _ARN_PARTS or parts[0] != "arn" or not parts[2] or not parts[5]:
        raise ValidationException(f"Parameter {what} is not valid. Reason: {arn!r} is not an ARN.")
    return parts[2], parts[5]


def bus_name(value: str | None, what: str = "EventBusName") -> str:
    """The bus a parameter names, by name or ARN (the default bus if none)."""
    if not value:
        return DEFAULT_BUS
    if not value.startswith("arn:"):
        return value
    service, resource = split_arn(value, what)
    if service != "events" or not resource.startswith("event-bus/"):
        raise ValidationException(
            f"Parameter {what} is not valid. Reason: {value!r} is not an event bus ARN."
        )
    return resource.removeprefix("event-bus/")


def rule_of_arn(arn: str) -> tuple[str, str]:
    """(bus, rule) of a rule ARN."""
    service, resource = split_arn(arn, "RuleArn")
    if service != "events" or not resource.startswith("rule/"):
        raise ValidationException(f"Parameter RuleArn is not valid. Reason: {arn!r} is not a rule.")
    bus, _, rule = resource.removeprefix("rule/").rpartition("/")
    return bus or DEFAULT_BUS, rule


def named_resource(arn: str, kind: str, what: str) -> str:
    """The name in an `events` ARN of `kind` (`archive`, `replay`)."""
    service, resource = split_arn(arn, what)
    if service != "events" or not resource.startswith(f"{kind}/"):
        raise ValidationException(
            f"Parameter {what} is not valid. Reason: {arn!r} is not an {kind} ARN."
        )
    return resource.removeprefix(f"{kind}/")


def bus_arn(call: CallContext, bus: str) -> str:
    """A bus's ARN on the wire."""
    return call.arn("events", f"event-bus/{bus}")


def rule_arn(call: CallContext, bus: str, rule: str) -> str:
    """A rule's ARN on the wire (AWS leaves the default bus out)."""
    return call.arn("events", f"rule/{rule}" if bus == DEFAULT_BUS else f"rule/{bus}/{rule}")


def archive_arn(call: CallContext, archive: str) -> str:
    """An archive's ARN on the wire."""
    return call.arn("events", f"archive/{archive}")


def replay_arn(call: CallContext, replay: str) -> str:
    """A replay's ARN on the wire."""
    return call.arn("events", f"replay/{replay}")


def target_of_arn(arn: str) -> tuple[str, str]:
    """(kind, resource) of what a target ARN delivers to."""
    service, resource = split_arn(arn, "Arn")
    if service == "sqs":
        return QUEUE, resource
    if service == "sns":
        return TOPIC, resource
    if service == "lambda" and resource.startswith("function:"):
        return FUNCTION, resource.split(":")[1]  # a version or alias qualifier is dropped
    if service == "events" and resource.startswith("event-bus/"):
        return BUS, resource.removeprefix("event-bus/")
    if service == "states" and resource.startswith("stateMachine:"):
        return WORKFLOW, resource.removeprefix("stateMachine:")
    raise ValidationException(
        f"Parameter Arn is not valid. Reason: fanstack delivers to SQS queues, SNS topics, "
        f"Lambda functions, event buses and Step Functions state machines, not {arn!r}."
    )


def target_arn(call: CallContext, target: TargetSpec) -> str:
    """The wire ARN of what a target delivers to."""
    if target.kind == QUEUE:
        return call.arn("sqs", target.resource)
    if target.kind == TOPIC:
        return call.arn("sns", target.resource)
    if target.kind == FUNCTION:
        return call.arn("lambda", f"function:{target.resource}")
    if target.kind == BUS:
        return bus_arn(call, target.resource)
    if target.kind == WORKFLOW:
        return call.arn("states", f"stateMachine:{target.resource}")
    return call.arn("events", f"api-destination/{target.id}")


def page(names: Sequence[str], params: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """One page of sorted, distinct `names` after `NextToken`, at most `Limit`; the next token."""
    after = str(params.get("NextToken") or "")
    remaining = [name for name in sorted(set(names)) if name > after]
    limit = params.get("Limit")
    if limit is None:
        return remaining, None
    if not 1 <= int(limit) <= MAX_LIMIT:
        raise ValidationException(
            f"Parameter Limit is not valid. Reason: {limit} is not between 1 and {MAX_LIMIT}."
        )
    chosen = remaining[: int(limit)]
    return chosen, (chosen[-1] if len(remaining) > len(chosen) else None)


def paged(answer: dict[str, Any], token: str | None) -> dict[str, Any]:
    """`answer` with its `NextToken`, if there is one."""
    return {**answer, "NextToken": token} if token else answer
