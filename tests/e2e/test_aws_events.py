"""EventBridge over the wire: real boto3 clients (and the AWS CLI) against `fanstack run`.

One world: the app's bus and rule answer to boto3, a rule made with boto3 routes events into
the app's queue, a bus made with boto3 is routed by the running workers and listed by
`fanstack buses`, and TestEventPattern decides as fanstack's matching does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from fanstack import test_event_pattern as fanstack_matches

from .aws_clients import aws_client
from .conftest import Server, start_server, wait_for
from .test_cli import fanstack

APP = Path(__file__).with_name("aws_events_app.py")
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
PREFIX = "arn:aws:events:us-east-1:000000000000:"
ROUTED_WITHIN = 20.0  # seconds: a bus made at run time is found by the workers within ~2 s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(APP, tmp_path_factory.mktemp("aws-events") / "state")
    yield running
    running.stop()


def _client(server: Server, service: str) -> Any:
    return aws_client(server.url, service)


@pytest.fixture(scope="module")
def events(server: Server) -> Any:
    return _client(server, "events")


@pytest.fixture(scope="module")
def sqs(server: Server) -> Any:
    return _client(server, "sqs")


def _error(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def _receive(sqs: Any, queue: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait for `count` messages on a queue; their bodies, decoded."""
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    got: list[dict[str, Any]] = []

    def more() -> bool:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            got.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(got) >= count

    wait_for(more, timeout=ROUTED_WITHIN)
    return got


def test_the_apps_bus_and_rule_answer_over_the_wire(events: Any) -> None:
    names = [bus["Name"] for bus in events.list_event_buses()["EventBuses"]]
    assert {"default", "shop"} <= set(names)
    described = events.describe_event_bus(Name="shop")
    assert described["Arn"] == f"{PREFIX}event-bus/shop"
    assert events.describe_event_bus(Name=f"{PREFIX}event-bus/shop")["Name"] == "shop"
    (rule,) = events.list_rules(EventBusName="shop", NamePrefix="declared")["Rules"]
    assert rule["Arn"] == f"{PREFIX}rule/shop/declared-audit"
    assert json.loads(rule["EventPattern"]) == {"source": ["shop.audit"]}
    (target,) = events.list_targets_by_rule(Rule="declared-audit", EventBusName="shop")["Targets"]
    assert target["Arn"] == "arn:aws:sqs:us-east-1:000000000000:audit"


def test_a_rule_made_with_boto3_routes_events_into_the_apps_queue(
    events: Any, sqs: Any, server: Server
) -> None:
    events.put_rule(
        Name="big-orders",
        EventBusName="shop",
        EventPattern=json.dumps(
            {"source": ["shop.orders"], "detail": {"total": [{"numeric": [">", 100]}]}}
        ),
        Description="orders over 100",
    )
    put = events.put_targets(
        Rule="big-orders",
        EventBusName="shop",
        Targets=[
            {
                "Id": "to-orders",
                "Arn": "arn:aws:sqs:us-east-1:000000000000:orders",
                "InputTransformer": {
                    "InputPathsMap": {"total": "$.detail.total"},
                    "InputTemplate": '{"total": <total>, "rule": "<aws.events.rule-name>"}',
                },
            }
        ],
    )
    assert put == {"FailedEntryCount": 0, "FailedEntries": [], **_meta(put)}
    sent = events.put_events(
        Entries=[
            {
                "Source": "shop.orders",
                "DetailType": "Order",
                "Detail": '{"total": 250}',
                "EventBusName": "shop",
            },
            {
                "Source": "shop.orders",
                "DetailType": "Order",
                "Detail": '{"total": 5}',
                "EventBusName": f"{PREFIX}event-bus/shop",
            },
        ]
    )
    assert sent["FailedEntryCount"] == 0 and all("EventId" in e for e in sent["Entries"])
    assert _receive(sqs, "orders") == [{"total": 250, "rule": "big-orders"}]
    # `fanstack rules` lists it beside the declared one
    listed = json.loads(fanstack(server.data_dir, "rules", "shop", "--json").stdout)
    assert {"big-orders", "declared-audit"} <= {rule["name"] for rule in listed}


