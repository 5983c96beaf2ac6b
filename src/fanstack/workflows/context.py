"""The context object (`$$`) a state sees: its execution, the state, the workflow, and the
task token, as Step Functions gives it; the durable engine and the express runner both use it."""

from __future__ import annotations

from typing import Any

from fanstack.core.arns import global_arn
from fanstack.core.fanout import iso_timestamp
from fanstack.workflows.store import execution_arn, workflow_arn

ROLE = "role/fanstack"  # the role executions run as (IAM is not enforced)


def context_object(
    execution: str,
    input: Any,
    started: float,
    state: str,
    now: float,
    retry_count: int,
    token: str | None = None,
) -> dict[str, Any]:
    """The `$$` of `state` in execution `<workflow>:<name>` (Task.Token when it has one)."""
    workflow, _, name = execution.partition(":")
    context: dict[str, Any] = {
        "Execution": {
            "Id": execution_arn(workflow, name),
            "Input": input,
            "Name": name,
            "StartTime": iso_timestamp(started),
            "RoleArn": global_arn("iam", ROLE),
        },
        "State": {"Name": state, "EnteredTime": iso_timestamp(now), "RetryCount": retry_count},
        "StateMachine": {"Id": workflow_arn(workflow), "Name": workflow},
    }
    if token is not None:
        context["Task"] = {"Token": token}
    return context
