"""Lambda's Invoke over the wire: a real boto3 client (and the AWS CLI) runs the app's functions
under `fanstack run`."""

from __future__ import annotations

import base64
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

APP = Path(__file__).with_name("aws_workflows_app.py")
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(APP, tmp_path_factory.mktemp("aws-lambda") / "state")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def lambda_client(server: Server) -> Any:
    return aws_client(server.url, "lambda")


@pytest.fixture(scope="module")
def store(server: Server) -> Iterator[App]:
    app = App("aws-lambda-test", backend=f"sqlite://{server.data_dir}")
    yield app
    app.close()


def test_request_response_returns_the_result(lambda_client: Any) -> None:
    answer = lambda_client.invoke(FunctionName="double", Payload=b'{"value": 21}')
    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    assert answer["ExecutedVersion"] == "$LATEST"
    assert json.loads(answer["Payload"].read()) == {"value": 42}
    by_arn = lambda_client.invoke(
        FunctionName="arn:aws:lambda:us-east-1:000000000000:function:double",
        Payload=json.dumps({"value": 1}),
        LogType="Tail",
    )
    assert json.loads(by_arn["Payload"].read()) == {"value": 2}
    assert "START RequestId" in base64.b64decode(by_arn["LogResult"]).decode()


def test_an_unhandled_error_comes_back_as_lambdas_error_payload(lambda_client: Any) -> None:
    answer = lambda_client.invoke(
        FunctionName="flaky", Payload=json.dumps({"fail": True, "reason": "testing"})
    )
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    error = json.loads(answer["Payload"].read())
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "asked to fail: testing"
    assert isinstance(error["stackTrace"], list)


def test_an_event_invocation_is_queued_and_happens(lambda_client: Any, store: App) -> None:
    answer = lambda_client.invoke(
        FunctionName="remember", InvocationType="Event", Payload=json.dumps({"id": "evt-1"})
    )
    assert answer["StatusCode"] == 202
    assert answer["Payload"].read() == b""
    remembered = wait_for(lambda: store.table("remembered").get("evt-1"))
    assert remembered == {"id": "evt-1"}


def test_a_dry_run_answers_204(lambda_client: Any) -> None:
    answer = lambda_client.invoke(FunctionName="double", InvocationType="DryRun")
    assert answer["StatusCode"] == 204


def test_unknown_functions_and_bad_payloads(lambda_client: Any) -> None:
    with pytest.raises(ClientError) as missing:
        lambda_client.invoke(FunctionName="nowhere", Payload=b"{}")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "function:nowhere" in missing.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as version:
        lambda_client.invoke(FunctionName="double", Qualifier="7", Payload=b"{}")
    assert version.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as bad:
        lambda_client.invoke(FunctionName="double", Payload=b"{not json")
    assert bad.value.response["Error"]["Code"] == "InvalidRequestContentException"


def test_the_aws_cli(server: Server, tmp_path: Path) -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}  # fmt: skip
    out = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, "-m", "awscli", "--endpoint-url", server.url, "--output", "json",
         "lambda", "invoke", "--function-name", "double", "--payload", '{"value": 50}', str(out)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["StatusCode"] == 200
    assert json.loads(out.read_text()) == {"value": 100}
