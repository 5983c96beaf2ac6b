"""Real boto3 clients through the codec: params arrive as the caller passed them, answers and
errors come back as boto3 would get them from AWS (see `wire.InProcessAws`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fanstack.aws.protocols import AwsError, HttpRequest, protocol_for, service_model
from tests.aws.wire import InProcessAws

WHEN = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def answering(outputs: dict[str, Any]) -> InProcessAws:
    """An in-process AWS answering each operation with `outputs[name]` (raised if an error)."""

    def answer(operation: str, params: dict[str, Any]) -> Any:
        output = outputs[operation]
        if isinstance(output, AwsError):
            raise output
        return output

    return InProcessAws(answer)


def test_sqs_json_round_trip_keeps_attributes_and_binary_values() -> None:
    aws = answering(
        {
            "SendMessage": {"MessageId": "m-1", "MD5OfMessageBody": "abc"},
            "ReceiveMessage": {
                "Messages": [
                    {
                        "MessageId": "m-1",
                        "ReceiptHandle": "r-1",
                        "Body": "hello",
                        "Attributes": {"ApproximateReceiveCount": "1"},
                        "MessageAttributes": {
                            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}
                        },
                    }
                ]
            },
        }
    )
    sqs = aws.client("sqs")
    attributes = {
        "color": {"DataType": "String", "StringValue": "red"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
    }
    sent = sqs.send_message(
        QueueUrl="http://localhost/000000000000/q",
        MessageBody="hello",
        DelaySeconds=5,
        MessageAttributes=attributes,
    )
    received = sqs.receive_message(
        QueueUrl="http://localhost/000000000000/q",
        MaxNumberOfMessages=10,
        MessageSystemAttributeNames=["All"],
    )
    assert sent["MessageId"] == "m-1"
    assert aws.calls[0].service == "sqs"
    assert aws.calls[0].params == {
        "QueueUrl": "http://localhost/000000000000/q",
        "MessageBody": "hello",
        "DelaySeconds": 5,
        "MessageAttributes": attributes,
    }
    assert aws.calls[1].params["MaxNumberOfMessages"] == 10
    message = received["Messages"][0]
    assert message["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\xff"
    assert message["Attributes"] == {"ApproximateReceiveCount": "1"}


def test_sqs_error_carries_its_query_code_to_the_modeled_exception() -> None:
    missing = AwsError(
        "QueueDoesNotExist",
        "The specified queue does not exist.",
        query_code="AWS.SimpleQueueService.NonExistentQueue",
    )
    sqs = answering({"GetQueueUrl": missing}).client("sqs")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as caught:
        sqs.get_queue_url(QueueName="nope")
    error = caught.value.response["Error"]
    assert error["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert error["QueryErrorCode"] == "QueueDoesNotExist"
    assert error["Message"] == "The specified queue does not exist."
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_sqs_missing_required_parameter_is_missing_parameter() -> None:
    # botocore validates before sending, so this request reaches only the codec.
    request = HttpRequest(
        "POST", "/", headers={"x-amz-target": "AmazonSQS.GetQueueUrl"}, body=b"{}"
    )
    with pytest.raises(AwsError) as caught:
        protocol_for(service_model("sqs")).parse(request)
    assert (caught.value.code, caught.value.query_code) == ("MissingParameter", "MissingParameter")


def test_sns_query_round_trip_and_modeled_error_code() -> None:
    aws = answering(
        {
            "Publish": {"MessageId": "m-1", "SequenceNumber": "1"},
            "ListSubscriptionsByTopic": {
                "Subscriptions": [
                    {"SubscriptionArn": "arn:s", "Protocol": "sqs", "Endpoint": "arn:q"}
                ],
                "NextToken": "n",
            },
            "GetTopicAttributes": AwsError("NotFoundException", "Topic does not exist"),
        }
    )
    sns = aws.client("sns")
    published = sns.publish(
        TopicArn="arn:aws:sns:us-east-1:000000000000:t",
        Message="hi",
        MessageAttributes={"n": {"DataType": "Number", "StringValue": "3"}},
        MessageGroupId="g",
    )
    listed = sns.list_subscriptions_by_topic(TopicArn="arn:t")
    assert published == {**published, "MessageId": "m-1", "SequenceNumber": "1"}
    assert aws.calls[0].service == "sns"
    assert aws.calls[0].params["MessageAttributes"] == {
        "n": {"DataType": "Number", "StringValue": "3"}
    }
    assert listed["Subscriptions"][0]["Protocol"] == "sqs"
    with pytest.raises(sns.exceptions.NotFoundException) as caught:
        sns.get_topic_attributes(TopicArn="arn:t")
    assert caught.value.response["Error"]["Code"] == "NotFound"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_sts_get_caller_identity_for_cli_and_terraform() -> None:
    identity = {
        "UserId": "AKID",
        "Account": "000000000000",
        "Arn": "arn:aws:iam::000000000000:root",
    }
    aws = answering({"GetCallerIdentity": identity})
    answer = aws.client("sts").get_caller_identity()
    assert aws.calls[0].service == "sts"
    assert {key: answer[key] for key in identity} == identity


def test_eventbridge_put_events_keeps_timestamps() -> None:
    aws = answering(
        {
            "PutEvents": {"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]},
            "DescribeRule": AwsError("ResourceNotFoundException", "Rule r does not exist."),
        }
    )
    events = aws.client("events")
    entry = {"Source": "app", "DetailType": "t", "Detail": '{"a": 1}', "Time": WHEN}
    answer = events.put_events(Entries=[entry])
    assert aws.calls[0].service == "events"
    assert aws.calls[0].params == {"Entries": [entry]}
    assert answer["Entries"] == [{"EventId": "e-1"}]
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.describe_rule(Name="r")


def test_step_functions_history_timestamps_and_errors() -> None:
    aws = answering(
        {
            "StartExecution": {"executionArn": "arn:x", "startDate": WHEN},
            "GetExecutionHistory": {
                "events": [
                    {"timestamp": WHEN, "type": "ExecutionStarted", "id": 1, "previousEventId": 0}
                ]
            },
            "DescribeStateMachine": AwsError("StateMachineDoesNotExist", "State machine x"),
        }
    )
    sfn = aws.client("stepfunctions")
    started = sfn.start_execution(stateMachineArn="arn:sm", input="{}", name="run-1")
    history = sfn.get_execution_history(executionArn="arn:x", maxResults=5)
    assert aws.calls[0].service == "stepfunctions"
    assert started["startDate"] == WHEN
    assert history["events"][0]["timestamp"] == WHEN
    assert aws.calls[1].params == {"executionArn": "arn:x", "maxResults": 5}
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.describe_state_machine(stateMachineArn="arn:nope")


def test_scheduler_rest_json_labels_query_and_body() -> None:
    aws = answering(
        {
            "CreateSchedule": {"ScheduleArn": "arn:aws:scheduler:us-east-1:0:schedule/g/s"},
            "ListSchedules": {"Schedules": [{"Name": "s", "CreationDate": WHEN}]},
            "DeleteSchedule": {},
            "GetSchedule": AwsError("ResourceNotFoundException", "Schedule s does not exist."),
        }
    )
    scheduler = aws.client("scheduler")
    target = {"Arn": "arn:aws:sqs:us-east-1:0:q", "RoleArn": "arn:role", "Input": "{}"}
    created = scheduler.create_schedule(
        Name="nightly run",
        GroupName="g",
        ScheduleExpression="rate(1 hour)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target,
        StartDate=WHEN,
    )
    listed = scheduler.list_schedules(NamePrefix="night", MaxResults=5, State="ENABLED")
    scheduler.delete_schedule(Name="nightly run", GroupName="g")
    create, listing, delete = aws.calls
    assert created["ScheduleArn"].endswith("schedule/g/s")
    assert create.service == "scheduler"
    assert create.params["Name"] == "nightly run"
    assert create.params["StartDate"] == WHEN.replace(microsecond=678000)
    assert create.params["Target"] == target
    assert listing.params == {"NamePrefix": "night", "MaxResults": 5, "State": "ENABLED"}
    assert listed["Schedules"][0]["CreationDate"] == WHEN
    assert delete.params["GroupName"] == "g" and delete.params["ClientToken"]
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException) as caught:
        scheduler.get_schedule(Name="s")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_lambda_invoke_carries_payload_headers_and_status() -> None:
    aws = answering(
        {
            "Invoke": {
                "StatusCode": 200,
                "Payload": b'{"ok": true}',
                "FunctionError": "Unhandled",
                "ExecutedVersion": "$LATEST",
            }
        }
    )
    client = aws.client("lambda")
    answer = client.invoke(
        FunctionName="arn:aws:lambda:us-east-1:0:function:f",
        Payload=b'{"x": 1}',
        InvocationType="RequestResponse",
        Qualifier="live",
    )
    call = aws.calls[0]
    assert call.service == "lambda"
    assert call.params == {
        "FunctionName": "arn:aws:lambda:us-east-1:0:function:f",
        "Payload": b'{"x": 1}',
        "InvocationType": "RequestResponse",
        "Qualifier": "live",
    }
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    assert answer["Payload"].read() == b'{"ok": true}'
