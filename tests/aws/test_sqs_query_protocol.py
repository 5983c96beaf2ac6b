"""SQS over its former query protocol, as SDKs older than its JSON protocol speak it."""

from __future__ import annotations

from urllib.parse import urlencode

from botocore.awsrequest import HeadersDict
from botocore.parsers import create_parser

from fanstack.aws.protocols import AwsError, HttpRequest, identify, protocol_for, service_model
from fanstack.aws.protocols.sqs_query import sqs_query_model


def form_request(params: dict[str, str]) -> HttpRequest:
    body = urlencode(params).encode()
    headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
    return HttpRequest("POST", "/", headers=headers, body=body)


def test_old_sdk_create_queue_reads_attribute_and_tag_entries() -> None:
    request = form_request(
        {
            "Action": "CreateQueue",
            "Version": "2012-11-05",
            "QueueName": "orders",
            "Attribute.1.Name": "VisibilityTimeout",
            "Attribute.1.Value": "30",
            "Tag.1.Key": "team",
            "Tag.1.Value": "core",
        }
    )
    assert identify(request) == "sqs"
    operation, params = protocol_for(service_model("sqs"), request).parse(request)
    assert operation.name == "CreateQueue"
    assert params == {
        "QueueName": "orders",
        "Attributes": {"VisibilityTimeout": "30"},
        "tags": {"team": "core"},
    }


def test_old_sdk_receive_message_answer_parses_with_botocore_query_parser() -> None:
    request = form_request(
        {
            "Action": "ReceiveMessage",
            "Version": "2012-11-05",
            "QueueUrl": "http://localhost/000000000000/orders",
            "AttributeName.1": "All",
            "MessageAttributeName.1": "All",
            "MaxNumberOfMessages": "10",
        }
    )
    protocol = protocol_for(service_model("sqs"), request)
    operation, params = protocol.parse(request)
    assert params["AttributeNames"] == ["All"] and params["MaxNumberOfMessages"] == 10
    message = {
        "MessageId": "m-1",
        "Body": "hi",
        "Attributes": {"SentTimestamp": "1"},
        "MessageAttributes": {"color": {"DataType": "String", "StringValue": "red"}},
    }
    response = protocol.serialize(operation, {"Messages": [message]}, request_id="r-1")
    assert b"<Message><MessageId>m-1</MessageId>" in response.body
    raw = {"status_code": 200, "headers": HeadersDict(response.headers), "body": response.body}
    shape = sqs_query_model().operation_model("ReceiveMessage").output_shape
    shape.serialization["resultWrapper"] = "ReceiveMessageResult"
    parsed = create_parser("query").parse(raw, shape)
    assert parsed["Messages"] == [message]


def test_old_sdk_error_carries_the_query_code() -> None:
    request = form_request({"Action": "GetQueueUrl", "Version": "2012-11-05", "QueueName": "x"})
    protocol = protocol_for(service_model("sqs"), request)
    missing = AwsError(
        "QueueDoesNotExist", "nope", query_code="AWS.SimpleQueueService.NonExistentQueue"
    )
    response = protocol.serialize_error(missing, operation=None, request_id="r-1")
    raw = {"status_code": response.status, "headers": HeadersDict(), "body": response.body}
    parsed = create_parser("query").parse(raw, None)
    assert parsed["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert parsed["Error"]["Type"] == "Sender"
