"""Off loopback, the AWS endpoint admits only callers that sign with a configured key.

A server bound to every interface with `--aws-credentials`: boto3 with the right key works;
a wrong secret, an unknown key, no signature, a stale signature or a tampered body each get
AWS's error, and nothing happens to the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from .conftest import Server, start_server

APP = Path(__file__).with_name("aws_app.py")
KEY, SECRET = "AKIAFANSTACKTEST0001", "s3cr3t-s3cr3t-s3cr3t"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        APP,
        tmp_path_factory.mktemp("aws-auth") / "state",
        host="0.0.0.0",
        args=["--aws-credentials", f"{KEY}:{SECRET},OTHERKEY:other-secret"],
    )
    yield running
    running.stop()


def client(server: Server, service: str, key: str = KEY, secret: str = SECRET) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def test_a_caller_signing_with_a_configured_key_is_served(server: Server) -> None:
    sqs = client(server, "sqs")
    url = sqs.create_queue(QueueName="signed")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="ok")
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "ok"
    assert client(server, "sts").get_caller_identity()["Account"] == "000000000000"
    other = client(server, "sqs", "OTHERKEY", "other-secret")
    assert other.get_queue_url(QueueName="signed")["QueueUrl"] == url


def test_a_wrong_secret_or_an_unknown_key_is_refused_and_changes_nothing(server: Server) -> None:
    with pytest.raises(ClientError) as wrong:
        client(server, "sqs", secret="not-the-secret").create_queue(QueueName="never")
    assert wrong.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert wrong.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as unknown:
        client(server, "sqs", key="AKIANOBODY").create_queue(QueueName="never")
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"
    with pytest.raises(ClientError) as query_service:
        client(server, "sts", secret="not-the-secret").get_caller_identity()
    assert query_service.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    # nothing was made by the refused calls
    with pytest.raises(client(server, "sqs").exceptions.QueueDoesNotExist):
        client(server, "sqs").get_queue_url(QueueName="never")


def test_no_signature_a_stale_one_or_a_tampered_body_is_refused(server: Server) -> None:
    form = {"Action": "GetCallerIdentity", "Version": "2011-06-15"}
    unsigned = httpx.post(server.url + "/", data=form)
    assert unsigned.status_code == 403
    assert "<Code>MissingAuthenticationToken</Code>" in unsigned.text

    def signed(body: bytes, when: datetime) -> dict[str, str]:
        request = AWSRequest(
            method="POST",
            url=server.url + "/",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        signer = SigV4Auth(Credentials(KEY, SECRET), "sts", "us-east-1")
        request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        request.headers["X-Amz-Date"] = request.context["timestamp"]
        canonical = signer.canonical_request(request)
        signature = signer.signature(signer.string_to_sign(request, canonical), request)
        scope = signer.credential_scope(request)
        headers = signer.signed_headers(signer.headers_to_sign(request))
        request.headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={KEY}/{scope}, SignedHeaders={headers}, "
            f"Signature={signature}"
        )
        return dict(request.headers.items())

    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    now = datetime.now(UTC)
    fine = httpx.post(server.url + "/", content=body, headers=signed(body, now))
    assert fine.status_code == 200, fine.text
    old = now - timedelta(hours=1)
    stale = httpx.post(server.url + "/", content=body, headers=signed(body, old))
    assert stale.status_code == 403 and "Signature expired" in stale.text
    tampered = httpx.post(server.url + "/", content=body + b"&Extra=1", headers=signed(body, now))
    assert tampered.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in tampered.text


def test_on_loopback_any_credentials_are_accepted(tmp_path: Path) -> None:
    server = start_server(APP, tmp_path / "state", args=["--aws-credentials", f"{KEY}:{SECRET}"])
    try:
        sqs = client(server, "sqs", key="anything", secret="at-all")
        assert sqs.create_queue(QueueName="local")["QueueUrl"].endswith("/local")
    finally:
        server.stop()
