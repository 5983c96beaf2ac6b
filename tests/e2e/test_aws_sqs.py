"""SQS over the wire: real boto3 clients (and the AWS CLI) against `fanstack run`.

The same store serves the Python app: a queue made with boto3 is a queue of the app, and the
app's queues answer to boto3.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from fanstack import App

from .aws_clients import aws_client
from .conftest import Server, start_server, wait_for

APP = Path(__file__).with_name("aws_app.py")
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(APP, tmp_path_factory.mktemp("aws") / "state")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def sqs(server: Server) -> Any:
    return aws_client(server.url, "sqs")


@pytest.fixture(scope="module")
def store(server: Server) -> Iterator[App]:
    app = App("aws-test", backend=f"sqlite://{server.data_dir}")
    yield app
    app.close()


def test_a_queue_made_with_boto3_is_a_queue_of_the_app(
    sqs: Any, store: App, server: Server
) -> None:
    url = sqs.create_queue(QueueName="wire-made", Attributes={"VisibilityTimeout": "7"})[
        "QueueUrl"
    ]
    host = server.url.removeprefix("http://")
    assert url == f"http://{host}/000000000000/wire-made"
    assert sqs.get_queue_url(QueueName="wire-made")["QueueUrl"] == url
    assert store.backend.get_queue("wire-made").visibility_timeout == 7
    sqs.send_message(QueueUrl=url, MessageBody="over the wire", MessageAttributes={
        "kind": {"DataType": "String", "StringValue": "wire"}})  # fmt: skip
    (message,) = store.queue_for("wire-made").receive()
    assert message.body == "over the wire"
    assert message.attributes == {"kind": "wire"}
    # and back: the app's own queue answers to boto3
    store.queue_for("declared").send("from python", attributes={"n": 3})
    declared = sqs.get_queue_url(QueueName="declared")["QueueUrl"]
    got = sqs.receive_message(QueueUrl=declared, MessageAttributeNames=["All"],
                              AttributeNames=["All"])["Messages"]  # fmt: skip
    assert got[0]["Body"] == "from python"
    assert got[0]["MessageAttributes"]["n"] == {"DataType": "Number", "StringValue": "3"}
    assert got[0]["Attributes"]["ApproximateReceiveCount"] == "1"
    urls = sqs.list_queues()["QueueUrls"]
    assert {u.rsplit("/", 1)[1] for u in urls} >= {"wire-made", "declared"}
    assert not any("/fanstack-" in u for u in urls)


def test_send_receive_delete_and_the_md5s(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="basic")["QueueUrl"]
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody="héllo",
        MessageAttributes={
            "a": {"DataType": "String", "StringValue": "x"},
            "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            "c": {"DataType": "Number", "StringValue": "12"},
        },
    )
    assert sent["MD5OfMessageBody"] == hashlib.md5("héllo".encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == md5_of_attributes_as_sqs_documents(
        [("a", "String", 1, b"x"), ("b", "Binary", 2, b"\x00\x01"), ("c", "Number", 1, b"12")]
    )
    got = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=1)
    (message,) = got["Messages"]
    assert message["MessageId"] == sent["MessageId"]
    assert message["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert message["MessageAttributes"]["b"]["BinaryValue"] == b"\x00\x01"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)


def test_long_polls_wait_aside_while_other_calls_are_answered(server: Server, sqs: Any) -> None:
    """Calls that only store or read are answered where they arrive; a long poll (asked for,
    or the queue's default) waits on a thread of its own, so it holds up no other call, and
    it still answers the moment a message comes."""
    explicit = sqs.create_queue(QueueName="poll-explicit")["QueueUrl"]
    by_default = sqs.create_queue(
        QueueName="poll-default", Attributes={"ReceiveMessageWaitTimeSeconds": "20"}
    )["QueueUrl"]
    other = sqs.create_queue(QueueName="answered-meanwhile")["QueueUrl"]
    got: dict[str, list[str]] = {}

    def poll(name: str, url: str, **wait: int) -> None:
        client = aws_client(server.url, "sqs")
        messages = client.receive_message(QueueUrl=url, **wait).get("Messages", [])
        got[name] = [m["Body"] for m in messages]

    polls = [
        threading.Thread(target=poll, args=("explicit", explicit), kwargs={"WaitTimeSeconds": 20}),
        threading.Thread(target=poll, args=("default", by_default)),
    ]
    for thread in polls:
        thread.start()
    time.sleep(0.5)  # both polls are in flight
    for n in range(20):
        sqs.send_message(QueueUrl=other, MessageBody=f"meanwhile {n}")
    assert len(sqs.receive_message(QueueUrl=other, MaxNumberOfMessages=10)["Messages"]) == 10
    assert got == {}  # answered while both polls were still waiting
    sqs.send_message(QueueUrl=explicit, MessageBody="for the explicit poll")
    sqs.send_message(QueueUrl=by_default, MessageBody="for the default poll")
    for thread in polls:
        thread.join(timeout=15)  # well before their 20 s: a message ends each poll
    assert got == {"explicit": ["for the explicit poll"], "default": ["for the default poll"]}


def test_batches_answer_per_entry(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="batches")["QueueUrl"]
    result = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "ok", "MessageBody": "one"},
            {"Id": "late", "MessageBody": "two", "DelaySeconds": 2000},
        ],
    )
    assert [s["Id"] for s in result["Successful"]] == ["ok"]
    assert result["Failed"][0]["Id"] == "late"
    assert result["Failed"][0]["SenderFault"] is True
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    changed = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "a", "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "b", "ReceiptHandle": "not-a-handle", "VisibilityTimeout": 0},
        ],
    )
    assert [s["Id"] for s in changed["Successful"]] == ["a"]
    assert changed["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    (again,) = sqs.receive_message(QueueUrl=url)["Messages"]
    deleted = sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": "x", "ReceiptHandle": again["ReceiptHandle"]}]
    )
    assert deleted["Successful"] == [{"Id": "x"}]
    with pytest.raises(ClientError) as caught:
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": "same", "MessageBody": "1"}, {"Id": "same", "MessageBody": "2"}],
        )
    code = caught.value.response["Error"]["Code"]
    assert code == "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"


def test_attributes_tags_and_purge(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="tuned", tags={"team": "shop"})["QueueUrl"]
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"DelaySeconds": "3", "Policy": '{"Version":"2012-10-17"}'}
    )
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["DelaySeconds"] == "3"
    assert attributes["QueueArn"] == "arn:aws:sqs:us-east-1:000000000000:tuned"
    assert attributes["Policy"] == '{"Version":"2012-10-17"}'
    assert attributes["SqsManagedSseEnabled"] == "true"
    assert int(attributes["CreatedTimestamp"]) <= time.time()
    sqs.tag_queue(QueueUrl=url, Tags={"env": "dev"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["team"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "dev"}
    sqs.send_message(QueueUrl=url, MessageBody="x")
    sqs.purge_queue(QueueUrl=url)
    with pytest.raises(ClientError) as caught:
        sqs.purge_queue(QueueUrl=url)
    assert caught.value.response["Error"]["Code"] == "AWS.SimpleQueueService.PurgeQueueInProgress"
    with pytest.raises(ClientError) as bad:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"NoSuchThing": "1"})
    assert bad.value.response["Error"]["Code"] == "InvalidAttributeName"
    with pytest.raises(ClientError) as clash:
        sqs.create_queue(QueueName="tuned", Attributes={"DelaySeconds": "9"})
    assert clash.value.response["Error"]["Code"] == "QueueAlreadyExists"


def test_errors_are_the_sdks_own_exceptions(sqs: Any) -> None:
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName="nowhere")
    url = sqs.create_queue(QueueName="errors")["QueueUrl"]
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="garbage")


def test_dead_letters_and_a_message_move_task(sqs: Any) -> None:
    dlq = sqs.create_queue(QueueName="jobs-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
    jobs = sqs.create_queue(
        QueueName="jobs", Attributes={"RedrivePolicy": policy, "VisibilityTimeout": "0"}
    )["QueueUrl"]
    sqs.send_message(QueueUrl=jobs, MessageBody="fails")
    assert sqs.receive_message(QueueUrl=jobs)["Messages"]
    assert "Messages" not in sqs.receive_message(QueueUrl=jobs)  # second receive: dead-lettered
    sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"]
    assert [u.rsplit("/", 1)[1] for u in sources] == ["jobs"]
    (dead,) = sqs.receive_message(QueueUrl=dlq, AttributeNames=["All"], VisibilityTimeout=0)[
        "Messages"
    ]
    assert dead["Attributes"]["DeadLetterQueueSourceArn"].endswith(":jobs")
    task = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    assert task

    def moved() -> bool:
        results = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
        return bool(results) and results[0]["Status"] == "COMPLETED"

    wait_for(moved, timeout=30)
    assert sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"][0][
        "ApproximateNumberOfMessagesMoved"
    ] == 1
    assert sqs.receive_message(QueueUrl=jobs)["Messages"][0]["Body"] == "fails"


def test_fifo_over_the_wire(sqs: Any) -> None:
    url = sqs.create_queue(
        QueueName="orders.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}", MessageGroupId="g")
    sqs.send_message(QueueUrl=url, MessageBody="m0", MessageGroupId="g")  # deduplicated
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
    bodies = [m["Body"] for m in got["Messages"]]
    assert bodies == ["m0", "m1", "m2"]
    assert got["Messages"][0]["Attributes"]["MessageGroupId"] == "g"
    assert len(got["Messages"][0]["Attributes"]["SequenceNumber"]) == 20


def test_sts_says_who_the_caller_is(server: Server) -> None:
    sts = boto3.client("sts", endpoint_url=server.url, region_name="us-east-1", **CREDENTIALS)
    identity = sts.get_caller_identity()
    assert identity["Account"] == "000000000000"
    assert identity["Arn"] == "arn:aws:iam::000000000000:root"


def test_an_old_sdk_speaking_the_query_protocol(server: Server, sqs: Any) -> None:
    url = sqs.create_queue(QueueName="query-proto")["QueueUrl"]
    response = httpx.post(
        server.url + "/",
        data={"Action": "SendMessage", "Version": "2012-11-05", "QueueUrl": url,
              "MessageBody": "from an old SDK"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert "<SendMessageResponse" in response.text and "<MessageId>" in response.text
    got = sqs.receive_message(QueueUrl=url)["Messages"]
    assert got[0]["Body"] == "from an old SDK"
    missing = httpx.post(
        server.url + "/",
        data={"Action": "GetQueueUrl", "Version": "2012-11-05", "QueueName": "nope"},
    )
    assert missing.status_code == 400
    assert "<Code>AWS.SimpleQueueService.NonExistentQueue</Code>" in missing.text


def test_the_aws_cli(server: Server, tmp_path: Path) -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}  # fmt: skip
    aws = [sys.executable, "-m", "awscli", "--endpoint-url", server.url, "--output", "json"]
    made = subprocess.run([*aws, "sqs", "create-queue", "--queue-name", "from-cli"],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    url = json.loads(made.stdout)["QueueUrl"]
    sent = subprocess.run([*aws, "sqs", "send-message", "--queue-url", url, "--message-body",
                           "hi"], capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    identity = subprocess.run([*aws, "sts", "get-caller-identity"], capture_output=True,
                              text=True, env=env, timeout=60)  # fmt: skip
    assert json.loads(identity.stdout)["Account"] == "000000000000"


def md5_of_attributes_as_sqs_documents(attributes: list[tuple[str, str, int, bytes]]) -> str:
    """SQS's documented digest: per attribute, sorted by name, the 4-byte big-endian length and
    bytes of the name and of the data type, the transport byte, then length and value."""
    digest = hashlib.md5()
    for name, data_type, transport, value in sorted(attributes):
        for part in (name.encode(), data_type.encode()):
            digest.update(struct.pack(">I", len(part)) + part)
        digest.update(bytes([transport]) + struct.pack(">I", len(value)) + value)
    return digest.hexdigest()


def test_a_python_function_consumes_a_queue_made_over_the_wire(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    first = start_server(APP, data_dir)
    try:
        wire = boto3.client("sqs", endpoint_url=first.url, region_name="us-east-1", **CREDENTIALS)
        wire.create_queue(QueueName="made-by-terraform")
    finally:
        first.stop()
    consumer_app = Path(__file__).with_name("aws_consumer_app.py")
    second = start_server(consumer_app, data_dir)
    try:
        sqs = boto3.client("sqs", endpoint_url=second.url, region_name="us-east-1", **CREDENTIALS)
        url = sqs.get_queue_url(QueueName="made-by-terraform")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="over the wire")
        handled = sqs.get_queue_url(QueueName="handled")["QueueUrl"]

        def relayed() -> list[dict[str, Any]]:
            return sqs.receive_message(QueueUrl=handled).get("Messages", [])

        (message,) = wait_for(relayed, timeout=60)  # type: ignore[misc]
        assert json.loads(message["Body"]) == {"seen": "over the wire"}
    finally:
        second.stop()


def test_aws_calls_are_counted_by_service_in_the_metrics(server: Server, sqs: Any) -> None:
    sqs.list_queues()
    text = httpx.get(f"{server.url}/metrics").text
    assert 'route="aws:sqs"' in text
    assert 'route="unmatched",status="200"' not in text