def test_a_bus_made_with_boto3_is_routed_to_queues_buses_and_functions(
    events: Any, sqs: Any, server: Server
) -> None:
    arn = events.create_event_bus(
        Name="wire-bus", Description="made over the wire", Tags=[{"Key": "team", "Value": "ops"}]
    )["EventBusArn"]
    assert arn == f"{PREFIX}event-bus/wire-bus"
    sqs.create_queue(QueueName="wire-inbox")
    events.put_rule(Name="all", EventBusName="wire-bus", EventPattern='{"source": ["wire"]}')
    put = events.put_targets(
        Rule="all",
        EventBusName="wire-bus",
        Targets=[
            {
                "Id": "queue",
                "Arn": "arn:aws:sqs:us-east-1:000000000000:wire-inbox",
                "InputPath": "$.detail",
                "RetryPolicy": {"MaximumRetryAttempts": 3},
                "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:000000000000:calls"},
            },
            {
                "Id": "fn",
                "Arn": "arn:aws:lambda:us-east-1:000000000000:function:record",
                "Input": '{"constant": true}',
            },
            {"Id": "bus", "Arn": f"{PREFIX}event-bus/shop"},
        ],
    )
    assert put["FailedEntryCount"] == 0
    shown = {
        t["Id"]: t for t in events.list_targets_by_rule(Rule="all", EventBusName=arn)["Targets"]
    }
    assert shown["queue"]["RetryPolicy"]["MaximumRetryAttempts"] == 3
    assert shown["queue"]["DeadLetterConfig"]["Arn"].endswith(":calls")
    assert shown["fn"]["Arn"] == "arn:aws:lambda:us-east-1:000000000000:function:record"
    events.put_events(
        Entries=[
            {
                "Source": "wire",
                "DetailType": "Ping",
                "Detail": '{"n": 1}',
                "EventBusName": "wire-bus",
            }
        ]
    )
    assert _receive(sqs, "wire-inbox") == [{"n": 1}]
    assert "constant" in json.dumps(_receive(sqs, "calls"))
    # the event forwarded to `shop` did not match a rule there; `fanstack buses` lists the bus
    buses = json.loads(fanstack(server.data_dir, "buses", "--json").stdout)
    assert "wire-bus" in {bus["name"] for bus in buses}
    assert events.list_rule_names_by_target(
        TargetArn="arn:aws:sqs:us-east-1:000000000000:wire-inbox", EventBusName="wire-bus"
    )["RuleNames"] == ["all"]


def test_buses_lifecycle_and_errors(events: Any) -> None:
    events.create_event_bus(Name="short-lived")
    with pytest.raises(ClientError) as caught:
        events.create_event_bus(Name="short-lived")
    assert _error(caught)[0] == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as caught:
        events.create_event_bus(Name="bad name!")
    assert _error(caught)[0] == "ValidationException"
    updated = events.update_event_bus(Name="short-lived", Description="now described")
    assert updated["Description"] == "now described"
    described = events.describe_event_bus(Name="short-lived")
    assert described["Description"] == "now described" and "CreationTime" in described
    first = events.list_event_buses(Limit=1)
    second = events.list_event_buses(Limit=1, NextToken=first["NextToken"])
    assert first["EventBuses"][0]["Name"] < second["EventBuses"][0]["Name"]
    with pytest.raises(ClientError) as caught:
        events.delete_event_bus(Name="default")
    assert _error(caught)[0] == "ValidationException"
    events.delete_event_bus(Name="short-lived")
    events.delete_event_bus(Name="short-lived")  # deleting what is gone is no error
    with pytest.raises(ClientError) as caught:
        events.describe_event_bus(Name="short-lived")
    assert _error(caught) == ("ResourceNotFoundException", "Event bus short-lived does not exist.")
    assert "short-lived" not in [b["Name"] for b in events.list_event_buses()["EventBuses"]]


