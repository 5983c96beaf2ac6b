"""SNS subscriptions to a function (`lambda`) and to URLs (`http`) over the wire: real boto3
clients against `fanstack run`, and a real HTTP endpoint on a loopback port that records what
it is sent and answers as told."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature

from fanstack.notifications.endpoints import HTTP_TIMEOUT

from .aws_clients import aws_client
from .conftest import Server, start_server, wait_for

APP = Path(__file__).with_name("aws_sns_endpoints_app.py")
FUNCTION_ARN = "arn:aws:lambda:us-east-1:000000000000:function:record"
TIMEOUT = -1  # a planned answer: none within fanstack's HTTP timeout
FAST_RETRIES = {"healthyRetryPolicy": {"numRetries": 2, "minDelayTarget": 1, "maxDelayTarget": 1}}


@dataclass(frozen=True)
class Received:
    """One request the endpoint got."""

    path: str
    headers: dict[str, str]
    body: str

    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


class Endpoint:
    """An HTTP server that records POSTs and answers each path's planned statuses in turn
    (then its default, 200 unless set); `TIMEOUT` answers only after fanstack gave up."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.plans: dict[str, list[int]] = {}
        self.defaults: dict[str, int] = {}
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with endpoint.lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    endpoint.received.append(Received(self.path, headers, body.decode()))
                    plan = endpoint.plans.get(self.path) or []
                    status = plan.pop(0) if plan else endpoint.defaults.get(self.path, 200)
                if status == TIMEOUT:
                    time.sleep(HTTP_TIMEOUT + 2)
                    status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def got(self, path: str, kind: str | None = None) -> list[Received]:
        with self.lock:
            return [
                r for r in self.received
                if r.path == path and kind in (None, r.headers.get("x-amz-sns-message-type"))
            ]  # fmt: skip

    def wait(self, path: str, count: int, kind: str = "Notification") -> list[Received]:
        wait_for(lambda: len(self.got(path, kind)) >= count, timeout=20)
        return self.got(path, kind)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(APP, tmp_path_factory.mktemp("aws-sns-endpoints") / "state")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    running = Endpoint()
    yield running
    running.server.shutdown()
    running.server.server_close()


@pytest.fixture(scope="module")
def sns(server: Server) -> Any:
    return aws_client(server.url, "sns")


@pytest.fixture(scope="module")
def sqs(server: Server) -> Any:
    return aws_client(server.url, "sqs")


def subscribe_http(
    sns: Any, endpoint: Endpoint, topic: str, path: str, **attributes: Any
) -> tuple[str, Received]:
    """Subscribe a path of the endpoint; returns the answer's ARN and the confirmation POST."""
    answer = sns.subscribe(
        TopicArn=topic, Protocol="http", Endpoint=endpoint.url(path),
        Attributes={k: v if isinstance(v, str) else json.dumps(v) for k, v in attributes.items()},
    )  # fmt: skip
    (confirmation,) = endpoint.wait(path, 1, "SubscriptionConfirmation")
    return answer["SubscriptionArn"], confirmation


def confirmed_http(sns: Any, endpoint: Endpoint, topic: str, path: str, **attributes: Any) -> str:
    _, confirmation = subscribe_http(sns, endpoint, topic, path, **attributes)
    token = confirmation.json()["Token"]
    arn: str = sns.confirm_subscription(TopicArn=topic, Token=token)["SubscriptionArn"]
    return arn


