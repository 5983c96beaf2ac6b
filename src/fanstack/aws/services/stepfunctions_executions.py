"""Step Functions' executions and task tokens on fanstack's workflows.

An execution started here is started as `workflow.start(...)` starts one: a STANDARD one on the
durable engine (a name already running with the same input is that execution), an EXPRESS one
in memory in this server process; `fanstack executions` lists them all. Task tokens are the
ones `.waitForTaskToken` tasks hand out, answered through `workflows.callbacks`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.protocols.errors import AwsError
from fanstack.aws.services.stepfunctions_machines import (
    definition_text,
    execution_arn,
    execution_key,
    extras_of,
    machine_arn,
    machine_name,
    page_size,
    role_of,
    stored_machine,
    workflow_of,
)
from fanstack.core.errors import (
    ExecutionDoesNotExist,
    InvalidToken,
    ValidationException,
)
from fanstack.workflows import EXPRESS, Execution, callbacks
from fanstack.workflows.starts import check_name
from fanstack.workflows.store import RUNNING, SUCCEEDED, ExecutionRecord

Handler = Callable[[CallContext, Mapping[str, Any]], dict[str, Any]]
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
MAX_OUTPUT_BYTES = 262_144
METADATA_ONLY = "METADATA_ONLY"


def execution_of(call: CallContext, arn: Any) -> Execution:
    """The execution an ARN names (InvalidArn, or ExecutionDoesNotExist naming the ARN)."""
    key = execution_key(arn)
    try:
        return Execution.of(call.backend, key)
    except ExecutionDoesNotExist:
        raise ExecutionDoesNotExist(f"Execution Does Not Exist: '{arn}'") from None


def execution_answer(
    call: CallContext, record: ExecutionRecord, *, data: bool = True
) -> dict[str, Any]:
    """DescribeExecution's answer for a record (input and output left out unless `data`)."""
    answer = _list_item(call, record)
    if data:
        answer["input"] = json.dumps(record.input)
        answer["inputDetails"] = {"included": True}
        if record.status == SUCCEEDED:
            answer["output"] = json.dumps(record.output)
            answer["outputDetails"] = {"included": True}
    if record.error is not None:
        answer["error"] = record.error
    if record.cause is not None:
        answer["cause"] = record.cause
    return answer


def _input(params: Mapping[str, Any]) -> Any:
    text = params.get("input")
    if text is None:
        return {}
    try:
        return json.loads(str(text))
    except ValueError as exc:
        raise AwsError(
            "InvalidExecutionInput", f"Invalid State Machine Execution Input: '{exc}'"
        ) from None


def _name(params: Mapping[str, Any]) -> str | None:
    name = params.get("name")
    if name is None:
        return None
    try:
        check_name("execution", str(name))
    except ValidationException as error:
        raise AwsError("InvalidName", f"Invalid Name: '{name}' ({error})") from None
    return str(name)


# -- starting --------------------------------------------------------------------------------