def test_rules_lifecycle_and_errors(events: Any) -> None:
    with pytest.raises(ClientError) as caught:
        events.put_rule(Name="r", EventPattern='{"detail": {"n": [{"numeric": [">"]}]}}')
    code, message = _error(caught)
    assert code == "InvalidEventPatternException" and "detail.n" in message
    with pytest.raises(ClientError) as caught:
        events.put_rule(Name="r")
    assert _error(caught)[0] == "ValidationException"
    with pytest.raises(ClientError) as caught:
        events.put_rule(Name="r", EventBusName="nope", EventPattern='{"source": ["a"]}')
    assert _error(caught)[0] == "ResourceNotFoundException"
    for name in ("rule-a", "rule-b", "rule-c"):
        events.put_rule(Name=name, EventPattern='{"source": ["x"]}', State="DISABLED")
    assert events.describe_rule(Name="rule-a")["Arn"] == f"{PREFIX}rule/rule-a"  # default bus
    events.enable_rule(Name="rule-a")
    assert events.describe_rule(Name="rule-a")["State"] == "ENABLED"
    events.disable_rule(Name="rule-a")
    assert events.describe_rule(Name="rule-a")["State"] == "DISABLED"
    page = events.list_rules(NamePrefix="rule-", Limit=2)
    rest = events.list_rules(NamePrefix="rule-", Limit=2, NextToken=page["NextToken"])
    assert [r["Name"] for r in page["Rules"] + rest["Rules"]] == ["rule-a", "rule-b", "rule-c"]
    scheduled = events.put_rule(Name="tick", ScheduleExpression="rate(5 minutes)")["RuleArn"]
    tick = events.describe_rule(Name="tick")
    assert tick["ScheduleExpression"] == "rate(5 minutes)" and "EventPattern" not in tick
    assert scheduled == tick["Arn"]
    with pytest.raises(ClientError) as caught:
        events.put_rule(Name="bad-tick", ScheduleExpression="every minute")
    assert _error(caught)[0] == "ValidationException"
    events.put_targets(Rule="rule-b", Targets=[{"Id": "q", "Arn": "arn:aws:sqs:us-east-1:0:x"}])
    with pytest.raises(ClientError) as caught:
        events.delete_rule(Name="rule-b")
    assert _error(caught) == ("ValidationException", "Rule can't be deleted since it has targets.")
    events.delete_rule(Name="rule-b", Force=True)
    events.delete_rule(Name="rule-b")  # no rule is no error
    with pytest.raises(ClientError) as caught:
        events.describe_rule(Name="rule-b")
    assert _error(caught)[0] == "ResourceNotFoundException"


def test_targets_fail_alone_and_count_against_the_limit(events: Any) -> None:
    events.put_rule(Name="targeted", EventPattern='{"source": ["t"]}')
    answer = events.put_targets(
        Rule="targeted",
        Targets=[
            {"Id": "ok", "Arn": "arn:aws:sqs:us-east-1:000000000000:orders"},
            {"Id": "kinesis", "Arn": "arn:aws:kinesis:us-east-1:000000000000:stream/s"},
            {
                "Id": "bad-path",
                "Arn": "arn:aws:sqs:us-east-1:000000000000:orders",
                "InputPath": "detail",
            },
        ],
    )
    assert answer["FailedEntryCount"] == 2
    failed = {entry["TargetId"]: entry for entry in answer["FailedEntries"]}
    assert set(failed) == {"kinesis", "bad-path"}
    assert failed["kinesis"]["ErrorCode"] == "ValidationException"
    assert [t["Id"] for t in events.list_targets_by_rule(Rule="targeted")["Targets"]] == ["ok"]
    arns = {
        "topic": "arn:aws:sns:us-east-1:000000000000:news",
        "flow": "arn:aws:states:us-east-1:000000000000:stateMachine:checkout",
        "fifo": "arn:aws:sqs:us-east-1:000000000000:jobs.fifo",
    }
    answer = events.put_targets(Rule="targeted", Targets=[
        {"Id": "topic", "Arn": arns["topic"]},
        {"Id": "flow", "Arn": arns["flow"], "RoleArn": "arn:aws:iam::000000000000:role/r"},
        {"Id": "fifo", "Arn": arns["fifo"], "SqsParameters": {"MessageGroupId": "g"}},
        {"Id": "no-group", "Arn": arns["fifo"]},
    ])  # fmt: skip
    assert [entry["TargetId"] for entry in answer["FailedEntries"]] == ["no-group"]
    listed = {t["Id"]: t for t in events.list_targets_by_rule(Rule="targeted")["Targets"]}
    assert {key: listed[key]["Arn"] for key in arns} == arns
    assert listed["flow"]["RoleArn"] == "arn:aws:iam::000000000000:role/r"
    assert listed["fifo"]["SqsParameters"] == {"MessageGroupId": "g"}
    first = events.list_targets_by_rule(Rule="targeted", Limit=2)
    rest = events.list_targets_by_rule(Rule="targeted", Limit=2, NextToken=first["NextToken"])
    assert len(first["Targets"] + rest["Targets"]) == 4
    more = [{"Id": f"t{i}", "Arn": f"arn:aws:sqs:us-east-1:000000000000:q{i}"} for i in range(5)]
    with pytest.raises(ClientError) as caught:
        events.put_targets(Rule="targeted", Targets=more)
    assert _error(caught)[0] == "LimitExceededException"
    removed = events.remove_targets(Rule="targeted", Ids=[*listed, "never-there"])
    assert removed["FailedEntryCount"] == 0
    assert events.list_targets_by_rule(Rule="targeted")["Targets"] == []
    with pytest.raises(ClientError) as caught:
        events.list_targets_by_rule(Rule="no-such-rule")
    assert _error(caught)[0] == "ResourceNotFoundException"


