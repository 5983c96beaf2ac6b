"""SNS over the wire: real boto3 clients (and the AWS CLI) against `fanstack run`.

Topics and subscriptions made with boto3 are the app's; the seed's fan-out (1 topic, 5 queues,
one behind a filter policy; publish batches of 10, receive 10 and delete in batches) runs
entirely over the wire.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from fanstack import App

from .aws_clients import aws_client
from .conftest import Server, start_server, wait_for

APP = Path(__file__).with_name("aws_app.py")
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(APP, tmp_path_factory.mktemp("aws-sns") / "state")
    yield running
    running.stop()


def client(server: Server, service: str) -> Any:
    return aws_client(server.url, service)


@pytest.fixture(scope="module")
def sns(server: Server) -> Any:
    return client(server, "sns")


@pytest.fixture(scope="module")
def sqs(server: Server) -> Any:
    return client(server, "sqs")


def queue_arn(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, attributes["Attributes"]["QueueArn"]


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return got
        got.extend(batch)
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        deleted = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        assert not deleted.get("Failed")


def test_the_seed_fan_out_over_the_wire(sns: Any, sqs: Any) -> None:
    topic = sns.create_topic(Name="orders")["TopicArn"]
    assert topic == "arn:aws:sns:us-east-1:000000000000:orders"
    queues = {}
    for name in ("process", "notify", "delivery", "reports", "compliance"):
        url, arn = queue_arn(sqs, name)
        attributes = {"RawMessageDelivery": "true"}
        if name == "compliance":
            attributes["FilterPolicy"] = json.dumps({"market": ["ru"]})
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes=attributes)
        queues[name] = url
    for start in range(0, 30, 10):
        entries = [
            {
                "Id": str(n),
                "Message": json.dumps({"order_id": f"o-{n}"}),
                "MessageAttributes": {
                    "market": {"DataType": "String", "StringValue": "ru" if n % 3 == 0 else "eu"}
                },
            }
            for n in range(start, start + 10)
        ]
        result = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
        assert len(result["Successful"]) == 10 and not result["Failed"]
    for name, url in queues.items():
        got = drain(sqs, url)
        assert len(got) == (10 if name == "compliance" else 30), name
        assert json.loads(got[0]["Body"])["order_id"].startswith("o-")  # raw delivery


def test_envelopes_filter_scopes_and_subscription_attributes(sns: Any, sqs: Any) -> None:
    topic = sns.create_topic(Name="events")["TopicArn"]
    url, arn = queue_arn(sqs, "events-all")
    subscription = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)["SubscriptionArn"]
    sns.publish(TopicArn=topic, Message="hello", Subject="greeting",
                MessageAttributes={"n": {"DataType": "Number", "StringValue": "5"}})  # fmt: skip
    (message,) = drain(sqs, url)
    envelope = json.loads(message["Body"])
    assert envelope["Type"] == "Notification"
    assert envelope["Message"] == "hello" and envelope["Subject"] == "greeting"
    assert envelope["MessageAttributes"]["n"] == {"Type": "Number", "Value": "5"}
    sns.set_subscription_attributes(
        SubscriptionArn=subscription, AttributeName="FilterPolicyScope",
        AttributeValue="MessageBody",
    )  # fmt: skip
    sns.set_subscription_attributes(
        SubscriptionArn=subscription, AttributeName="FilterPolicy",
        AttributeValue=json.dumps({"kind": ["big"]}),
    )  # fmt: skip
    attributes = sns.get_subscription_attributes(SubscriptionArn=subscription)["Attributes"]
    assert attributes["FilterPolicyScope"] == "MessageBody"
    assert json.loads(attributes["FilterPolicy"]) == {"kind": ["big"]}
    assert attributes["Endpoint"] == arn and attributes["Protocol"] == "sqs"
    sns.publish(TopicArn=topic, Message=json.dumps({"kind": "small"}))
    sns.publish(TopicArn=topic, Message=json.dumps({"kind": "big"}))
    (only,) = drain(sqs, url)
    assert json.loads(json.loads(only["Body"])["Message"]) == {"kind": "big"}
    listed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [s["SubscriptionArn"] for s in listed] == [subscription]
    sns.unsubscribe(SubscriptionArn=subscription)
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []


def test_message_structure_json_and_batch_failures(sns: Any, sqs: Any) -> None:
    topic = sns.create_topic(Name="structured")["TopicArn"]
    url, arn = queue_arn(sqs, "structured-q")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})  # fmt: skip
    sns.publish(TopicArn=topic, MessageStructure="json",
                Message=json.dumps({"default": "plain", "sqs": "for queues"}))  # fmt: skip
    assert [m["Body"] for m in drain(sqs, url)] == ["for queues"]
    result = sns.publish_batch(
        TopicArn=topic,
        PublishBatchRequestEntries=[
            {"Id": "good", "Message": "fine"},
            {"Id": "bad", "Message": "x", "MessageStructure": "json"},
        ],
    )
    assert [s["Id"] for s in result["Successful"]] == ["good"]
    assert result["Failed"][0]["Id"] == "bad" and result["Failed"][0]["SenderFault"]


def test_fifo_topics_tags_and_attributes(sns: Any, sqs: Any) -> None:
    topic = sns.create_topic(
        Name="ledger.fifo",
        Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"},
        Tags=[{"Key": "team", "Value": "money"}],
    )["TopicArn"]
    url = sqs.create_queue(QueueName="ledger.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                  Attributes={"RawMessageDelivery": "true"})  # fmt: skip
    for body in ("a", "b", "a"):
        sns.publish(TopicArn=topic, Message=body, MessageGroupId="g")
    assert [m["Body"] for m in drain(sqs, url)] == ["a", "b"]  # the second "a" deduplicated
    attributes = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert attributes["FifoTopic"] == "true" and attributes["SubscriptionsConfirmed"] == "1"
    sns.set_topic_attributes(TopicArn=topic, AttributeName="DisplayName", AttributeValue="L")
    assert sns.get_topic_attributes(TopicArn=topic)["Attributes"]["DisplayName"] == "L"
    sns.tag_resource(ResourceArn=topic, Tags=[{"Key": "env", "Value": "dev"}])
    sns.untag_resource(ResourceArn=topic, TagKeys=["team"])
    assert sns.list_tags_for_resource(ResourceArn=topic)["Tags"] == [
        {"Key": "env", "Value": "dev"}
    ]


def test_errors_are_the_sdks_own(sns: Any, sqs: Any) -> None:
    missing = "arn:aws:sns:us-east-1:000000000000:nowhere"
    with pytest.raises(sns.exceptions.NotFoundException):
        sns.publish(TopicArn=missing, Message="x")
    topic = sns.create_topic(Name="strict")["TopicArn"]
    _, arn = queue_arn(sqs, "strict-q")
    with pytest.raises(sns.exceptions.InvalidParameterException) as caught:
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                      Attributes={"FilterPolicy": json.dumps({"a": "not-a-list"})})  # fmt: skip
    assert "a" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as unsupported:
        sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="ada@example.com")
    assert unsupported.value.response["Error"]["Code"] == "InvalidParameter"
    sns.delete_topic(TopicArn=missing)  # deleting no topic succeeds, as in SNS


def test_a_topic_the_app_declares_is_the_topic_over_the_wire(
    sns: Any, sqs: Any, server: Server
) -> None:
    app = App("aws-test", backend=f"sqlite://{server.data_dir}")
    try:
        declared = app.topic("declared-topic")
        declared.subscribe(app.queue_for("declared"), raw=True)
        app.backend  # noqa: B018 - provision what the app declares
        wanted = "arn:aws:sns:us-east-1:000000000000:declared-topic"
        # another process's change shows within 0.1 s (SNS too is eventually consistent)
        wait_for(lambda: wanted in [t["TopicArn"] for t in sns.list_topics()["Topics"]])
        sns.publish(TopicArn="arn:aws:sns:us-east-1:000000000000:declared-topic",
                    Message="over the wire")  # fmt: skip
        (message,) = app.queue_for("declared").receive()
        assert message.body == "over the wire"
    finally:
        app.close()


def test_the_aws_cli_speaks_sns(server: Server, tmp_path: Path) -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}  # fmt: skip
    aws = [sys.executable, "-m", "awscli", "--endpoint-url", server.url, "--output", "json"]
    made = subprocess.run([*aws, "sns", "create-topic", "--name", "cli-topic"],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    listed = subprocess.run([*aws, "sns", "list-topics"], capture_output=True, text=True,
                            env=env, timeout=60)  # fmt: skip
    assert json.loads(made.stdout)["TopicArn"] in listed.stdout
