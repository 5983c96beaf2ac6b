"""EventBridge Scheduler over the wire: real boto3 clients (and the AWS CLI) against `fanstack run`.

A schedule made with boto3 is a schedule of the app: stored beside the ones the app declares,
fired by the server's scheduler, listed and switched by the `fanstack` command. The server's
schedule clock runs 60 times faster than real time, so `rate(1 minute)` fires every second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from fanstack import App

from .aws_clients import aws_client
from .conftest import Server, start_server, wait_for
from .test_cli import fanstack

APP = Path(__file__).with_name("aws_scheduler_app.py")
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
ACCOUNT, REGION = "000000000000", "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/scheduler"
CLOCK_RATE = 60


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def schedule_arn(group: str, name: str) -> str:
    return f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{group}/{name}"


def group_arn(name: str) -> str:
    return f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule-group/{name}"


def to_queue(name: str, **extra: Any) -> dict[str, Any]:
    return {"Arn": queue_arn(name), "RoleArn": ROLE, **extra}


OFF = {"Mode": "OFF"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    clock = {
        "FANSTACK_SCHEDULER_CLOCK_RATE": str(CLOCK_RATE),
        "FANSTACK_SCHEDULER_CLOCK_ORIGIN": str(time.time()),
    }
    running = start_server(APP, tmp_path_factory.mktemp("aws-scheduler") / "state", env=clock)
    yield running
    running.stop()


def client(server: Server, service: str) -> Any:
    return aws_client(server.url, service)


@pytest.fixture(scope="module")
def scheduler(server: Server) -> Any:
    return client(server, "scheduler")


@pytest.fixture(scope="module")
def sqs(server: Server) -> Any:
    return client(server, "sqs")


@pytest.fixture(scope="module")
def store(server: Server) -> Iterator[App]:
    app = App("aws-scheduler-test", backend=f"sqlite://{server.data_dir}")
    yield app
    app.close()


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    error = caught.value.response["Error"]
    status = caught.value.response["ResponseMetadata"]["HTTPStatusCode"]
    return error["Code"], error["Message"], status


def listed(server: Server) -> dict[str, dict[str, Any]]:
    """`fanstack schedules --json`, by name."""
    result = fanstack(server.data_dir, "schedules", "--json")
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def drain(sqs: Any, name: str, wait: int = 0) -> list[dict[str, Any]]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    got: list[dict[str, Any]] = []
    while True:
        page = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait)
        messages = page.get("Messages", [])
        if not messages:
            return got
        got.extend(messages)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
        wait = 0


# -- one world -------------------------------------------------------------------------------


def test_a_schedule_declared_in_python_is_in_the_default_group(scheduler: Any) -> None:
    summaries = scheduler.list_schedules(GroupName="default")["Schedules"]
    (declared,) = [s for s in summaries if s["Name"] == "declared-nightly"]
    assert declared["Arn"] == schedule_arn("default", "declared-nightly")
    assert declared["State"] == "ENABLED"
    assert declared["Target"] == {"Arn": queue_arn("nightly")}
    got = scheduler.get_schedule(Name="declared-nightly")
    assert got["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert got["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert got["Description"] == "declared in Python"
    assert json.loads(got["Target"]["Input"]) == {"from": "python"}
    assert got["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert got["Target"]["RetryPolicy"] == {
        "MaximumEventAgeInSeconds": 86400,
        "MaximumRetryAttempts": 185,
    }


def test_a_rate_schedule_made_with_boto3_fires_into_a_declared_queue_until_disabled(
    scheduler: Any, sqs: Any, server: Server
) -> None:
    arn = scheduler.create_schedule(
        Name="wire-ticker",
        ScheduleExpression="rate(1 minute)",
        Target=to_queue("ticks", Input='{"tick": true}'),
        FlexibleTimeWindow=OFF,
    )["ScheduleArn"]
    assert arn == schedule_arn("default", "wire-ticker")
    # A rate schedule fires at once, then every minute (a second, on the server's clock).
    first: Any = wait_for(lambda: drain(sqs, "ticks", wait=1), timeout=20)
    assert all(json.loads(message["Body"]) == {"tick": True} for message in first)
    wait_for(lambda: drain(sqs, "ticks", wait=1), timeout=20)
    row = listed(server)["wire-ticker"]
    assert row["expression"] == "rate(1 minute)"
    assert row["state"] == "ENABLED"
    scheduler.update_schedule(
        Name="wire-ticker",
        ScheduleExpression="rate(1 minute)",
        Target=to_queue("ticks", Input='{"tick": true}'),
        FlexibleTimeWindow=OFF,
        State="DISABLED",
    )
    assert listed(server)["wire-ticker"]["state"] == "DISABLED"
    time.sleep(1.5)  # what was already handed to delivery arrives
    drain(sqs, "ticks", wait=1)
    time.sleep(4)  # four schedule minutes: a running schedule would have fired four times
    assert drain(sqs, "ticks") == []
    # `fanstack schedule enable` switches the wire's schedule back on, as the wire sees
    enabled = fanstack(server.data_dir, "schedule", "enable", "wire-ticker")
    assert enabled.returncode == 0, enabled.stderr
    assert scheduler.get_schedule(Name="wire-ticker")["State"] == "ENABLED"
    wait_for(lambda: drain(sqs, "ticks", wait=1), timeout=20)
    scheduler.delete_schedule(Name="wire-ticker")
    assert "wire-ticker" not in listed(server)


def test_an_app_that_declares_no_schedule_fires_one_made_over_the_wire(tmp_path: Path) -> None:
    app_file = tmp_path / "plain_app.py"
    app_file.write_text('from fanstack import App\napp = App("plain")\napp.queue("inbox")\n')
    plain = start_server(app_file, tmp_path / "state")
    try:
        client(plain, "scheduler").create_schedule(
            Name="hello",
            ScheduleExpression="rate(1 hour)",
            FlexibleTimeWindow=OFF,
            Target=to_queue("inbox", Input="hello over the wire"),
        )
        (message,) = wait_for(lambda: drain(client(plain, "sqs"), "inbox", wait=1), timeout=20)  # type: ignore[misc]
        assert message["Body"] == "hello over the wire"
    finally:
        plain.stop()


def test_a_schedule_disabled_from_the_command_line_is_disabled_on_the_wire(
    scheduler: Any, server: Server
) -> None:
    scheduler.create_schedule(
        Name="cli-switched",
        ScheduleExpression="rate(1 day)",
        Target=to_queue("stopped"),
        FlexibleTimeWindow=OFF,
    )
    result = fanstack(server.data_dir, "schedule", "disable", "cli-switched")
    assert result.returncode == 0, result.stderr
    assert scheduler.get_schedule(Name="cli-switched")["State"] == "DISABLED"
    assert (
        scheduler.list_schedules(State="DISABLED", NamePrefix="cli-")["Schedules"][0]["Name"]
        == "cli-switched"
    )


# -- schedules -------------------------------------------------------------------------------


def test_a_schedule_keeps_every_field_and_update_replaces_them(scheduler: Any) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    end = start + timedelta(days=30)
    target = {
        "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:nightly-report",
        "RoleArn": ROLE,
        "Input": '{"report": "daily"}',
        "RetryPolicy": {"MaximumEventAgeInSeconds": 600, "MaximumRetryAttempts": 3},
        "DeadLetterConfig": {"Arn": queue_arn("schedule-dead-letters")},
    }
    kms = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd"
    scheduler.create_schedule(
        Name="full",
        ScheduleExpression="cron(30 6 ? * MON-FRI *)",
        ScheduleExpressionTimezone="America/New_York",
        StartDate=start,
        EndDate=end,
        Description="weekday mornings",
        State="DISABLED",
        KmsKeyArn=kms,
        Target=target,
        FlexibleTimeWindow={"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15},
        ActionAfterCompletion="DELETE",
        ClientToken="token-1",
    )
    got = scheduler.get_schedule(Name="full", GroupName="default")
    assert got["Arn"] == schedule_arn("default", "full")
    assert (got["Name"], got["GroupName"]) == ("full", "default")
    assert got["ScheduleExpression"] == "cron(30 6 ? * MON-FRI *)"
    assert got["ScheduleExpressionTimezone"] == "America/New_York"
    assert (got["StartDate"], got["EndDate"]) == (start, end)
    assert got["Description"] == "weekday mornings"
    assert got["State"] == "DISABLED"
    assert got["KmsKeyArn"] == kms
    assert got["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}
    assert got["ActionAfterCompletion"] == "DELETE"
    assert {k: v for k, v in got["Target"].items() if k in target} == target
    assert got["CreationDate"] <= got["LastModificationDate"]
    scheduler.update_schedule(
        Name="full",
        ScheduleExpression="at(2099-01-01T00:00:00)",
        Target={"Arn": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:orders", "RoleArn": ROLE},
        FlexibleTimeWindow=OFF,
    )
    got = scheduler.get_schedule(Name="full")
    assert got["ScheduleExpression"] == "at(2099-01-01T00:00:00)"
    assert got["ScheduleExpressionTimezone"] == "UTC"
    assert got["State"] == "ENABLED"
    assert "StartDate" not in got and "Description" not in got and "KmsKeyArn" not in got
    assert got["Target"]["Arn"] == f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:orders"
    assert "DeadLetterConfig" not in got["Target"] and "Input" not in got["Target"]
    scheduler.delete_schedule(Name="full")
    with pytest.raises(ClientError) as caught:
        scheduler.get_schedule(Name="full")
    assert error_of(caught)[0] == "ResourceNotFoundException"


def test_topic_bus_and_fifo_targets(scheduler: Any) -> None:
    bus = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
    scheduler.create_schedule(
        Name="to-bus",
        ScheduleExpression="rate(1 day)",
        FlexibleTimeWindow=OFF,
        Target={"Arn": bus, "RoleArn": ROLE},
    )
    got = scheduler.get_schedule(Name="to-bus")["Target"]
    assert got["Arn"] == bus
    assert got["EventBridgeParameters"] == {
        "DetailType": "Scheduled Event",
        "Source": "fanstack.scheduler",
    }
    scheduler.create_schedule(
        Name="to-topic",
        ScheduleExpression="rate(1 day)",
        FlexibleTimeWindow=OFF,
        Target={"Arn": topic, "RoleArn": ROLE},
    )
    assert scheduler.get_schedule(Name="to-topic")["Target"]["Arn"] == topic
    fifo = to_queue("jobs.fifo", SqsParameters={"MessageGroupId": "nightly"})
    scheduler.create_schedule(
        Name="to-fifo", ScheduleExpression="rate(1 day)", FlexibleTimeWindow=OFF, Target=fifo
    )
    assert scheduler.get_schedule(Name="to-fifo")["Target"]["SqsParameters"] == {
        "MessageGroupId": "nightly"
    }
    for name in ("to-bus", "to-topic", "to-fifo"):
        scheduler.delete_schedule(Name=name)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ScheduleExpression": "rate(0 minutes)"}, "Schedule Expression"),
        ({"ScheduleExpression": "every day"}, "Schedule Expression"),
        ({"ScheduleExpressionTimezone": "Mars/Olympus"}, "ScheduleExpressionTimezone"),
        ({"FlexibleTimeWindow": {"Mode": "FLEXIBLE"}}, "FlexibleTimeWindow"),
        (
            {"FlexibleTimeWindow": {"Mode": "OFF", "MaximumWindowInMinutes": 5}},
            "MaximumWindowInMinutes",
        ),
        ({"EndDate": datetime(2001, 1, 1, tzinfo=UTC)}, "EndDate"),
        ({"StartDate": datetime(2001, 1, 1, tzinfo=UTC)}, "StartDate"),
        (
            {"Target": {"Arn": "arn:aws:scheduler:::aws-sdk:sqs:sendMessage", "RoleArn": ROLE}},
            "Target.Arn",
        ),
        (
            {"Target": {**to_queue("ticks"), "KinesisParameters": {"PartitionKey": "k"}}},
            "Target.KinesisParameters",
        ),
        ({"Target": to_queue("jobs.fifo")}, "MessageGroupId"),
        (
            {"Target": {**to_queue("ticks"), "DeadLetterConfig": {"Arn": queue_arn("x.fifo")}}},
            "DeadLetterConfig",
        ),
        (
            {
                "Target": {
                    "Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default",
                    "RoleArn": ROLE,
                    "EventBridgeParameters": {"DetailType": "Tick", "Source": "my.app"},
                }
            },
            "EventBridgeParameters",
        ),
    ],
)
def test_a_bad_schedule_is_a_validation_exception_naming_the_field(
    scheduler: Any, change: dict[str, Any], field: str
) -> None:
    request = {
        "Name": "bad",
        "ScheduleExpression": "rate(1 hour)",
        "Target": to_queue("ticks"),
        "FlexibleTimeWindow": OFF,
        **change,
    }
    with pytest.raises(ClientError) as caught:
        scheduler.create_schedule(**request)
    code, message, status = error_of(caught)
    assert (code, status) == ("ValidationException", 400)
    assert field in message


def test_a_name_taken_is_a_conflict_and_a_missing_one_not_found(scheduler: Any) -> None:
    request = {
        "Name": "once",
        "ScheduleExpression": "rate(1 hour)",
        "Target": to_queue("stopped"),
        "FlexibleTimeWindow": OFF,
    }
    made = scheduler.create_schedule(**request, ClientToken="first-try")["ScheduleArn"]
    # a retry of the same call (its ClientToken) is answered as the first was
    again = scheduler.create_schedule(**request, ClientToken="first-try")["ScheduleArn"]
    assert again == made
    with pytest.raises(ClientError) as caught:
        scheduler.create_schedule(**request)
    assert error_of(caught)[0::2] == ("ConflictException", 409)
    scheduler.delete_schedule(Name="once")
    for call in (
        lambda: scheduler.get_schedule(Name="once"),
        lambda: scheduler.delete_schedule(Name="once"),
        lambda: scheduler.update_schedule(**request),
        lambda: scheduler.create_schedule(**request, GroupName="no-such-group"),
        lambda: scheduler.get_schedule_group(Name="no-such-group"),
        lambda: scheduler.delete_schedule_group(Name="no-such-group"),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert error_of(caught)[0::2] == ("ResourceNotFoundException", 404)


def test_list_schedules_filters_and_pages(scheduler: Any) -> None:
    for index in range(5):
        scheduler.create_schedule(
            Name=f"page-{index}",
            ScheduleExpression="rate(1 day)",
            Target=to_queue("stopped"),
            FlexibleTimeWindow=OFF,
            State="DISABLED" if index % 2 else "ENABLED",
        )
    first = scheduler.list_schedules(NamePrefix="page-", MaxResults=2)
    assert [s["Name"] for s in first["Schedules"]] == ["page-0", "page-1"]
    second = scheduler.list_schedules(
        NamePrefix="page-", MaxResults=2, NextToken=first["NextToken"]
    )
    assert [s["Name"] for s in second["Schedules"]] == ["page-2", "page-3"]
    pages = scheduler.get_paginator("list_schedules").paginate(
        NamePrefix="page-", PaginationConfig={"PageSize": 2}
    )
    assert [s["Name"] for p in pages for s in p["Schedules"]] == [f"page-{i}" for i in range(5)]
    disabled = scheduler.list_schedules(NamePrefix="page-", State="DISABLED")["Schedules"]
    assert [s["Name"] for s in disabled] == ["page-1", "page-3"]
    for index in range(5):
        scheduler.delete_schedule(Name=f"page-{index}")


# -- groups and tags -------------------------------------------------------------------------


def test_groups_hold_their_own_names_and_take_their_schedules_with_them(
    scheduler: Any, server: Server
) -> None:
    made = scheduler.create_schedule_group(Name="reports", Tags=[{"Key": "team", "Value": "data"}])
    assert made["ScheduleGroupArn"] == group_arn("reports")
    got = scheduler.get_schedule_group(Name="reports")
    assert (got["Arn"], got["Name"], got["State"]) == (group_arn("reports"), "reports", "ACTIVE")
    with pytest.raises(ClientError) as caught:
        scheduler.create_schedule_group(Name="reports")
    assert error_of(caught)[0] == "ConflictException"
    # one name in two groups: two schedules
    for group in ("default", "reports"):
        scheduler.create_schedule(
            Name="daily",
            GroupName=group,
            ScheduleExpression="rate(1 day)",
            Target=to_queue("stopped"),
            FlexibleTimeWindow=OFF,
        )
    in_group = scheduler.list_schedules(GroupName="reports")["Schedules"]
    assert [(s["Name"], s["Arn"]) for s in in_group] == [
        ("daily", schedule_arn("reports", "daily"))
    ]
    assert scheduler.get_schedule(Name="daily", GroupName="reports")["GroupName"] == "reports"
    assert {"daily", "reports.daily"} <= set(listed(server))  # fanstack's names for the two
    names = [g["Name"] for g in scheduler.list_schedule_groups()["ScheduleGroups"]]
    assert names == ["default", "reports"]
    assert [
        g["Name"] for g in scheduler.list_schedule_groups(NamePrefix="rep")["ScheduleGroups"]
    ] == ["reports"]
    scheduler.delete_schedule_group(Name="reports")
    with pytest.raises(ClientError) as caught:
        scheduler.get_schedule(Name="daily", GroupName="reports")
    assert error_of(caught)[0] == "ResourceNotFoundException"
    assert "reports.daily" not in listed(server)
    scheduler.get_schedule(Name="daily")  # the default group's is untouched
    scheduler.delete_schedule(Name="daily")
    with pytest.raises(ClientError) as caught:
        scheduler.delete_schedule_group(Name="default")
    assert error_of(caught)[0] == "ValidationException"


def test_tags_are_kept_on_schedule_groups(scheduler: Any) -> None:
    arn = scheduler.create_schedule_group(Name="tagged")["ScheduleGroupArn"]
    scheduler.tag_resource(
        ResourceArn=arn, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
    )
    scheduler.untag_resource(ResourceArn=arn, TagKeys=["a"])
    assert scheduler.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "b", "Value": "2"}]
    with pytest.raises(ClientError) as caught:
        scheduler.list_tags_for_resource(ResourceArn=group_arn("nope"))
    assert error_of(caught)[0] == "ResourceNotFoundException"
    scheduler.delete_schedule_group(Name="tagged")


# -- the AWS CLI -----------------------------------------------------------------------------


def test_the_aws_cli(server: Server, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    aws = [sys.executable, "-m", "awscli", "--endpoint-url", server.url, "--output", "json"]

    def run(*args: str) -> Any:
        done = subprocess.run(
            [*aws, "scheduler", *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    run(
        "create-schedule",
        "--name",
        "from-cli",
        "--schedule-expression",
        "rate(5 minutes)",
        "--flexible-time-window",
        "Mode=OFF",
        "--target",
        json.dumps({"Arn": queue_arn("stopped"), "RoleArn": ROLE}),
    )
    names = [s["Name"] for s in run("list-schedules")["Schedules"]]
    assert {"from-cli", "declared-nightly"} <= set(names)
    assert run("get-schedule", "--name", "from-cli")["ScheduleExpression"] == "rate(5 minutes)"
    run("delete-schedule", "--name", "from-cli")