def test_put_events_answers_per_entry(events: Any, sqs: Any) -> None:
    events.put_rule(Name="on-default", EventPattern='{"source": ["default.src"]}')
    sqs.create_queue(QueueName="from-default")
    events.put_targets(
        Rule="on-default",
        Targets=[{"Id": "q", "Arn": "arn:aws:sqs:us-east-1:000000000000:from-default"}],
    )
    answer = events.put_events(
        Entries=[
            {"Source": "default.src", "DetailType": "D", "Detail": '{"ok": 1}'},
            {"Source": "aws.ec2", "DetailType": "D", "Detail": "{}"},
            {"Source": "s", "DetailType": "D", "Detail": "not json"},
            {"Source": "s", "DetailType": "D", "Detail": "{}", "EventBusName": "missing"},
        ]
    )
    assert answer["FailedEntryCount"] == 3
    codes = [entry.get("ErrorCode") for entry in answer["Entries"]]
    assert codes == [None, "NotAuthorizedForSourceException", "MalformedDetail", "EventBusNotFound"]
    (event,) = _receive(sqs, "from-default")
    assert event["detail"] == {"ok": 1} and event["id"] == answer["Entries"][0]["EventId"]
    with pytest.raises(ClientError) as caught:
        events.put_events(Entries=[{"Source": "s", "DetailType": "D", "Detail": "{}"}] * 11)
    assert _error(caught)[0] == "ValidationException"


@pytest.mark.parametrize(
    "pattern",
    [
        {"source": ["shop"], "detail": {"total": [{"numeric": [">=", 10, "<", 20]}]}},
        {"detail": {"sku": [{"prefix": "AB"}]}},
        {"detail": {"sku": [{"anything-but": ["AB-1"]}], "gift": [{"exists": False}]}},
        {"$or": [{"source": ["other"]}, {"detail-type": [{"equals-ignore-case": "order"}]}]},
    ],
)
def test_test_event_pattern_matches_as_fanstack_does(events: Any, pattern: dict[str, Any]) -> None:
    event = {
        "id": "1",
        "account": "000000000000",
        "source": "shop",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail-type": "Order",
        "detail": {"total": 12, "sku": "AB-2"},
    }
    answer = events.test_event_pattern(EventPattern=json.dumps(pattern), Event=json.dumps(event))
    assert answer["Result"] is fanstack_matches(pattern, event) is True
    event["detail"] = {"total": 25, "sku": "XY-1", "gift": True}
    event["detail-type"] = "Refund"
    answer = events.test_event_pattern(EventPattern=json.dumps(pattern), Event=json.dumps(event))
    assert answer["Result"] is fanstack_matches(pattern, event) is False