def test_a_lambda_subscription_invokes_the_function_with_the_sns_event(sns: Any, sqs: Any) -> None:
    topic = sns.create_topic(Name="to-lambda")["TopicArn"]
    arn = sns.subscribe(
        TopicArn=topic, Protocol="lambda", Endpoint=FUNCTION_ARN,
        Attributes={"FilterPolicy": json.dumps({"kind": ["paid"]})},
    )["SubscriptionArn"]  # fmt: skip
    assert arn.startswith(topic + ":")
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert attributes["Protocol"] == "lambda" and attributes["Endpoint"] == FUNCTION_ARN
    assert attributes["PendingConfirmation"] == "false"
    draft = {"kind": {"DataType": "String", "StringValue": "draft"}}
    sns.publish(TopicArn=topic, Message="draft order", MessageAttributes=draft)
    published = sns.publish(
        TopicArn=topic, Message="paid order", Subject="order",
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "paid"},
            "total": {"DataType": "Number", "StringValue": "42"},
        },
    )  # fmt: skip
    calls = sqs.get_queue_url(QueueName="calls")["QueueUrl"]
    received = wait_for(
        lambda: sqs.receive_message(QueueUrl=calls, WaitTimeSeconds=1).get("Messages"),
        timeout=20,
    )
    (record,) = json.loads(received[0]["Body"])["requestPayload"]["Records"]  # type: ignore[index]
    assert record["EventSource"] == "aws:sns" and record["EventVersion"] == "1.0"
    assert record["EventSubscriptionArn"] == arn
    event = record["Sns"]
    assert event["Type"] == "Notification" and event["MessageId"] == published["MessageId"]
    assert event["TopicArn"] == topic and event["Subject"] == "order"
    assert event["Message"] == "paid order"
    assert event["MessageAttributes"] == {
        "kind": {"Type": "String", "Value": "paid"},
        "total": {"Type": "Number", "Value": "42"},
    }
    for key in ("Timestamp", "SignatureVersion", "Signature", "SigningCertUrl", "UnsubscribeUrl"):
        assert key in event
    sqs.delete_message(QueueUrl=calls, ReceiptHandle=received[0]["ReceiptHandle"])  # type: ignore[index]
    # the draft never matched the filter policy
    assert not sqs.receive_message(QueueUrl=calls, WaitTimeSeconds=2).get("Messages")


def test_an_http_subscription_is_pending_until_confirmed_then_gets_notifications(
    sns: Any, endpoint: Endpoint
) -> None:
    topic = sns.create_topic(Name="to-http")["TopicArn"]
    answer, confirmation = subscribe_http(sns, endpoint, topic, "/hook")
    assert answer == "pending confirmation"
    assert confirmation.headers["x-amz-sns-topic-arn"] == topic
    document = confirmation.json()
    assert confirmation.headers["x-amz-sns-message-id"] == document["MessageId"]
    assert document["Type"] == "SubscriptionConfirmation" and document["TopicArn"] == topic
    assert {"Token", "Message", "SubscribeURL", "Timestamp", "SignatureVersion", "Signature",
            "SigningCertURL"} <= set(document)  # fmt: skip
    assert "Action=ConfirmSubscription" in document["SubscribeURL"]
    (listed,) = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert listed["SubscriptionArn"] == "PendingConfirmation"
    assert listed["Protocol"] == "http" and listed["Endpoint"] == endpoint.url("/hook")
    sns.publish(TopicArn=topic, Message="before confirmation")
    with pytest.raises(ClientError) as refused:
        sns.confirm_subscription(TopicArn=topic, Token="not-the-token")
    assert refused.value.response["Error"]["Code"] == "InvalidParameter"
    arn = sns.confirm_subscription(TopicArn=topic, Token=document["Token"])["SubscriptionArn"]
    assert arn.startswith(topic + ":")
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert attributes["PendingConfirmation"] == "false" and attributes["Protocol"] == "http"
    assert attributes["Endpoint"] == endpoint.url("/hook")
    listed_all = sns.list_subscriptions()["Subscriptions"]
    assert {"SubscriptionArn": arn, "Protocol": "http"}.items() <= next(
        s for s in listed_all if s["SubscriptionArn"] == arn
    ).items()
    published = sns.publish(
        TopicArn=topic, Message="after confirmation", Subject="hello",
        MessageAttributes={"color": {"DataType": "String", "StringValue": "red"}},
    )  # fmt: skip
    (notification,) = endpoint.wait("/hook", 1)
    headers = notification.headers
    assert headers["x-amz-sns-message-id"] == published["MessageId"]
    assert headers["x-amz-sns-topic-arn"] == topic
    assert headers["x-amz-sns-subscription-arn"] == arn
    assert headers["content-type"] == "text/plain; charset=UTF-8"
    body = notification.json()
    assert list(body) == [
        "Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp", "SignatureVersion",
        "Signature", "SigningCertURL", "UnsubscribeURL", "MessageAttributes",
    ]  # fmt: skip
    assert body["Message"] == "after confirmation" and body["Subject"] == "hello"
    assert body["MessageAttributes"] == {"color": {"Type": "String", "Value": "red"}}
    assert "Action=Unsubscribe" in body["UnsubscribeURL"]
    assert [n.json()["Message"] for n in endpoint.got("/hook", "Notification")] == [
        "after confirmation"
    ]


