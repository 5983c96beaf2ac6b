"""`identify` tells the service of a request from its protocol markers alone."""

from __future__ import annotations

import pytest

from fanstack.aws.protocols import HttpRequest, identify

SIGNED = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/{}/aws4_request, Signature=x"


@pytest.mark.parametrize(
    ("target", "service"),
    [
        ("AmazonSQS.SendMessage", "sqs"),
        ("AWSEvents.PutEvents", "events"),
        ("AWSStepFunctions.StartExecution", "stepfunctions"),
        ("DynamoDB_20120810.GetItem", None),
    ],
)
def test_target_prefix_names_the_json_service(target: str, service: str | None) -> None:
    assert identify(HttpRequest("POST", "/", headers={"x-amz-target": target})) == service


@pytest.mark.parametrize(
    ("body", "scope", "service"),
    [
        (b"Action=Publish&Version=2010-03-31", None, "sns"),
        (b"Action=GetCallerIdentity&Version=2011-06-15", None, "sts"),
        (b"Action=SendMessage&Version=2012-11-05", None, "sqs"),
        (b"Action=GetCallerIdentity&Version=2011-06-15", "sts", "sts"),
        (b"Action=ListTopics", "sns", "sns"),
        (b"Action=DescribeInstances&Version=2016-11-15", None, None),
    ],
)
def test_query_action_is_told_apart_by_scope_then_version(
    body: bytes, scope: str | None, service: str | None
) -> None:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if scope:
        headers["authorization"] = SIGNED.format(scope)
    assert identify(HttpRequest("POST", "/", headers=headers, body=body)) == service


def test_query_action_in_a_get_query_string() -> None:
    request = HttpRequest("GET", "/", query="Action=ListTopics&Version=2010-03-31")
    assert identify(request) == "sns"


def test_rest_json_by_credential_scope() -> None:
    headers = {"authorization": SIGNED.format("scheduler")}
    assert identify(HttpRequest("GET", "/anything", headers=headers)) == "scheduler"


@pytest.mark.parametrize(
    ("method", "path", "service"),
    [
        ("POST", "/schedules/nightly", "scheduler"),
        ("GET", "/schedule-groups", "scheduler"),
        ("POST", "/2015-03-31/functions/my-fn/invocations", "lambda"),
        ("GET", "/2015-03-31/functions/my-fn", None),  # only Invoke is Lambda's here
        ("GET", "/dashboard", None),
    ],
)
def test_rest_json_by_request_uri(method: str, path: str, service: str | None) -> None:
    assert identify(HttpRequest(method, path)) == service