def test_test_event_pattern_errors(events: Any) -> None:
    with pytest.raises(ClientError) as caught:
        events.test_event_pattern(EventPattern='{"a": "b"}', Event='{"id": "1"}')
    assert _error(caught)[0] == "InvalidEventPatternException"
    with pytest.raises(ClientError) as caught:
        events.test_event_pattern(EventPattern='{"a": ["b"]}', Event='{"id": "1"}')
    assert _error(caught)[0] == "ValidationException"


def test_an_archive_and_a_replay_made_over_the_wire_deliver_again(events: Any, sqs: Any) -> None:
    events.create_event_bus(Name="archived")
    archive = events.create_archive(
        ArchiveName="kept",
        EventSourceArn=f"{PREFIX}event-bus/archived",
        EventPattern='{"source": ["keep"]}',
        RetentionDays=1,
    )
    assert archive["ArchiveArn"] == f"{PREFIX}archive/kept" and archive["State"] == "ENABLED"
    with pytest.raises(ClientError) as caught:
        events.create_archive(ArchiveName="kept", EventSourceArn=f"{PREFIX}event-bus/archived")
    assert _error(caught)[0] == "ResourceAlreadyExistsException"
    past = datetime.now(UTC) - timedelta(seconds=30)
    events.put_events(
        Entries=[
            {
                "Source": "keep",
                "DetailType": "K",
                "Detail": json.dumps({"n": n}),
                "EventBusName": "archived",
                "Time": past,
            }
            for n in range(3)
        ]
        + [{"Source": "drop", "DetailType": "K", "Detail": "{}", "EventBusName": "archived"}]
    )
    wait_for(
        lambda: events.describe_archive(ArchiveName="kept")["EventCount"] == 3,
        timeout=ROUTED_WITHIN,
    )
    events.update_archive(ArchiveName="kept", Description="three events")
    (listed,) = events.list_archives(EventSourceArn=f"{PREFIX}event-bus/archived")["Archives"]
    assert listed["ArchiveName"] == "kept" and listed["EventCount"] == 3
    assert events.describe_archive(ArchiveName="kept")["Description"] == "three events"
    # a rule made after the events were put gets them from the replay
    sqs.create_queue(QueueName="replayed")
    rule = events.put_rule(
        Name="again", EventBusName="archived", EventPattern='{"source": ["keep"]}'
    )["RuleArn"]
    events.put_targets(
        Rule="again",
        EventBusName="archived",
        Targets=[{"Id": "q", "Arn": "arn:aws:sqs:us-east-1:000000000000:replayed"}],
    )
    end = datetime.now(UTC) - timedelta(seconds=1)
    started = events.start_replay(
        ReplayName="once",
        EventSourceArn=archive["ArchiveArn"],
        EventStartTime=past - timedelta(seconds=60),
        EventEndTime=end,
        Destination={"Arn": f"{PREFIX}event-bus/archived", "FilterArns": [rule]},
    )
    assert started["ReplayArn"] == f"{PREFIX}replay/once"
    wait_for(
        lambda: events.describe_replay(ReplayName="once")["State"] == "COMPLETED",
        timeout=ROUTED_WITHIN,
    )
    replayed = _receive(sqs, "replayed", 3)
    assert sorted(e["detail"]["n"] for e in replayed) == [0, 1, 2]
    assert {e["replay-name"] for e in replayed} == {"once"}
    described = events.describe_replay(ReplayName="once")
    assert described["Destination"]["FilterArns"] == [rule]
    assert [r["ReplayName"] for r in events.list_replays(State="COMPLETED")["Replays"]] == ["once"]
    with pytest.raises(ClientError) as caught:
        events.cancel_replay(ReplayName="once")
    assert _error(caught)[0] == "IllegalStatusException"
    with pytest.raises(ClientError) as caught:
        events.start_replay(
            ReplayName="future",
            EventSourceArn=archive["ArchiveArn"],
            EventStartTime=past,
            EventEndTime=datetime.now(UTC) + timedelta(hours=1),
            Destination={"Arn": f"{PREFIX}event-bus/archived"},
        )
    assert _error(caught)[0] == "ValidationException"
    with pytest.raises(ClientError) as caught:
        events.describe_replay(ReplayName="never")
    assert _error(caught)[0] == "ResourceNotFoundException"
    events.delete_archive(ArchiveName="kept")
    with pytest.raises(ClientError) as caught:
        events.describe_archive(ArchiveName="kept")
    assert _error(caught)[0] == "ResourceNotFoundException"


