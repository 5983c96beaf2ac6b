"""The AWS API under failure: kill -9 of the server loses no acknowledged message, and SIGTERM
lets a long poll in flight finish before the process exits 0."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from fanstack import App

from ..e2e.aws_clients import aws_client
from ..e2e.conftest import REPO, start_server, wait_for

APP = REPO / "tests" / "e2e" / "aws_app.py"


def test_every_acknowledged_message_survives_kill_9_of_the_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    server = start_server(APP, data_dir)
    setup = aws_client(server.url, "sqs")
    queue_url = setup.create_queue(QueueName="wire-durable")["QueueUrl"]
    sns = aws_client(server.url, "sns")
    topic = sns.create_topic(Name="wire-orders")["TopicArn"]
    arn = setup.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    fanned_url = setup.create_queue(QueueName="wire-fanned")["QueueUrl"]
    fanned_arn = setup.get_queue_attributes(QueueUrl=fanned_url, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=fanned_arn["Attributes"]["QueueArn"],
                  Attributes={"RawMessageDelivery": "true"})  # fmt: skip
    assert arn["Attributes"]["QueueArn"].endswith(":wire-durable")
    sent: list[str] = []
    published: list[str] = []
    stop = threading.Event()

    def send_load(index: int) -> None:
        sqs = aws_client(server.url, "sqs")
        n = 0
        while not stop.is_set():
            bodies = [f"s{index}-{n}-{k}" for k in range(10)]
            n += 1
            entries = [{"Id": str(k), "MessageBody": body} for k, body in enumerate(bodies)]
            try:
                answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except Exception:
                return  # the server died mid-call: not acknowledged
            if "Successful" not in answer:
                # An answer cut by the kill (seen: a 200 with its Content-Length whose body
                # botocore parsed to nothing) acknowledges nothing.
                return
            sent.extend(bodies[int(s["Id"])] for s in answer["Successful"])

    def publish_load(index: int) -> None:
        client: Any = aws_client(server.url, "sns")
        n = 0
        while not stop.is_set():
            body = f"p{index}-{n}"
            n += 1
            try:
                client.publish(TopicArn=topic, Message=body)
            except Exception:
                return
            published.append(body)

    threads = [threading.Thread(target=send_load, args=(i,)) for i in range(2)]
    threads += [threading.Thread(target=publish_load, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(sent) >= 300 and len(published) >= 50, timeout=60)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(10)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)

    from fanstack.backends.sqlite import SQLiteBackend

    app = App("aws-test", backend=SQLiteBackend(data_dir, clock=lambda: time.time() + 600))
    try:
        for name, acknowledged in (("wire-durable", sent), ("wire-fanned", published)):
            stored: set[str] = set()
            queue = app.queue_for(name)
            while batch := queue.receive(max_messages=10, visibility_timeout=600):
                stored.update(message.body for message in batch)
            missing = set(acknowledged) - stored
            assert not missing, f"{name} lost {len(missing)} of {len(acknowledged)} acknowledged"
    finally:
        app.close()


def test_sigterm_lets_a_long_poll_in_flight_finish(tmp_path: Path) -> None:
    server = start_server(APP, tmp_path / "state")
    sqs = aws_client(server.url, "sqs")
    url = sqs.create_queue(QueueName="polled")["QueueUrl"]
    answers: list[dict[str, Any]] = []
    poller = threading.Thread(
        target=lambda: answers.append(sqs.receive_message(QueueUrl=url, WaitTimeSeconds=3))
    )
    poller.start()
    time.sleep(0.5)  # the poll is waiting on the server
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    poller.join(timeout=10)
    assert answers and answers[0]["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "Messages" not in answers[0]  # a whole (empty) answer, not a cut connection
