"""Step Functions over the wire: real boto3 clients (and the AWS CLI) against `fanstack run`.

One world: a workflow declared in Python is a state machine boto3 lists and starts, and a state
machine made with boto3 is a workflow the worker role runs, listed by `fanstack workflows`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from fanstack import App
from fanstack.workflows.store import Store

from .aws_clients import aws_client
from .conftest import Server, start_server, wait_for

APP = Path(__file__).with_name("aws_workflows_app.py")
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
ROLE = "arn:aws:iam::000000000000:role/service-role/StepFunctions"
PREFIX = "arn:aws:states:us-east-1:000000000000"
DOUBLE_ARN = "arn:aws:lambda:us-east-1:000000000000:function:double"


def machine(*states: tuple[str, dict[str, Any]]) -> str:
    """A definition whose states run in the order given."""
    body = {}
    for index, (name, state) in enumerate(states):
        follow = {"Next": states[index + 1][0]} if index + 1 < len(states) else {"End": True}
        body[name] = {**state, **({} if state["Type"] in ("Succeed", "Fail") else follow)}
    return json.dumps({"StartAt": states[0][0], "States": body}, indent=2)


DOUBLE_THEN_PASS = machine(
    ("Double", {"Type": "Task", "Resource": DOUBLE_ARN}),
    ("Label", {"Type": "Pass", "Parameters": {"doubled.$": "$.value"}}),
)
WAITING = machine(("Sleep", {"Type": "Wait", "Seconds": 120}))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(APP, tmp_path_factory.mktemp("aws-sfn") / "state")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def sfn(server: Server) -> Any:
    return aws_client(server.url, "stepfunctions")


@pytest.fixture(scope="module")
def sync_sfn(server: Server) -> Any:
    """StartSyncExecution's model asks for a `sync-` host prefix, which a local endpoint lacks:
    the client turns it off, as with `AWS_DISABLE_HOST_PREFIX_INJECTION=true`."""
    return aws_client(server.url, "stepfunctions", inject_host_prefix=False)


@pytest.fixture(scope="module")
def store(server: Server) -> Iterator[App]:
    app = App("aws-workflows-test", backend=f"sqlite://{server.data_dir}")
    yield app
    app.close()


def create(sfn: Any, name: str, definition: str, **options: Any) -> str:
    arn: str = sfn.create_state_machine(name=name, definition=definition, roleArn=ROLE, **options)[
        "stateMachineArn"
    ]
    return arn


def ended(sfn: Any, execution_arn: str, timeout: float = 30) -> dict[str, Any]:
    """DescribeExecution once the execution is no longer RUNNING."""

    def done() -> dict[str, Any] | None:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        return described if described["status"] != "RUNNING" else None

    found: dict[str, Any] = wait_for(done, timeout=timeout)  # type: ignore[assignment]
    return found


def error_code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def fanstack_cli(server: Server, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "fanstack.cli", "--data-dir", str(server.data_dir), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# -- one world ---------------------------------------------------------------------------------


def test_a_declared_workflow_is_listed_and_started_over_the_wire(sfn: Any, store: App) -> None:
    listed = {m["name"]: m for m in sfn.list_state_machines()["stateMachines"]}
    assert listed["declared-flow"]["type"] == "STANDARD"
    assert listed["declared-flow"]["stateMachineArn"] == f"{PREFIX}:stateMachine:declared-flow"
    assert listed["declared-express"]["type"] == "EXPRESS"
    described = sfn.describe_state_machine(stateMachineArn=f"{PREFIX}:stateMachine:declared-flow")
    assert json.loads(described["definition"])["StartAt"] == "Double"
    assert described["status"] == "ACTIVE"
    assert described["roleArn"].startswith("arn:aws:iam::000000000000:role/")
    started = sfn.start_execution(
        stateMachineArn=described["stateMachineArn"], name="from-boto3", input='{"value": 21}'
    )
    assert started["executionArn"] == f"{PREFIX}:execution:declared-flow:from-boto3"
    record = ended(sfn, started["executionArn"])
    assert record["status"] == "SUCCEEDED"
    assert json.loads(record["output"]) == {"value": 42}
    assert json.loads(record["input"]) == {"value": 21}
    # the same execution, as the Python side sees it
    python_side = Store(store.backend).execution("declared-flow:from-boto3")
    assert python_side.status == "SUCCEEDED"
    assert python_side.output == {"value": 42}


def test_a_machine_made_over_the_wire_runs_on_the_worker_with_its_history(
    sfn: Any, server: Server
) -> None:
    arn = create(sfn, "wire-made", DOUBLE_THEN_PASS)
    assert arn == f"{PREFIX}:stateMachine:wire-made"
    run = sfn.start_execution(stateMachineArn=arn, input='{"value": 5}')["executionArn"]
    record = ended(sfn, run)
    assert record["status"] == "SUCCEEDED", record
    assert json.loads(record["output"]) == {"doubled": 10}
    events = sfn.get_execution_history(executionArn=run)["events"]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "ExecutionStarted"
    assert kinds[-1] == "ExecutionSucceeded"
    assert {"TaskStateEntered", "TaskScheduled", "TaskSucceeded", "PassStateExited"} <= set(kinds)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    started = events[0]["executionStartedEventDetails"]
    assert json.loads(started["input"]) == {"value": 5}
    assert started["roleArn"] == ROLE
    scheduled = next(e for e in events if e["type"] == "TaskScheduled")
    details = scheduled["taskScheduledEventDetails"]
    assert (details["resourceType"], details["resource"]) == ("lambda", DOUBLE_ARN)
    assert json.loads(details["parameters"]) == {"value": 5}
    entered = next(e for e in events if e["type"] == "TaskStateEntered")
    assert entered["stateEnteredEventDetails"]["name"] == "Double"
    succeeded = events[-1]["executionSucceededEventDetails"]
    assert json.loads(succeeded["output"]) == {"doubled": 10}
    # pages, both ways
    first = sfn.get_execution_history(executionArn=run, maxResults=2)
    assert [e["id"] for e in first["events"]] == [1, 2]
    second = sfn.get_execution_history(executionArn=run, maxResults=2,
                                       nextToken=first["nextToken"])  # fmt: skip
    assert [e["id"] for e in second["events"]] == [3, 4]
    backwards = sfn.get_execution_history(executionArn=run, reverseOrder=True, maxResults=1)
    assert backwards["events"][0]["type"] == "ExecutionSucceeded"
    bare = sfn.get_execution_history(executionArn=run, includeExecutionData=False)["events"]
    assert "input" not in bare[0]["executionStartedEventDetails"]
    # the same workflow and execution, as fanstack's CLI lists them
    workflows = {w["name"]: w for w in fanstack_cli(server, "workflows", "--json")}
    assert workflows["wire-made"]["type"] == "STANDARD"
    assert workflows["wire-made"]["executions"] == {"SUCCEEDED": 1}
    executions = fanstack_cli(server, "executions", "wire-made", "--json")
    assert [e["status"] for e in executions] == ["SUCCEEDED"]


def test_a_wait_for_task_token_task_is_answered_over_the_wire(sfn: Any, store: App) -> None:
    arn = create(sfn, "approval", machine(("Ask", {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": "tokens", "MessageBody": {"token.$": "$$.Task.Token"}},
        "HeartbeatSeconds": 60,
    })))  # fmt: skip

    def token() -> str:
        got = wait_for(lambda: store.queue_for("tokens").receive(wait_seconds=1))
        (message,) = got  # type: ignore[misc]
        store.queue_for("tokens").delete(message.receipt_handle)
        return str(json.loads(message.body)["token"])

    approved = sfn.start_execution(stateMachineArn=arn, name="yes")["executionArn"]
    task_token = token()
    sfn.send_task_heartbeat(taskToken=task_token)
    sfn.send_task_success(taskToken=task_token, output='{"approved": true}')
    record = ended(sfn, approved)
    assert record["status"] == "SUCCEEDED"
    assert json.loads(record["output"]) == {"approved": True}
    with pytest.raises(ClientError) as again:
        sfn.send_task_success(taskToken=task_token, output="{}")
    assert error_code(again) == "TaskTimedOut"

    refused = sfn.start_execution(stateMachineArn=arn, name="no")["executionArn"]
    task_token = token()
    with pytest.raises(ClientError) as bad_output:
        sfn.send_task_success(taskToken=task_token, output="{not json")
    assert error_code(bad_output) == "InvalidOutput"
    sfn.send_task_failure(taskToken=task_token, error="Refused", cause="not today")
    record = ended(sfn, refused)
    assert (record["status"], record["error"], record["cause"]) == ("FAILED", "Refused",
                                                                    "not today")  # fmt: skip
    for call in (sfn.send_task_heartbeat, sfn.send_task_failure):
        with pytest.raises(ClientError) as invalid:
            call(taskToken="not-a-token")
        assert error_code(invalid) == "InvalidToken"


def test_a_function_the_app_does_not_declare_fails_the_task(sfn: Any) -> None:
    missing = "arn:aws:lambda:us-east-1:000000000000:function:nowhere"
    arn = create(sfn, "calls-nowhere", machine(("Call", {"Type": "Task", "Resource": missing})))
    run = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    record = ended(sfn, run)
    assert record["status"] == "FAILED"
    assert record["error"] == "States.TaskFailed"
    assert "nowhere" in record["cause"]


# -- state machines ------------------------------------------------------------------------------


def test_create_is_idempotent_and_checks_the_definition(sfn: Any) -> None:
    arn = create(sfn, "twice", DOUBLE_THEN_PASS)
    first = sfn.describe_state_machine(stateMachineArn=arn)
    assert first["definition"] == DOUBLE_THEN_PASS  # as given, formatting and all
    assert first["roleArn"] == ROLE
    again = sfn.create_state_machine(name="twice", definition=DOUBLE_THEN_PASS, roleArn=ROLE)
    assert again["stateMachineArn"] == arn
    assert again["creationDate"] == first["creationDate"]
    with pytest.raises(ClientError) as exists:
        create(sfn, "twice", WAITING)
    assert error_code(exists) == "StateMachineAlreadyExists"
    broken = machine(("Broken", {"Type": "Task", "Resource": DOUBLE_ARN, "Bogus": 1}))
    with pytest.raises(ClientError) as invalid:
        create(sfn, "broken", broken)
    assert error_code(invalid) == "InvalidDefinition"
    assert "Broken" in str(invalid.value) and "Bogus" in str(invalid.value)
    with pytest.raises(ClientError) as not_json:
        create(sfn, "broken", "{")
    assert error_code(not_json) == "InvalidDefinition"
    with pytest.raises(ClientError) as bad_name:
        create(sfn, "has space", DOUBLE_THEN_PASS)
    assert error_code(bad_name) == "InvalidName"
    ask = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": "tokens", "MessageBody": "x"},
    }
    waits = machine(("Ask", ask))
    with pytest.raises(ClientError) as express:
        create(sfn, "express-waits", waits, type="EXPRESS")
    assert error_code(express) == "InvalidDefinition"
    with pytest.raises(ClientError) as missing:
        sfn.describe_state_machine(stateMachineArn=f"{PREFIX}:stateMachine:nope")
    assert error_code(missing) == "StateMachineDoesNotExist"
    with pytest.raises(ClientError) as bad_arn:
        sfn.describe_state_machine(stateMachineArn=f"{PREFIX}:activity:nope")
    assert error_code(bad_arn) == "InvalidArn"


def test_update_and_delete_a_state_machine(sfn: Any, store: App) -> None:
    arn = create(sfn, "changing", DOUBLE_THEN_PASS)
    before = sfn.describe_state_machine(stateMachineArn=arn)
    updated = sfn.update_state_machine(stateMachineArn=arn, definition=WAITING)
    assert updated["revisionId"] != before["revisionId"]
    after = sfn.describe_state_machine(stateMachineArn=arn)
    assert after["definition"] == WAITING
    assert store.workflows.machine("changing").start_at == "Sleep"
    with pytest.raises(ClientError) as invalid:
        sfn.update_state_machine(stateMachineArn=arn, definition='{"StartAt": "X"}')
    assert error_code(invalid) == "InvalidDefinition"
    declared = f"{PREFIX}:stateMachine:declared-flow"
    with pytest.raises(ClientError) as owned:
        sfn.update_state_machine(stateMachineArn=declared, definition=WAITING)
    assert error_code(owned) == "ConflictException"
    with pytest.raises(ClientError) as owned_delete:
        sfn.delete_state_machine(stateMachineArn=declared)
    assert error_code(owned_delete) == "ValidationException"
    waiting = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    sfn.delete_state_machine(stateMachineArn=arn)
    assert sfn.describe_execution(executionArn=waiting)["status"] == "ABORTED"
    with pytest.raises(ClientError) as gone:
        sfn.describe_state_machine(stateMachineArn=arn)
    assert error_code(gone) == "StateMachineDoesNotExist"
    sfn.delete_state_machine(stateMachineArn=arn)  # deleting what is gone succeeds, as on AWS
    names = [m["name"] for m in sfn.list_state_machines()["stateMachines"]]
    assert "changing" not in names


def test_list_state_machines_pages(sfn: Any) -> None:
    for index in range(3):
        create(sfn, f"paged-{index}", WAITING)
    seen: list[str] = []
    token = None
    while True:
        page = sfn.list_state_machines(maxResults=2, **({"nextToken": token} if token else {}))
        assert len(page["stateMachines"]) <= 2
        seen += [m["name"] for m in page["stateMachines"]]
        token = page.get("nextToken")
        if not token:
            break
    assert {"paged-0", "paged-1", "paged-2", "declared-flow"} <= set(seen)
    assert len(seen) == len(set(seen))


def test_validate_state_machine_definition(sfn: Any) -> None:
    ok = sfn.validate_state_machine_definition(definition=DOUBLE_THEN_PASS)
    assert (ok["result"], ok["diagnostics"]) == ("OK", [])
    bad = sfn.validate_state_machine_definition(
        definition=machine(("Nowhere", {"Type": "Pass", "Next": "Missing"}))
    )
    assert bad["result"] == "FAIL"
    (diagnostic,) = bad["diagnostics"]
    assert diagnostic["severity"] == "ERROR"
    assert diagnostic["code"] == "SCHEMA_VALIDATION_FAILED"
    assert "Nowhere" in diagnostic["message"]


def test_tags_on_a_state_machine(sfn: Any) -> None:
    arn = create(sfn, "tagged", WAITING, tags=[{"key": "team", "value": "core"}])
    sfn.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "dev"}])
    tags = sfn.list_tags_for_resource(resourceArn=arn)["tags"]
    assert sorted((t["key"], t["value"]) for t in tags) == [("env", "dev"), ("team", "core")]
    sfn.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert sfn.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "env", "value": "dev"}]
    with pytest.raises(ClientError) as too_many:
        sfn.tag_resource(resourceArn=arn, tags=[{"key": f"k{i}", "value": "v"} for i in range(50)])
    assert error_code(too_many) == "TooManyTags"
    with pytest.raises(ClientError) as missing:
        sfn.list_tags_for_resource(resourceArn=f"{PREFIX}:stateMachine:untagged-nothing")
    assert error_code(missing) == "ResourceNotFound"


# -- executions ----------------------------------------------------------------------------------


def test_start_execution_names_and_inputs(sfn: Any) -> None:
    arn = create(sfn, "named", WAITING)
    first = sfn.start_execution(stateMachineArn=arn, name="once", input='{"a": 1}')
    again = sfn.start_execution(stateMachineArn=arn, name="once", input='{"a": 1}')
    assert again["executionArn"] == first["executionArn"]
    with pytest.raises(ClientError) as exists:
        sfn.start_execution(stateMachineArn=arn, name="once", input='{"a": 2}')
    assert error_code(exists) == "ExecutionAlreadyExists"
    with pytest.raises(ClientError) as bad_input:
        sfn.start_execution(stateMachineArn=arn, input="{nope")
    assert error_code(bad_input) == "InvalidExecutionInput"
    with pytest.raises(ClientError) as bad_name:
        sfn.start_execution(stateMachineArn=arn, name="a/b")
    assert error_code(bad_name) == "InvalidName"
    with pytest.raises(ClientError) as missing:
        sfn.start_execution(stateMachineArn=f"{PREFIX}:stateMachine:nope")
    assert error_code(missing) == "StateMachineDoesNotExist"
    sfn.stop_execution(executionArn=first["executionArn"])


def test_list_stop_and_describe_executions(sfn: Any) -> None:
    arn = create(sfn, "listed", WAITING)
    runs = [sfn.start_execution(stateMachineArn=arn, name=f"run-{i}")["executionArn"]
            for i in range(3)]  # fmt: skip
    stopped = sfn.stop_execution(executionArn=runs[0], error="Halt", cause="enough")
    assert stopped["stopDate"]
    record = sfn.describe_execution(executionArn=runs[0])
    assert (record["status"], record["error"], record["cause"]) == ("ABORTED", "Halt", "enough")
    assert record["stateMachineArn"] == arn
    running = sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]
    assert sorted(e["name"] for e in running) == ["run-1", "run-2"]
    aborted = sfn.list_executions(stateMachineArn=arn, statusFilter="ABORTED")["executions"]
    assert [e["name"] for e in aborted] == ["run-0"]
    paged: list[str] = []
    token = None
    while True:
        page = sfn.list_executions(stateMachineArn=arn, maxResults=1,
                                   **({"nextToken": token} if token else {}))  # fmt: skip
        paged += [e["name"] for e in page["executions"]]
        token = page.get("nextToken")
        if not token:
            break
    assert sorted(paged) == ["run-0", "run-1", "run-2"]
    assert paged == sorted(paged, reverse=True)  # newest first
    for_execution = sfn.describe_state_machine_for_execution(executionArn=runs[1])
    assert for_execution["name"] == "listed"
    assert json.loads(for_execution["definition"]) == json.loads(WAITING)
    for run in runs[1:]:
        sfn.stop_execution(executionArn=run)
    with pytest.raises(ClientError) as missing:
        sfn.describe_execution(executionArn=f"{PREFIX}:execution:listed:never")
    assert error_code(missing) == "ExecutionDoesNotExist"
    with pytest.raises(ClientError) as bad_arn:
        sfn.describe_execution(executionArn=arn)
    assert error_code(bad_arn) == "InvalidArn"
    with pytest.raises(ClientError) as no_machine:
        sfn.list_executions(stateMachineArn=f"{PREFIX}:stateMachine:nope")
    assert error_code(no_machine) == "StateMachineDoesNotExist"


def test_start_sync_execution_runs_an_express_machine(sfn: Any, sync_sfn: Any) -> None:
    declared = f"{PREFIX}:stateMachine:declared-express"
    done = sync_sfn.start_sync_execution(stateMachineArn=declared, input='{"value": 4}')
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"]) == {"value": 8}
    assert done["stateMachineArn"] == declared
    failing = create(sfn, "express-flaky", machine(("Try", {
        "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:flaky",
    })), type="EXPRESS")  # fmt: skip
    failed = sync_sfn.start_sync_execution(stateMachineArn=failing, input='{"fail": true}')
    assert (failed["status"], failed["error"]) == ("FAILED", "ValueError")
    assert "asked to fail" in failed["cause"]
    with pytest.raises(ClientError) as standard:
        sync_sfn.start_sync_execution(stateMachineArn=f"{PREFIX}:stateMachine:declared-flow")
    assert error_code(standard) == "StateMachineTypeNotSupported"
    # an asynchronous start of an express machine is listed like any execution
    run = sfn.start_execution(stateMachineArn=declared, name="express-async",
                              input='{"value": 1}')["executionArn"]  # fmt: skip
    assert json.loads(ended(sfn, run)["output"]) == {"value": 2}
    names = [e["name"] for e in sfn.list_executions(stateMachineArn=declared)["executions"]]
    assert "express-async" in names


def test_the_aws_cli(server: Server, tmp_path: Path) -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}  # fmt: skip
    aws = [sys.executable, "-m", "awscli", "--endpoint-url", server.url, "--output", "json"]

    def cli(*args: str) -> Any:
        done = subprocess.run([*aws, "stepfunctions", *args], capture_output=True, text=True,
                              env=env, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    names = [m["name"] for m in cli("list-state-machines")["stateMachines"]]
    assert "declared-flow" in names
    started = cli("start-execution", "--state-machine-arn", f"{PREFIX}:stateMachine:declared-flow",
                  "--input", '{"value": 100}')  # fmt: skip
    deadline = time.monotonic() + 30
    while (described := cli("describe-execution", "--execution-arn", started["executionArn"]))[
        "status"
    ] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert json.loads(described["output"]) == {"value": 200}
