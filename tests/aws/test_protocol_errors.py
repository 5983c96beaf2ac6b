"""Malformed requests get each protocol's AWS error code, in each protocol's error shape."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest

from fanstack.aws.protocols import AwsError, HttpRequest, protocol_for, service_model


def parse_error(service: str, request: HttpRequest) -> AwsError:
    with pytest.raises(AwsError) as caught:
        protocol_for(service_model(service), request).parse(request)
    return caught.value


def test_query_unknown_action_is_invalid_action() -> None:
    request = HttpRequest("POST", "/", body=b"Action=Nope&Version=2010-03-31")
    assert parse_error("sns", request).code == "InvalidAction"


def test_query_missing_required_parameter_is_a_validation_error() -> None:
    request = HttpRequest("POST", "/", body=b"Action=Publish&Version=2010-03-31")
    error = parse_error("sns", request)
    assert (error.code, error.message) == (
        "ValidationError",
        "1 validation error detected: Value null at 'message' failed to satisfy constraint: "
        "Member must not be null",
    )


def test_json_malformed_body_and_wrong_type_are_serialization_exceptions() -> None:
    headers = {"x-amz-target": "AWSEvents.PutRule"}
    assert parse_error("events", HttpRequest("POST", "/", headers=headers, body=b"{")).code == (
        "SerializationException"
    )
    wrong = HttpRequest("POST", "/", headers=headers, body=b'{"Name": 5}')
    assert parse_error("events", wrong).code == "SerializationException"


def test_json_unknown_operation() -> None:
    request = HttpRequest("POST", "/", headers={"x-amz-target": "AWSEvents.Nope"}, body=b"{}")
    assert parse_error("events", request).code == "UnknownOperationException"


def test_rest_json_unknown_route_is_404() -> None:
    error = parse_error("scheduler", HttpRequest("PATCH", "/nowhere"))
    assert (error.code, error.status) == ("UnknownOperationException", 404)


def test_query_error_response_shape() -> None:
    protocol = protocol_for(service_model("sns"))
    response = protocol.serialize_error(
        AwsError("NotFoundException", "Topic does not exist"), operation=None, request_id="r-1"
    )
    root = ElementTree.fromstring(response.body)
    ns = {"sns": "http://sns.amazonaws.com/doc/2010-03-31/"}
    assert response.status == 404
    assert root.findtext("sns:Error/sns:Code", namespaces=ns) == "NotFound"
    assert root.findtext("sns:Error/sns:Type", namespaces=ns) == "Sender"
    assert root.findtext("sns:RequestId", namespaces=ns) == "r-1"


def test_json_query_compatible_error_header() -> None:
    protocol = protocol_for(service_model("sqs"))
    error = AwsError(
        "QueueDoesNotExist", "gone", query_code="AWS.SimpleQueueService.NonExistentQueue"
    )
    response = protocol.serialize_error(error, operation=None, request_id="r-1")
    assert (
        response.headers["x-amzn-query-error"] == "AWS.SimpleQueueService.NonExistentQueue;Sender"
    )
    assert json.loads(response.body) == {"__type": "QueueDoesNotExist", "message": "gone"}
    assert response.headers["Content-Type"] == "application/x-amz-json-1.0"


def test_rest_json_error_shape_uses_modeled_status_and_message_member() -> None:
    protocol = protocol_for(service_model("scheduler"))
    response = protocol.serialize_error(
        AwsError("ConflictException", "exists"), operation=None, request_id="r-1"
    )
    assert response.status == 409
    assert response.headers["x-amzn-ErrorType"] == "ConflictException"
    assert json.loads(response.body) == {"Message": "exists"}