def test_a_replay_can_be_cancelled(events: Any) -> None:
    events.create_event_bus(Name="cancelled")
    archive = events.create_archive(
        ArchiveName="to-cancel", EventSourceArn=f"{PREFIX}event-bus/cancelled"
    )["ArchiveArn"]
    now = datetime.now(UTC)
    events.start_replay(
        ReplayName="stopped",
        EventSourceArn=archive,
        EventStartTime=now - timedelta(days=1),
        EventEndTime=now - timedelta(seconds=1),
        Destination={"Arn": f"{PREFIX}event-bus/cancelled"},
    )
    try:
        answer = events.cancel_replay(ReplayName="stopped")
        assert answer["State"] in ("CANCELLING", "CANCELLED")
    except ClientError as error:  # the (empty) replay may have completed already
        assert error.response["Error"]["Code"] == "IllegalStatusException"


def test_tags_on_buses_and_rules(events: Any) -> None:
    events.create_event_bus(Name="tagged", Tags=[{"Key": "a", "Value": "1"}])
    bus = f"{PREFIX}event-bus/tagged"
    events.tag_resource(ResourceARN=bus, Tags=[{"Key": "b", "Value": "2"}])
    assert events.list_tags_for_resource(ResourceARN=bus)["Tags"] == [
        {"Key": "a", "Value": "1"},
        {"Key": "b", "Value": "2"},
    ]
    events.untag_resource(ResourceARN=bus, TagKeys=["a"])
    assert events.list_tags_for_resource(ResourceARN=bus)["Tags"] == [{"Key": "b", "Value": "2"}]
    rule = events.put_rule(
        Name="tagged-rule",
        EventBusName="tagged",
        EventPattern='{"a": ["b"]}',
        Tags=[{"Key": "r", "Value": "x"}],
    )["RuleArn"]
    assert events.list_tags_for_resource(ResourceARN=rule)["Tags"] == [{"Key": "r", "Value": "x"}]
    with pytest.raises(ClientError) as caught:
        events.list_tags_for_resource(ResourceARN=f"{PREFIX}event-bus/none")
    assert _error(caught)[0] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as caught:
        events.tag_resource(ResourceARN="not-an-arn", Tags=[{"Key": "k", "Value": "v"}])
    assert _error(caught)[0] == "ValidationException"


def test_the_aws_cli(server: Server, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    aws = [sys.executable, "-m", "awscli", "--endpoint-url", server.url, "--output", "json"]

    def run(*args: str) -> Any:
        done = subprocess.run(
            [*aws, "events", *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    made = run(
        "put-rule",
        "--name",
        "from-cli",
        "--event-bus-name",
        "shop",
        "--event-pattern",
        '{"source": ["cli"]}',
    )
    assert made["RuleArn"] == f"{PREFIX}rule/shop/from-cli"
    run(
        "put-targets",
        "--rule",
        "from-cli",
        "--event-bus-name",
        "shop",
        "--targets",
        "Id=q,Arn=arn:aws:sqs:us-east-1:000000000000:orders",
    )
    rules = run("list-rules", "--event-bus-name", "shop", "--name-prefix", "from-")["Rules"]
    assert [rule["Name"] for rule in rules] == ["from-cli"]
    put = run(
        "put-events",
        "--entries",
        json.dumps([{"Source": "cli", "DetailType": "C", "Detail": "{}", "EventBusName": "shop"}]),
    )
    assert put["FailedEntryCount"] == 0


def _meta(answer: dict[str, Any]) -> dict[str, Any]:
    return {"ResponseMetadata": answer["ResponseMetadata"]}