def start_execution(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """StartExecution (a name running with the same input is that execution)."""
    workflow = workflow_of(call, machine_name(params.get("stateMachineArn")))
    value, name = _input(params), _name(params)
    record = workflow.start(value, name=name).describe()
    return {"executionArn": execution_arn(call, record), "startDate": record.start}


def start_sync_execution(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """StartSyncExecution: run an EXPRESS execution to its end."""
    workflow = workflow_of(call, machine_name(params.get("stateMachineArn")))
    if workflow.type != EXPRESS:
        raise AwsError(
            "StateMachineTypeNotSupported",
            "This operation is not supported by this type of state machine",
        )
    value, name = _input(params), _name(params)
    record = workflow.start_sync(value, name=name)
    data = params.get("includedData") != METADATA_ONLY
    return execution_answer(call, record, data=data)


# -- executions ------------------------------------------------------------------------------


def describe_execution(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """DescribeExecution."""
    record = execution_of(call, params.get("executionArn")).describe()
    return execution_answer(call, record, data=params.get("includedData") != METADATA_ONLY)


def stop_execution(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """StopExecution: abort it at its next transition."""
    execution = execution_of(call, params.get("executionArn"))
    error, cause = params.get("error"), params.get("cause")
    record = execution.stop(error, cause)
    stopped = record.stop if record.status != RUNNING and record.stop else call.backend.clock()
    return {"stopDate": stopped}


def list_executions(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """ListExecutions, newest first, optionally of one status."""
    if not params.get("stateMachineArn"):
        raise ValidationException("Must provide a StateMachine ARN or MapRun ARN")
    workflow = workflow_of(call, machine_name(params["stateMachineArn"]))
    status = params.get("statusFilter")
    if status is not None and status not in STATUSES:
        raise ValidationException(
            f"Value '{status}' at 'statusFilter' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(STATUSES)}]"
        )
    limit = page_size(params)
    records = sorted(workflow.executions(status), key=_newest_first)
    token = params.get("nextToken")
    if token:
        after = _position(str(token))
        records = [r for r in records if _newest_first(r) > after]
    page = records[:limit]
    answer: dict[str, Any] = {"executions": [_list_item(call, r) for r in page]}
    if len(records) > limit:
        answer["nextToken"] = _token(_newest_first(page[-1]))
    return answer


def _newest_first(record: ExecutionRecord) -> tuple[float, str]:
    return (-record.start, record.name)


def _token(position: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode()


def _position(token: str) -> tuple[float, str]:
    try:
        start, name = json.loads(base64.urlsafe_b64decode(token.encode()))
        return float(start), str(name)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidToken(f"Invalid Token: '{token}'") from None


def _list_item(call: CallContext, record: ExecutionRecord) -> dict[str, Any]:
    item = {
        "executionArn": execution_arn(call, record),
        "stateMachineArn": machine_arn(call, record.workflow),
        "name": record.name,
        "status": record.status,
        "startDate": record.start,
    }
    if record.stop is not None:
        item["stopDate"] = record.stop
    return item


def describe_state_machine_for_execution(
    call: CallContext, params: Mapping[str, Any]
) -> dict[str, Any]:
    """DescribeStateMachineForExecution."""
    record = execution_of(call, params.get("executionArn")).describe()
    stored = stored_machine(call, record.workflow)
    extras = extras_of(call.backend, record.workflow)
    return {
        "stateMachineArn": machine_arn(call, record.workflow),
        "name": record.workflow,
        "definition": definition_text(stored, extras),
        "roleArn": role_of(call, extras),
        "updateDate": extras.updated,
    }


# -- task tokens -----------------------------------------------------------------------------


def send_task_success(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """SendTaskSuccess: a `.waitForTaskToken` task succeeded with `output`."""
    text = str(params.get("output") or "")
    try:
        json.loads(text)
    except ValueError as exc:
        raise AwsError("InvalidOutput", f"Invalid Output: '{exc}'") from None
    if len(text.encode()) > MAX_OUTPUT_BYTES:
        raise AwsError("InvalidOutput", f"the output is over {MAX_OUTPUT_BYTES} bytes")
    callbacks.send_task_success(call.backend, str(params.get("taskToken") or ""), text)
    return {}


def send_task_failure(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """SendTaskFailure: a `.waitForTaskToken` task failed."""
    token = str(params.get("taskToken") or "")
    callbacks.send_task_failure(call.backend, token, params.get("error"), params.get("cause"))
    return {}


def send_task_heartbeat(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """SendTaskHeartbeat: a `.waitForTaskToken` task is still at work."""
    callbacks.send_task_heartbeat(call.backend, str(params.get("taskToken") or ""))
    return {}


OPERATIONS: dict[str, Handler] = {
    "StartExecution": start_execution,
    "StartSyncExecution": start_sync_execution,
    "DescribeExecution": describe_execution,
    "StopExecution": stop_execution,
    "ListExecutions": list_executions,
    "DescribeStateMachineForExecution": describe_state_machine_for_execution,
    "SendTaskSuccess": send_task_success,
    "SendTaskFailure": send_task_failure,
    "SendTaskHeartbeat": send_task_heartbeat,
}
