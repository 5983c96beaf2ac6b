"""Definitions: AWS's documented state examples parse; faults name the state and the field."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from fanstack.core.asl.definition import parse_definition
from fanstack.core.asl.states import (
    ChoiceState,
    FailState,
    MapState,
    ParallelState,
    PassState,
    SucceedState,
    TaskState,
    WaitState,
)
from fanstack.core.errors import InvalidDefinition, ValidationException

LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:HelloFunction"


def machine(*states: tuple[str, dict[str, Any]], **top: Any) -> dict[str, Any]:
    """A definition starting at the first of `states`."""
    return {"StartAt": states[0][0], "States": dict(states), **top}


def parse_one(body: dict[str, Any], **top: Any) -> Any:
    """Parse a one-state machine (plus a Done state when the body goes Next) and return it."""
    states = [("S", body)]
    if body.get("Next") == "Done" or body.get("Default") == "Done" or "Catch" in body:
        states.append(("Done", {"Type": "Succeed"}))
    return parse_definition(machine(*states, **top)).state("S")


def rejected(definition: Any, message: str) -> None:
    with pytest.raises(InvalidDefinition) as caught:
        parse_definition(definition)
    assert message in str(caught.value), str(caught.value)
    assert caught.value.code == "InvalidDefinition"


def test_invalid_definition_is_a_validation_error() -> None:
    assert issubclass(InvalidDefinition, ValidationException)


# https://docs.aws.amazon.com/step-functions/latest/dg/statemachine-structure.html
HELLO_WORLD = {
    "Comment": "A Hello World example of the Amazon States Language using a Pass state",
    "StartAt": "HelloWorld",
    "States": {"HelloWorld": {"Type": "Pass", "Result": "Hello World!", "End": True}},
}


def test_hello_world_parses_from_a_mapping_or_json_text() -> None:
    for given in (HELLO_WORLD, json.dumps(HELLO_WORLD)):
        parsed = parse_definition(given)
        assert parsed.start_at == "HelloWorld" and parsed.query_language == "JSONPath"
        state = parsed.state("HelloWorld")
        assert isinstance(state, PassState)
        assert state.result == "Hello World!" and state.has_result and state.end
        assert state.raw == HELLO_WORLD["States"]["HelloWorld"]  # type: ignore[index]
        assert parsed.definition == HELLO_WORLD


def test_top_level_fields() -> None:
    parsed = parse_definition({**HELLO_WORLD, "TimeoutSeconds": 300, "Version": "1.0"})
    assert parsed.timeout_seconds == 300 and parsed.version == "1.0"


@pytest.mark.parametrize(("definition", "message"), [
    ("{not json", "the definition is not valid JSON"),
    ([], "the definition must be a JSON object"),
    ({"States": HELLO_WORLD["States"]}, "field 'StartAt' must name a state"),
    ({"StartAt": "A", "States": {}}, "field 'States' must be a non-empty object"),
    ({**HELLO_WORLD, "StartAt": "Nope"}, "field 'StartAt' names 'Nope'"),
    ({**HELLO_WORLD, "Timeout": 3}, "field 'Timeout' is not allowed here"),
    ({**HELLO_WORLD, "TimeoutSeconds": -1}, "field 'TimeoutSeconds' must be an integer"),
    ({**HELLO_WORLD, "Version": "2.0"}, "field 'Version' must be \"1.0\""),
    ({**HELLO_WORLD, "QueryLanguage": "XPath"}, "field 'QueryLanguage' must be JSONPath or"),
])
def test_top_level_faults(definition: Any, message: str) -> None:
    rejected(definition, message)


# -- Pass: https://docs.aws.amazon.com/step-functions/latest/dg/state-pass.html ---------------


def test_pass_example() -> None:
    state = parse_one({
        "Type": "Pass",
        "Result": {"x-datum": 0.381018, "y-datum": 622.2269926397355},
        "ResultPath": "$.coords",
        "Next": "Done",
    })
    assert isinstance(state, PassState) and state.result_path == "$.coords"
    assert state.next == "Done" and not state.end and state.input_path == "$"


def test_null_paths_are_kept_apart_from_absent_ones() -> None:
    state = parse_one({"Type": "Pass", "InputPath": None, "ResultPath": None,
                       "OutputPath": None, "End": True})
    assert (state.input_path, state.result_path, state.output_path) == (None, None, None)


# -- Task: https://docs.aws.amazon.com/step-functions/latest/dg/state-task.html --------------


def test_task_example() -> None:
    state = parse_one({
        "Type": "Task",
        "Resource": "arn:aws:states:us-east-1:123456789012:activity:HelloWorld",
        "TimeoutSeconds": 300,
        "HeartbeatSeconds": 60,
        "Parameters": {"comment": "Selecting what I care about.", "MyDetails": {
            "size.$": "$.product.details.size", "exists.$": "$.product.availability"}},
        "ResultSelector": {"ClusterId.$": "$.output.ClusterId"},
        "ResultPath": "$.taskresult",
        "Retry": [{"ErrorEquals": ["States.Timeout"], "MaxAttempts": 2}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done", "ResultPath": "$.error"}],
        "Credentials": {"RoleArn": "arn:aws:iam::111122223333:role/LambdaRole"},
        "Next": "Done",
    })
    assert isinstance(state, TaskState)
    assert (state.timeout_seconds, state.heartbeat_seconds) == (300, 60)
    assert state.retry[0].max_attempts == 2 and state.catch[0].result_path == "$.error"
    assert state.credentials == {"RoleArn": "arn:aws:iam::111122223333:role/LambdaRole"}


def test_task_dynamic_timeouts() -> None:
    state = parse_one({"Type": "Task", "Resource": LAMBDA, "TimeoutSecondsPath": "$.timeout",
                       "HeartbeatSecondsPath": "$.heartbeat", "End": True})
    assert state.timeout_seconds_path == "$.timeout"
    assert state.heartbeat_seconds_path == "$.heartbeat"


@pytest.mark.parametrize(("body", "message"), [
    ({"Type": "Task", "End": True}, "state 'S': field 'Resource' must be a non-empty string"),
    ({"Type": "Task", "Resource": LAMBDA, "TimeoutSeconds": 0, "End": True},
     "state 'S': field 'TimeoutSeconds' must be an integer from 1"),
    ({"Type": "Task", "Resource": LAMBDA, "TimeoutSeconds": 10, "HeartbeatSeconds": 10,
      "End": True}, "state 'S': field 'HeartbeatSeconds' (10) must be less than TimeoutSeconds"),
    ({"Type": "Task", "Resource": LAMBDA, "TimeoutSeconds": 10, "TimeoutSecondsPath": "$.t",
      "End": True}, "fields 'TimeoutSeconds' and 'TimeoutSecondsPath' are mutually exclusive"),
    ({"Type": "Task", "Resource": LAMBDA, "Parameters": {"a.$": "not a path"}, "End": True},
     "state 'S': Parameters.a.$"),
    ({"Type": "Task", "Resource": LAMBDA, "Parameters": {"a.$": "$.x", "a": 1}, "End": True},
     "state 'S': Parameters: the fields"),
    ({"Type": "Task", "Resource": LAMBDA, "ResultPath": "$.a[*]", "End": True},
     "not a Reference Path"),
    ({"Type": "Task", "Resource": LAMBDA, "Retry": [{"ErrorEquals": ["E"], "MaxAttempts": -1}],
      "End": True}, "state 'S': field 'Retry[0].MaxAttempts' must be an integer from 0"),
    ({"Type": "Task", "Resource": LAMBDA, "Catch": [{"ErrorEquals": ["E"], "Next": "Nowhere"}],
      "End": True}, "state 'S': field 'Catch[0].Next' names 'Nowhere'"),
    ({"Type": "Task", "Resource": LAMBDA, "Catch": [{"ErrorEquals": ["E"], "Next": "Done",
                                                     "ResultPath": "$$.x"}], "End": True},
     "state 'S': field 'Catch[0].ResultPath' cannot write into the context object"),
    ({"Type": "Task", "Resource": LAMBDA, "ResultPath": "$$.x", "End": True},
     "state 'S': field 'ResultPath' cannot write into the context object"),
    ({"Type": "Task", "Resource": LAMBDA, "Result": 1, "End": True},
     "state 'S': field 'Result' is not a field of a Task state"),
    ({"Type": "Task", "Resource": LAMBDA, "Output": 1, "End": True},
     "state 'S': field 'Output' is JSONata-only; this state's QueryLanguage is JSONPath"),
    ({"Type": "Task", "Resource": LAMBDA}, "exactly one of fields 'Next' and 'End: true'"),
    ({"Type": "Task", "Resource": LAMBDA, "Next": "Done", "End": True},
     "exactly one of fields 'Next' and 'End: true'"),
    ({"Type": "Task", "Resource": LAMBDA, "End": "yes"}, "field 'End' must be a boolean"),
    ({"Type": "Task", "Resource": LAMBDA, "Assign": {"1bad": 1}, "End": True},
     "state 'S': field 'Assign.1bad' is not a valid variable name"),
])
def test_task_faults_name_the_state_and_field(body: dict[str, Any], message: str) -> None:
    states = [("S", body), ("Done", {"Type": "Succeed"})]
    rejected(machine(*states) if "Done" in json.dumps(body) else machine(states[0]), message)


def test_the_retry_message_the_brief_names() -> None:
    rejected(machine(("Charge", {"Type": "Task", "Resource": LAMBDA, "End": True,
                                 "Retry": [{"ErrorEquals": ["E"], "MaxAttempts": -1}]})),
             "state 'Charge': field 'Retry[0].MaxAttempts' must be an integer from 0")


# -- Choice: https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html ---------


def test_choice_example() -> None:
    definition = machine(
        ("ChoiceStateX", {"Type": "Choice", "Choices": [
            {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
            {"Variable": "$.value", "NumericEquals": 0, "Next": "ValueIsZero"},
        ], "Default": "DefaultState"}),
        ("Public", {"Type": "Pass", "End": True}),
        ("ValueIsZero", {"Type": "Pass", "End": True}),
        ("DefaultState", {"Type": "Fail", "Cause": "No Matches!"}),
    )
    state = parse_definition(definition).state("ChoiceStateX")
    assert isinstance(state, ChoiceState)
    assert [r.next for r in state.choices] == ["Public", "ValueIsZero"]
    assert state.default == "DefaultState"


@pytest.mark.parametrize(("body", "message"), [
    ({"Type": "Choice", "Choices": []}, "state 'S': field 'Choices' must be a non-empty array"),
    ({"Type": "Choice", "Choices": [{"Variable": "$.x", "IsNull": True, "Next": "Gone"}]},
     "state 'S': field 'Choices[0].Next' names 'Gone'"),
    ({"Type": "Choice", "Choices": [{"Variable": "$.x", "IsNull": True, "Next": "S"}],
      "Default": "Gone"}, "state 'S': field 'Default' names 'Gone'"),
    ({"Type": "Choice", "Choices": [{"Variable": "$.x", "IsNull": True, "Next": "S"}],
      "End": True}, "state 'S': field 'End' is not a field of a Choice state"),
    ({"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": "1", "Next": "S"}]},
     "state 'S': field 'Choices[0].NumericEquals' must be a number"),
])
def test_choice_faults(body: dict[str, Any], message: str) -> None:
    rejected(machine(("S", body)), message)


# -- Wait: https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html --------------


@pytest.mark.parametrize(("field", "value"), [
    ("Seconds", 10),
    ("Timestamp", "2016-03-14T01:59:00Z"),
    ("SecondsPath", "$.expiryseconds"),
    ("TimestampPath", "$.expirydate"),
])
def test_wait_examples(field: str, value: Any) -> None:
    state = parse_one({"Type": "Wait", field: value, "Next": "Done"})
    assert isinstance(state, WaitState)
    given = {"Seconds": state.seconds, "Timestamp": state.timestamp,
             "SecondsPath": state.seconds_path, "TimestampPath": state.timestamp_path}
    assert given[field] == value


@pytest.mark.parametrize(("body", "message"), [
    ({"Type": "Wait", "End": True}, "exactly one of fields Seconds, Timestamp"),
    ({"Type": "Wait", "Seconds": 1, "Timestamp": "2016-03-14T01:59:00Z", "End": True},
     "found 2"),
    ({"Type": "Wait", "Seconds": -1, "End": True}, "field 'Seconds' must be an integer from 0"),
    ({"Type": "Wait", "Timestamp": "tomorrow", "End": True}, "field 'Timestamp' must be an RFC"),
    ({"Type": "Wait", "SecondsPath": "$.a.*", "End": True}, "not a Reference Path"),
    ({"Type": "Wait", "Seconds": 1, "ResultPath": "$.x", "End": True},
     "field 'ResultPath' is not a field of a Wait state"),
])
def test_wait_faults(body: dict[str, Any], message: str) -> None:
    rejected(machine(("S", body)), message)


# -- Succeed and Fail: state-succeed.html, state-fail.html -------------------------------------


def test_fail_examples() -> None:
    state = parse_one({"Type": "Fail", "Error": "ErrorA", "Cause": "Kaiju attack"})
    assert isinstance(state, FailState) and (state.error, state.cause) == ("ErrorA", "Kaiju attack")
    dynamic = parse_one({"Type": "Fail", "ErrorPath": "$.Error", "CausePath": (
        "States.Format('this is the error: {}, and this is the cause: {}', $.Error, $.Cause)")})
    assert dynamic.error_path == "$.Error" and dynamic.cause_path.startswith("States.Format")


@pytest.mark.parametrize(("body", "message"), [
    ({"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}, "mutually exclusive"),
    ({"Type": "Fail", "Error": 1}, "field 'Error' must be a string"),
    ({"Type": "Fail", "Error": "E", "End": True}, "field 'End' is not a field of a Fail state"),
    ({"Type": "Fail", "InputPath": "$.x"}, "field 'InputPath' is not a field of a Fail state"),
    ({"Type": "Succeed", "Next": "S"}, "field 'Next' is not a field of a Succeed state"),
    ({"Type": "Succeed", "Assign": {"x": 1}}, "field 'Assign' is not a field of a Succeed"),
    ({"Type": "Sleep", "End": True}, "state 'S': field 'Type' must be one of Pass, Task"),
])
def test_terminal_state_faults(body: dict[str, Any], message: str) -> None:
    rejected(machine(("S", body)), message)


def test_succeed_has_no_transition() -> None:
    state = parse_one({"Type": "Succeed", "OutputPath": "$.x"})
    assert isinstance(state, SucceedState) and state.next is None and state.output_path == "$.x"


# -- Parallel: https://docs.aws.amazon.com/step-functions/latest/dg/state-parallel.html ------

PARALLEL = machine(
    ("LookupCustomerInfo", {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "LookupAddress", "States": {"LookupAddress": {
            "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:Addr",
            "End": True}}},
        {"StartAt": "LookupPhone", "States": {"LookupPhone": {
            "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:Phone",
            "End": True}}},
    ]}),
)


def test_parallel_example() -> None:
    state = parse_definition(PARALLEL).state("LookupCustomerInfo")
    assert isinstance(state, ParallelState)
    assert [branch.start_at for branch in state.branches] == ["LookupAddress", "LookupPhone"]


def test_parallel_faults_inside_branches_name_the_inner_state() -> None:
    broken = copy.deepcopy(PARALLEL)
    broken["States"]["LookupCustomerInfo"]["Branches"][1]["States"]["LookupPhone"]["Next"] = "X"
    rejected(broken, "state 'LookupPhone': exactly one of fields 'Next' and 'End: true'")
    broken["States"]["LookupCustomerInfo"]["Branches"][1]["States"]["LookupPhone"].pop("End")
    rejected(broken, "state 'LookupPhone': field 'Next' names 'X', which is not a state of its")


def test_a_branch_cannot_jump_out_of_itself() -> None:
    definition = machine(("P", {"Type": "Parallel", "Next": "After", "Branches": [
        {"StartAt": "In", "States": {"In": {"Type": "Pass", "Next": "After"}}}]}),
        ("After", {"Type": "Succeed"}))
    rejected(definition, "state 'In': field 'Next' names 'After'")


@pytest.mark.parametrize(("branches", "message"), [
    ([], "state 'P': field 'Branches' must be a non-empty array"),
    ([{"States": {"A": {"Type": "Succeed"}}}], "state 'P': field 'Branches[0].StartAt'"),
    ([{"StartAt": "A", "States": {"A": {"Type": "Succeed"}}, "TimeoutSeconds": 5}],
     "state 'P': field 'Branches[0].TimeoutSeconds' is not allowed here"),
])
def test_parallel_faults(branches: Any, message: str) -> None:
    rejected(machine(("P", {"Type": "Parallel", "End": True, "Branches": branches})), message)


def test_state_names_are_unique_across_nested_machines() -> None:
    definition = machine(("A", {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}]}))
    rejected(definition, "state 'A': the name is used twice")


# -- Map: https://docs.aws.amazon.com/step-functions/latest/dg/state-map-inline.html ---------

MAP = {
    "Type": "Map",
    "ItemProcessor": {
        "ProcessorConfig": {"Mode": "INLINE"},
        "StartAt": "Validate",
        "States": {"Validate": {"Type": "Task", "Resource": LAMBDA, "OutputPath": "$.Payload",
                                "End": True}},
    },
    "End": True,
    "ResultPath": "$.detail.shipped",
    "ItemsPath": "$.shipped",
    "ItemSelector": {"ContextIndex.$": "$$.Map.Item.Index", "ContextValue.$": "$$.Map.Item.Value"},
    "MaxConcurrency": 0,
}


def test_map_example() -> None:
    state = parse_one(MAP)
    assert isinstance(state, MapState)
    assert state.processor.start_at == "Validate" and state.mode == "INLINE"
    assert state.items_path == "$.shipped" and state.has_item_selector
    assert state.max_concurrency == 0


def test_legacy_iterator_and_parameters() -> None:
    legacy = {**MAP, "Iterator": {"StartAt": "V", "States": {"V": {"Type": "Succeed"}}},
              "Parameters": {"v.$": "$$.Map.Item.Value"}}
    del legacy["ItemProcessor"], legacy["ItemSelector"]
    state = parse_one(legacy)
    assert state.processor.start_at == "V" and state.item_selector == {"v.$": "$$.Map.Item.Value"}


def test_distributed_map() -> None:
    without_items_path = {key: value for key, value in MAP.items() if key != "ItemsPath"}
    state = parse_one({
        **without_items_path,
        "ItemProcessor": {**MAP["ItemProcessor"],
                          "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}},
        "ItemReader": {"Resource": "arn:fanstack:states:::table:getItem",
                       "ReaderConfig": {"InputType": "JSON", "ItemsPointer": "/orders"},
                       "Parameters": {"TableName": "b", "Key.$": "$.key"}},
        "ItemBatcher": {"MaxItemsPerBatch": 10, "MaxInputBytesPerBatch": 262_144},
        "ResultWriter": {"Resource": "arn:fanstack:states:::table:putItem",
                         "Parameters": {"TableName": "b", "Prefix": "p"},
                         "WriterConfig": {"Transformation": "COMPACT"}},
        "ToleratedFailurePercentage": 5, "ToleratedFailureCount": 10, "Label": "Ship",
    })
    assert state.mode == "DISTRIBUTED" and state.execution_type == "STANDARD"
    assert state.tolerated_failure_percentage == 5.0 and state.tolerated_failure_count == 10
    assert state.batcher == {"MaxItemsPerBatch": 10, "MaxInputBytesPerBatch": 262_144}


DISTRIBUTED = {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
SCAN = "arn:fanstack:states:::table:scan"
GET_ITEM = "arn:fanstack:states:::table:getItem"


@pytest.mark.parametrize(("change", "message"), [
    ({"ItemProcessor": None}, "exactly one of fields 'ItemProcessor' and 'Iterator'"),
    ({"Iterator": {"StartAt": "V", "States": {"V": {"Type": "Succeed"}}}},
     "exactly one of fields 'ItemProcessor' and 'Iterator'"),
    ({"Parameters": {}}, "fields 'ItemSelector' and 'Parameters' are mutually exclusive"),
    ({"ItemsPath": "$.a[*]"}, "not a Reference Path"),
    ({"MaxConcurrency": -1}, "field 'MaxConcurrency' must be an integer from 0"),
    ({"ToleratedFailureCount": 1}, "field 'ToleratedFailureCount' needs ItemProcessor."),
    ({"ItemReader": {"Resource": "x"}}, "field 'ItemReader' needs ItemProcessor."),
    ({"Items": [1]}, "field 'Items' is JSONata-only"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": {"Mode": "PARALLEL"}}},
     "must be INLINE or DISTRIBUTED"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": {"Mode": "DISTRIBUTED"}}},
     "must be STANDARD or EXPRESS in DISTRIBUTED mode"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ItemBatcher": {"MaxInputBytesPerBatch": 262_145}},
     "field 'ItemBatcher.MaxInputBytesPerBatch' must be an integer from 1 to 262144"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ItemBatcher": {"BatchInput": {}}}, "needs MaxItemsPerBatch or MaxInputBytesPerBatch"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ToleratedFailurePercentage": 101}, "field 'ToleratedFailurePercentage' must be a number"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "Label": "x" * 41}, "field 'Label' must be a string of 1 to 40"),
    ({"ItemProcessor": {"StartAt": "V", "States": {"V": {"Type": "Succeed"}}, "Extra": 1}},
     "field 'ItemProcessor.Extra' is not allowed here"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                     "Parameters": {"Bucket": "b", "Key": "k"}}},
     "field 'ItemReader.Resource' 'arn:aws:states:::s3:getObject' is not supported"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ItemReader": {"Resource": SCAN}}, "field 'ItemReader.Parameters' must be an object"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ItemReader": {"Resource": SCAN, "Parameters": {"Prefix": "a"}}},
     "field 'ItemReader.Parameters' must give 'TableName'"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ItemReader": {"Resource": GET_ITEM, "Parameters": {"TableName": "t"},
                     "ReaderConfig": {"InputType": "JSON", "ItemsPointer": "/a"}}},
     "field 'ItemReader.Parameters' must give 'Key'"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ItemReader": {"Resource": GET_ITEM, "Parameters": {"TableName": "t", "Key": "k"},
                     "ReaderConfig": {"InputType": "CSV", "ItemsPointer": "/a"}}},
     "field 'ItemReader.ReaderConfig.InputType' must be JSON"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ItemReader": {"Resource": GET_ITEM, "Parameters": {"TableName": "t", "Key": "k"},
                     "ReaderConfig": {"InputType": "JSON"}}},
     "field 'ItemReader.ReaderConfig.ItemsPointer' must be a JSON pointer"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ItemReader": {"Resource": SCAN, "Parameters": {"TableName": "t"},
                     "ReaderConfig": {"MaxItems": 0}}},
     "field 'ItemReader.ReaderConfig.MaxItems' must be an integer from 1 to 100000000"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ItemReader": {"Resource": SCAN, "Parameters": {"TableName": "t"}}, "ItemsPath": "$.a"},
     "field 'ItemReader' cannot stand beside Items or ItemsPath"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                       "Parameters": {"Bucket": "b"}}},
     "field 'ResultWriter.Resource' 'arn:aws:states:::s3:putObject' is not supported"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ResultWriter": {}}, "field 'ResultWriter' needs a Resource or a WriterConfig"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ResultWriter": {"WriterConfig": {"Transformation": "SQUASH"}}},
     "field 'ResultWriter.WriterConfig.Transformation' must be one of NONE, COMPACT, FLATTEN"),
    ({"ItemProcessor": {**MAP["ItemProcessor"], "ProcessorConfig": DISTRIBUTED},
      "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": ["x"]}},
     "field 'ItemBatcher.BatchInput' must be an object"),
])
def test_map_faults(change: dict[str, Any], message: str) -> None:
    body = {**MAP, **change}
    body = {key: value for key, value in body.items() if value is not None}
    rejected(machine(("S", body)), message)


# -- the graph ---------------------------------------------------------------------------------


def test_unreachable_states_are_rejected() -> None:
    rejected(machine(("A", {"Type": "Succeed"}), ("Orphan", {"Type": "Succeed"})),
             "state 'Orphan': no transition reaches it from StartAt")


def test_states_reached_only_by_a_catcher_or_a_default_are_reachable() -> None:
    parse_definition(machine(
        ("T", {"Type": "Task", "Resource": LAMBDA, "Next": "C",
               "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handler"}]}),
        ("C", {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsNull": True, "Next": "T"}],
               "Default": "End"}),
        ("Handler", {"Type": "Fail"}),
        ("End", {"Type": "Succeed"}),
    ))


@pytest.mark.parametrize("name", ["", "x" * 81])
def test_state_names_are_1_to_80_characters(name: str) -> None:
    rejected({"StartAt": "A", "States": {"A": {"Type": "Succeed"}, name: {"Type": "Succeed"}}},
             "a state name must be 1 to 80 characters")


def test_an_80_character_name_is_fine() -> None:
    name = "x" * 80
    parse_definition({"StartAt": name, "States": {name: {"Type": "Succeed"}}})


# -- JSONata and the query language ----------------------------------------------------------
# https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html


def test_jsonata_machine() -> None:
    parsed = parse_definition(machine(
        ("T", {"Type": "Task", "Resource": LAMBDA,
               "Arguments": {"static": "Hello", "title": "{% $states.input.title %}"},
               "Output": "{% $states.result.Payload %}", "Assign": {"x": "{% 1 + 1 %}"},
               "TimeoutSeconds": "{% $states.input.timeout %}", "Next": "C"}),
        ("C", {"Type": "Choice", "Choices": [{"Condition": "{% $x = 2 %}", "Next": "M",
                                              "Output": {"y": "{% $x %}"}}], "Default": "W"}),
        ("M", {"Type": "Map", "Items": "{% $states.input.list %}", "ItemSelector": {
            "v": "{% $states.context.Map.Item.Value %}"}, "MaxConcurrency": "{% 2 %}",
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
            "Next": "W"}),
        ("W", {"Type": "Wait", "Seconds": "{% 1 %}", "Next": "F"}),
        ("F", {"Type": "Fail", "Error": "{% 'E' %}", "Cause": "plain"}),
        QueryLanguage="JSONata",
    ))
    task = parsed.state("T")
    assert isinstance(task, TaskState) and task.jsonata and task.has_parameters
    assert task.timeout_seconds == "{% $states.input.timeout %}"
    assert parsed.state("M").processor.query_language == "JSONata"


@pytest.mark.parametrize(("body", "message"), [
    ({"Type": "Pass", "InputPath": "$.x", "End": True},
     "state 'S': field 'InputPath' is JSONPath-only; this state's QueryLanguage is JSONata"),
    ({"Type": "Pass", "Result": 1, "End": True}, "field 'Result' is JSONPath-only"),
    ({"Type": "Task", "Resource": LAMBDA, "Parameters": {}, "End": True},
     "field 'Parameters' is JSONPath-only"),
    ({"Type": "Task", "Resource": LAMBDA, "Arguments": {"a": "{% $x = %}"}, "End": True},
     "state 'S': Arguments.a: invalid JSONata expression"),
    ({"Type": "Pass", "Output": "{% ( %}", "End": True}, "invalid JSONata expression"),
    ({"Type": "Pass", "QueryLanguage": "JSONPath", "End": True},
     "cannot switch a JSONata machine's state back to JSONPath"),
    ({"Type": "Wait", "SecondsPath": "$.s", "End": True}, "field 'SecondsPath' is JSONPath-only"),
    ({"Type": "Fail", "ErrorPath": "$.e"}, "field 'ErrorPath' is JSONPath-only"),
    ({"Type": "Map", "ItemsPath": "$.x", "End": True, "ItemProcessor": MAP["ItemProcessor"]},
     "field 'ItemsPath' is JSONPath-only"),
    ({"Type": "Task", "Resource": LAMBDA, "End": True,
      "Catch": [{"ErrorEquals": ["E"], "Next": "S", "ResultPath": "$.e"}]},
     "state 'S': field 'Catch[0].ResultPath' is not allowed here"),
])
def test_jsonata_faults(body: dict[str, Any], message: str) -> None:
    rejected(machine(("S", body), QueryLanguage="JSONata"), message)


def test_a_jsonpath_machine_may_switch_one_state_to_jsonata() -> None:
    parsed = parse_definition(machine(
        ("A", {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% 1 %}", "Next": "B"}),
        ("B", {"Type": "Pass", "InputPath": "$", "End": True}),
    ))
    assert parsed.state("A").jsonata and not parsed.state("B").jsonata


def test_jsonpath_variables_in_templates_choices_and_assign() -> None:
    parsed = parse_definition(machine(
        ("A", {"Type": "Pass", "Assign": {"customerName.$": "$.name", "count": 1},
               "Parameters": {"title.$": "$.title", "name.$": "$customerName"}, "Next": "C"}),
        ("C", {"Type": "Choice", "Choices": [
            {"Variable": "$count", "NumericEqualsPath": "$limit.max", "Next": "D"}],
            "Default": "D"}),
        ("D", {"Type": "Succeed"}),
    ))
    assert parsed.state("A").assign == {"customerName.$": "$.name", "count": 1}


@pytest.mark.parametrize(("assign", "message"), [
    ({"states": 1}, "field 'Assign.states' is not a valid variable name"),
    ({"a-b": 1}, "field 'Assign.a-b' is not a valid variable name"),
    ({"x.$": "nonsense"}, "Assign.x.$"),
    ([1], "field 'Assign' must be an object"),
])
def test_assign_faults(assign: Any, message: str) -> None:
    rejected(machine(("S", {"Type": "Pass", "Assign": assign, "End": True})), message)