def verify_sns_signature(document: dict[str, Any]) -> None:
    """Verify a delivered document as an SNS receiver does: fetch the certificate at its
    `SigningCertURL`, rebuild the signed text from the document's fields, check the RSA
    signature under `SignatureVersion` (1: SHA1, 2: SHA256). Raises if it does not verify."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    certificate = x509.load_pem_x509_certificate(httpx.get(document["SigningCertURL"]).content)
    if document["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{n}\n{document[n]}\n" for n in names if n in document).encode()
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}[document["SignatureVersion"]]
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(base64.b64decode(document["Signature"]), text, padding.PKCS1v15(), algorithm)


def test_deliveries_are_signed_with_a_certificate_served_where_the_subscription_was_made(
    sns: Any, endpoint: Endpoint, server: Server
) -> None:
    topic = sns.create_topic(Name="signed")["TopicArn"]
    _, confirmation = subscribe_http(sns, endpoint, topic, "/signed")
    document = confirmation.json()
    assert document["SigningCertURL"] == f"{server.url}/_fanstack/sns/signing-cert.pem"
    verify_sns_signature(document)
    sns.confirm_subscription(TopicArn=topic, Token=document["Token"])
    sns.publish(TopicArn=topic, Message="with a subject", Subject="checked")
    sns.publish(TopicArn=topic, Message="without one")
    notifications = [n.json() for n in endpoint.wait("/signed", 2, "Notification")]
    for notification in notifications:
        verify_sns_signature(notification)
    tampered = {**notifications[0], "Message": "not what was signed"}
    with pytest.raises(InvalidSignature):
        verify_sns_signature(tampered)


def test_a_get_of_the_subscribe_url_confirms_and_raw_delivery_posts_the_message(
    sns: Any, endpoint: Endpoint, server: Server
) -> None:
    topic = sns.create_topic(Name="to-http-raw")["TopicArn"]
    arn = sns.subscribe(
        TopicArn=topic, Protocol="http", Endpoint=endpoint.url("/raw"),
        Attributes={"RawMessageDelivery": "true"}, ReturnSubscriptionArn=True,
    )["SubscriptionArn"]  # fmt: skip
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert attributes["PendingConfirmation"] == "true"
    (confirmation,) = endpoint.wait("/raw", 1, "SubscriptionConfirmation")
    visited = httpx.get(confirmation.json()["SubscribeURL"], timeout=10)
    assert visited.status_code == 200 and arn in visited.text
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert attributes["PendingConfirmation"] == "false"
    sns.publish(TopicArn=topic, Message='{"order": 7}')
    (notification,) = endpoint.wait("/raw", 1)
    assert notification.body == '{"order": 7}'
    assert notification.headers["x-amz-sns-rawdelivery"] == "true"


def test_a_failing_endpoint_gets_the_message_on_a_retry(sns: Any, endpoint: Endpoint) -> None:
    topic = sns.create_topic(Name="to-flaky")["TopicArn"]
    endpoint.plans["/flaky"] = [200, 500, 503]  # the confirmation, then two failures
    confirmed_http(sns, endpoint, topic, "/flaky", DeliveryPolicy=FAST_RETRIES)
    published = sns.publish(TopicArn=topic, Message="keep trying")
    attempts = endpoint.wait("/flaky", 3)
    assert {a.json()["MessageId"] for a in attempts} == {published["MessageId"]}


def test_an_endpoint_that_does_not_answer_in_time_gets_the_message_again(
    sns: Any, endpoint: Endpoint
) -> None:
    topic = sns.create_topic(Name="to-slow")["TopicArn"]
    endpoint.plans["/slow"] = [200, TIMEOUT]  # the confirmation, then one answer too late
    confirmed_http(sns, endpoint, topic, "/slow", DeliveryPolicy=FAST_RETRIES)
    published = sns.publish(TopicArn=topic, Message="are you there")
    wait_for(lambda: len(endpoint.got("/slow", "Notification")) >= 2, timeout=HTTP_TIMEOUT + 15)
    attempts = endpoint.got("/slow", "Notification")
    assert [a.json()["MessageId"] for a in attempts] == [published["MessageId"]] * 2


def test_an_endpoint_that_always_fails_leaves_the_message_in_the_dead_letter_queue(
    sns: Any, sqs: Any, endpoint: Endpoint
) -> None:
    topic = sns.create_topic(Name="to-down")["TopicArn"]
    dlq = sqs.create_queue(QueueName="down-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    redrive = {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"]}
    endpoint.plans["/down"] = [200]  # the confirmation; every notification fails
    endpoint.defaults["/down"] = 500
    policy = {"healthyRetryPolicy": {"numRetries": 1, "minDelayTarget": 1, "maxDelayTarget": 1}}
    arn = confirmed_http(
        sns, endpoint, topic, "/down", DeliveryPolicy=policy, RedrivePolicy=redrive
    )
    assert (
        json.loads(
            sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]["RedrivePolicy"]
        )
        == redrive
    )
    published = sns.publish(TopicArn=topic, Message="nobody home")
    received = wait_for(
        lambda: sqs.receive_message(
            QueueUrl=dlq, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        ).get("Messages"),
        timeout=20,
    )
    (message,) = received  # type: ignore[misc]
    body = json.loads(message["Body"])
    assert body["MessageId"] == published["MessageId"] and body["Message"] == "nobody home"
    assert message["MessageAttributes"]["ErrorCode"]["StringValue"] == "EndpointError"
    assert len(endpoint.got("/down", "Notification")) == 2  # the first attempt and one retry


def test_unsubscribe_stops_deliveries(sns: Any, sqs: Any, endpoint: Endpoint) -> None:
    topic = sns.create_topic(Name="to-leaving")["TopicArn"]
    arn = confirmed_http(sns, endpoint, topic, "/leaving")
    sns.publish(TopicArn=topic, Message="one")
    endpoint.wait("/leaving", 1)
    queues = sqs.list_queues().get("QueueUrls", [])
    assert not [url for url in queues if "fanstack-" in url]
    assert all(s["Protocol"] != "sqs" for s in sns.list_subscriptions()["Subscriptions"])
    sns.unsubscribe(SubscriptionArn=arn)
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []
    sns.publish(TopicArn=topic, Message="two")
    with pytest.raises(AssertionError):
        wait_for(lambda: len(endpoint.got("/leaving", "Notification")) > 1, timeout=3)


def test_endpoints_that_do_not_fit_their_protocol_are_refused(sns: Any) -> None:
    topic = sns.create_topic(Name="refusals")["TopicArn"]
    cases = [
        ("lambda", "arn:aws:lambda:us-east-1:000000000000:function:missing"),
        ("http", "ftp://example.com/"),
        ("https", "http://example.com/"),
    ]
    for protocol, address in cases:
        with pytest.raises(ClientError) as refused:
            sns.subscribe(TopicArn=topic, Protocol=protocol, Endpoint=address)
        assert refused.value.response["Error"]["Code"] == "InvalidParameter", protocol
    with pytest.raises(ClientError) as raw:
        sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=FUNCTION_ARN,
                      Attributes={"RawMessageDelivery": "true"})  # fmt: skip
    assert raw.value.response["Error"]["Code"] == "InvalidParameter"
