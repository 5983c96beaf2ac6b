"""One world of ARNs: what the AWS API answers and what is delivered share `--aws-account` and
`--aws-region` (SNS envelopes, SQS records, Lambda contexts, EventBridge events)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .aws_clients import aws_client
from .conftest import Server, start_server, wait_for

APP = Path(__file__).with_name("aws_arns_app.py")
ACCOUNT, REGION = "123456789012", "eu-west-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        APP,
        tmp_path_factory.mktemp("aws-arns") / "state",
        args=["--aws-account", ACCOUNT, "--aws-region", REGION],
    )
    yield running
    running.stop()


def queue_of(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, attributes["Attributes"]["QueueArn"]


def one_message(sqs: Any, url: str) -> dict[str, Any]:
    got: list[dict[str, Any]] = []

    def received() -> bool:
        got.extend(sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []))
        return bool(got)

    wait_for(received, timeout=30)
    body: dict[str, Any] = json.loads(got[0]["Body"])
    return body


def test_envelopes_records_and_contexts_carry_the_servers_account_and_region(
    server: Server,
) -> None:
    sns, sqs = aws_client(server.url, "sns"), aws_client(server.url, "sqs")
    topic = sns.create_topic(Name="orders")["TopicArn"]
    assert topic == f"arn:aws:sns:{REGION}:{ACCOUNT}:orders"
    envelopes_url, envelopes = queue_of(sqs, "envelopes")
    _, ordered = queue_of(sqs, "ordered")
    assert ordered == f"arn:aws:sqs:{REGION}:{ACCOUNT}:ordered"
    for endpoint in (envelopes, ordered):
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=endpoint)
    sns.publish(TopicArn=topic, Message="placed")

    envelope = one_message(sqs, envelopes_url)
    assert envelope["TopicArn"] == topic
    subscription = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    wire_arn = next(s["SubscriptionArn"] for s in subscription if s["Endpoint"] == envelopes)
    assert envelope["UnsubscribeURL"].endswith(wire_arn)

    seen_url = sqs.get_queue_url(QueueName="seen")["QueueUrl"]
    assert one_message(sqs, seen_url) == {
        "eventSourceARN": ordered,
        "awsRegion": REGION,
        "invoked_function_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:report",
        "TopicArn": topic,
    }


def test_a_routed_event_carries_the_servers_account_and_region(server: Server) -> None:
    events, sqs = aws_client(server.url, "events"), aws_client(server.url, "sqs")
    url, arn = queue_of(sqs, "routed")
    rule = events.put_rule(Name="placed", EventPattern=json.dumps({"source": ["shop"]}))
    assert rule["RuleArn"] == f"arn:aws:events:{REGION}:{ACCOUNT}:rule/placed"
    events.put_targets(Rule="placed", Targets=[{"Id": "routed", "Arn": arn}])
    entry = {"Source": "shop", "DetailType": "OrderPlaced", "Detail": "{}"}
    assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
    event = one_message(sqs, url)
    assert (event["account"], event["region"]) == (ACCOUNT, REGION)
