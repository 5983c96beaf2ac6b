"""The interpreter: small machines run to their end with fake task results, as the engine would."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanstack.core.asl import interpreter as asl
from fanstack.core.asl.data import MAX_PAYLOAD_BYTES, AslError
from fanstack.core.asl.definition import parse_definition
from fanstack.core.asl.states import StateMachine

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:f"


class TaskError(Exception):
    """A fake task failing with an error name and a cause."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(error)
        self.error, self.cause = error, cause


Tasks = Callable[[str, Any], Any]  # (resource, payload) -> result, or raise TaskError


@dataclass
class Run:
    """What a run did: its end, the states entered, the waits, the tasks' payloads."""

    status: str = "RUNNING"
    output: Any = None
    error: str = ""
    cause: str = ""
    entered: list[str] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    payloads: list[Any] = field(default_factory=list)
    actions: list[Any] = field(default_factory=list)


def context(state: str, counts: Mapping[int, int], **more: Any) -> dict[str, Any]:
    return {
        "Execution": {"Id": "arn:exec", "Name": "run-1", "Input": {}, "StartTime": NOW.isoformat(),
                      "RoleArn": "arn:role"},
        "State": {"Name": state, "EnteredTime": NOW.isoformat(),
                  "RetryCount": sum(counts.values())},
        "StateMachine": {"Id": "arn:sm", "Name": "sm"},
        "Task": {"Token": "token-1"},
        **more,
    }


def run(machine: StateMachine | dict[str, Any], input: Any, tasks: Tasks | None = None,
        variables: Mapping[str, Any] | None = None, trace: Run | None = None) -> Run:
    """Drive enter/complete/fail as the engine does until the (sub)machine ends."""
    machine = machine if isinstance(machine, StateMachine) else parse_definition(machine)
    trace = trace or Run()
    rng = random.Random(7)
    state, data, env = machine.start_at, input, dict(variables or {})
    counts: dict[int, int] = {}
    action: asl.Action = asl.enter(machine, state, data, context(state, counts), env, now=NOW,
                                   rng=rng)
    trace.entered.append(state)
    for _ in range(200):
        trace.actions.append(action)
        ctx = context(state, counts)
        if isinstance(action, asl.Succeed):
            trace.status, trace.output = "SUCCEEDED", action.output
            return trace
        if isinstance(action, asl.Fail):
            trace.status, trace.error, trace.cause = "FAILED", action.error, action.cause
            return trace
        if isinstance(action, asl.Delay):
            trace.delays.append(action.seconds if action.seconds is not None else -1)
            action = action.then
            continue
        if isinstance(action, asl.Next):
            state, data, env, counts = action.state, action.output, dict(action.variables), {}
            trace.entered.append(state)
            action = asl.enter(machine, state, data, context(state, counts), env, now=NOW, rng=rng)
            continue
        if isinstance(action, asl.Retry):
            trace.delays.append(action.delay_seconds)
            counts[action.retrier] = action.attempt
            action = asl.enter(machine, state, data, context(state, counts), env, now=NOW,
                               rng=rng, retry_counts=counts)
            continue
        action = _run_work(machine, state, data, action, ctx, env, counts, tasks, trace, rng)
    raise AssertionError("the machine did not end")


def _run_work(machine: StateMachine, state: str, data: Any, action: asl.Action,
              ctx: dict[str, Any], env: dict[str, Any], counts: dict[int, int],
              tasks: Tasks | None, trace: Run, rng: random.Random) -> asl.Action:
    """A Task, Parallel or Map: its result through `complete`, or its error through `fail`."""
    try:
        if isinstance(action, asl.RunTask):
            assert tasks is not None
            trace.payloads.append(action.payload)
            result = tasks(action.resource, action.payload)
        elif isinstance(action, asl.RunBranches):
            result = [_child(branch, action.input, tasks, env, trace)
                      for branch in action.branches]
        else:
            assert isinstance(action, asl.RunMap)
            inputs = [asl.map_item_input(machine, state, i, item, data, ctx, env)
                      for i, item in enumerate(action.items)]
            result = [_child(action.processor, item, tasks, env, trace) for item in inputs]
    except TaskError as exc:
        return asl.fail(machine, state, data, exc.error, exc.cause, counts, ctx, env, rng=rng)
    return asl.complete(machine, state, data, result, ctx, env, now=NOW, rng=rng,
                        retry_counts=counts)


def _child(machine: StateMachine, input: Any, tasks: Tasks | None, env: Mapping[str, Any],
           parent: Run) -> Any:
    """A branch or an item: its output, or TaskError when it fails (payloads go to `parent`)."""
    outcome = run(machine, input, tasks, env, Run(payloads=parent.payloads))
    if outcome.status == "FAILED":
        raise TaskError(outcome.error, outcome.cause)
    return outcome.output


def lambda_returning(value: Any) -> Tasks:
    return lambda resource, payload: value


# -- Input and output processing ---------------------------------------------------------------
# https://docs.aws.amazon.com/step-functions/latest/dg/input-output-example.html


def test_inputpath_resultpath_outputpath_example() -> None:
    definition = {"StartAt": "Hello", "States": {"Hello": {
        "Type": "Task", "Resource": LAMBDA, "InputPath": "$.lambda",
        "ResultPath": "$.data.lambdaresult", "OutputPath": "$.data", "End": True}}}
    given = {"comment": "An input comment.", "data": {"val1": 23, "val2": 17},
             "extra": "foo", "lambda": {"who": "AWS Step Functions"}}
    outcome = run(definition, given, lambda _, payload: f"Hello, {payload['who']}!")
    assert outcome.payloads == [{"who": "AWS Step Functions"}]
    assert outcome.output == {"val1": 23, "val2": 17, "lambdaresult": "Hello, AWS Step Functions!"}


# https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html
EMR_RESULT = {
    "resourceType": "elasticmapreduce",
    "resource": "createCluster.sync",
    "output": {"SdkHttpMetadata": {"HttpHeaders": {"Content-Length": "1112"}},
               "ClusterId": "AKIAIOSFODNN7EXAMPLE"},
}


def test_parameters_and_result_selector_example() -> None:
    definition = {"StartAt": "Create", "States": {"Create": {
        "Type": "Task", "Resource": "arn:aws:states:::elasticmapreduce:createCluster.sync",
        "Parameters": {"comment": "Selecting what I care about.",
                       "MyDetails": {"size.$": "$.product.details.size",
                                     "exists.$": "$.product.availability",
                                     "StaticValue": "foo"}},
        "ResultSelector": {"ClusterId.$": "$.output.ClusterId",
                           "ResourceType.$": "$.resourceType"},
        "ResultPath": "$.EMROutput", "End": True}}}
    given = {"product": {"details": {"color": "blue", "size": "small"}, "availability": "in stock"}}
    outcome = run(definition, given, lambda_returning(EMR_RESULT))
    assert outcome.payloads == [{"comment": "Selecting what I care about.", "MyDetails": {
        "size": "small", "exists": "in stock", "StaticValue": "foo"}}]
    assert outcome.output == {**given, "EMROutput": {"ClusterId": "AKIAIOSFODNN7EXAMPLE",
                                                     "ResourceType": "elasticmapreduce"}}


# https://docs.aws.amazon.com/step-functions/latest/dg/state-pass.html
def test_pass_result_at_result_path() -> None:
    definition = {"StartAt": "P", "States": {"P": {
        "Type": "Pass", "Result": {"x-datum": 0.381018, "y-datum": 622.2269926397355},
        "ResultPath": "$.coords", "End": True}}}
    given = {"georefOf": "Home"}
    assert run(definition, given).output == {
        "georefOf": "Home", "coords": {"x-datum": 0.381018, "y-datum": 622.2269926397355}}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=10,
)


@given(JSON)
def test_a_bare_pass_and_succeed_hand_on_any_input(value: Any) -> None:
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "S"},
                                             "S": {"Type": "Succeed"}}}
    assert run(definition, value).output == value


def test_null_paths() -> None:
    definition = {"StartAt": "P", "States": {
        "P": {"Type": "Pass", "InputPath": None, "Next": "Q"},
        "Q": {"Type": "Pass", "Result": 1, "ResultPath": None, "OutputPath": None, "End": True}}}
    outcome = run(definition, {"a": 1})
    assert outcome.output == {}


def test_context_object_in_parameters_and_the_task_token() -> None:
    definition = {"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"token.$": "$$.Task.Token", "name.$": "$$.Execution.Name"},
        "TimeoutSecondsPath": "$.timeout", "HeartbeatSeconds": 5, "End": True}}}
    parsed = parse_definition(definition)
    action = asl.enter(parsed, "T", {"timeout": 30}, context("T", {}), {}, now=NOW,
                       rng=random.Random(0))
    assert action == asl.RunTask(resource="arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                                 payload={"token": "token-1", "name": "run-1"},
                                 timeout_seconds=30, heartbeat_seconds=5, wait_for_token=True,
                                 credentials=None)


def test_a_missing_path_is_states_runtime_and_states_all_does_not_catch_it() -> None:
    definition = {"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": LAMBDA, "InputPath": "$.missing", "End": True,
              "Retry": [{"ErrorEquals": ["States.ALL"]}],
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]},
        "Caught": {"Type": "Succeed"}}}
    outcome = run(definition, {}, lambda_returning(1))
    assert (outcome.status, outcome.error) == ("FAILED", "States.Runtime")
    assert outcome.delays == []


def test_output_over_256_kib_fails_with_data_limit_exceeded_which_states_all_misses() -> None:
    definition = {"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": LAMBDA, "End": True,
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]},
        "Caught": {"Type": "Succeed"}}}
    outcome = run(definition, {}, lambda_returning("x" * MAX_PAYLOAD_BYTES))
    assert (outcome.status, outcome.error) == ("FAILED", "States.DataLimitExceeded")


def test_result_path_that_cannot_be_applied() -> None:
    definition = {"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": LAMBDA, "ResultPath": "$.a.b", "End": True}}}
    outcome = run(definition, {"a": "not an object"}, lambda_returning(1))
    assert (outcome.status, outcome.error) == ("FAILED", "States.ResultPathMatchFailure")


# -- Retry and Catch ------------------------------------------------------------------------------
# https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html


def test_the_guides_retry_example_then_its_catch() -> None:
    definition = {"StartAt": "X", "States": {
        "X": {"Type": "Task", "Resource": LAMBDA, "Next": "Y",
              "Retry": [{"ErrorEquals": ["ErrorA", "ErrorB"], "IntervalSeconds": 1,
                         "BackoffRate": 2.0, "MaxAttempts": 2},
                        {"ErrorEquals": ["ErrorC"], "IntervalSeconds": 5}],
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Z"}]},
        "Y": {"Type": "Succeed"},
        "Z": {"Type": "Pass", "End": True}}}
    errors = iter(["ErrorA", "ErrorB", "ErrorC", "ErrorB"])

    def failing(resource: str, payload: Any) -> Any:
        raise TaskError(next(errors), "it broke")

    outcome = run(definition, {"in": 1}, failing)
    assert outcome.delays == [1.0, 2.0, 5.0]
    assert outcome.entered == ["X", "Z"]
    assert outcome.output == {"Error": "ErrorB", "Cause": "it broke"}  # ResultPath "$" default


def test_catch_result_path_keeps_the_input_beside_the_error() -> None:
    definition = {"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": LAMBDA, "End": True,
              "Catch": [{"ErrorEquals": ["CustomError"], "Next": "Handle",
                         "ResultPath": "$.error"}]},
        "Handle": {"Type": "Pass", "End": True}}}

    def failing(resource: str, payload: Any) -> Any:
        raise TaskError("CustomError", "This is a custom error!")

    outcome = run(definition, {"foo": "bar"}, failing)
    assert outcome.output == {"foo": "bar", "error": {"Error": "CustomError",
                                                     "Cause": "This is a custom error!"}}


def test_uncaught_task_error_fails_the_execution_after_the_retries() -> None:
    definition = {"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": LAMBDA, "End": True,
        "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 2,
                   "MaxAttempts": 3, "BackoffRate": 1.5, "MaxDelaySeconds": 3}]}}}

    def failing(resource: str, payload: Any) -> Any:
        raise TaskError("Lambda.Unknown", "boom")

    outcome = run(definition, {}, failing)
    assert outcome.delays == [2.0, 3.0, 3.0]
    assert (outcome.status, outcome.error, outcome.cause) == ("FAILED", "Lambda.Unknown", "boom")


def test_a_data_error_after_the_task_is_retried_a_bounded_number_of_times() -> None:
    definition = {"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": LAMBDA, "End": True,
        "ResultSelector": {"parsed.$": "States.StringToJson($.text)"},
        "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}]}}}
    outcome = run(definition, {}, lambda_returning({"text": "{not json"}))
    assert outcome.delays == [1.0, 2.0]
    assert (outcome.status, outcome.error) == ("FAILED", "States.IntrinsicFailure")


def test_without_the_engines_counts_the_retry_count_bounds_the_retries() -> None:
    parsed = parse_definition({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": LAMBDA, "End": True, "ResultSelector": {"x.$": "$.missing"},
        "Retry": [{"ErrorEquals": ["States.ALL"]}]}}})
    ctx = context("T", {0: 3})  # RetryCount 3: the default MaxAttempts is spent
    action = asl.complete(parsed, "T", {}, {"a": 1}, ctx, {}, now=NOW, rng=random.Random(0))
    assert isinstance(action, asl.Fail) and action.error == "States.Runtime"


def test_full_jitter_uses_the_rng_given() -> None:
    parsed = parse_definition({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": LAMBDA, "End": True,
        "Retry": [{"ErrorEquals": ["E"], "IntervalSeconds": 10, "JitterStrategy": "FULL"}]}}})
    actions = [asl.fail(parsed, "T", {}, "E", "", {0: 1}, context("T", {}), {},
                        rng=random.Random(3)) for _ in range(2)]
    assert actions[0] == actions[1] == asl.Retry(random.Random(3).uniform(0, 20), 0, 2)


# -- Choice, Wait, Succeed, Fail ----------------------------------------------------------------

CHOICE = {"StartAt": "C", "States": {
    "C": {"Type": "Choice", "Choices": [
        {"Variable": "$.value", "NumericGreaterThan": 100, "Next": "High"},
        {"Variable": "$.value", "NumericLessThanEquals": 100, "Next": "Low"}]},
    "High": {"Type": "Pass", "Result": "high", "End": True},
    "Low": {"Type": "Pass", "Result": "low", "End": True}}}


@pytest.mark.parametrize(("value", "expected"), [(150, "high"), (50, "low"), (100.0, "low")])
def test_choice_takes_the_first_matching_rule(value: float, expected: str) -> None:
    assert run(CHOICE, {"value": value}).output == expected


def test_no_choice_matched_without_default() -> None:
    outcome = run(CHOICE, {"value": "150"})
    assert (outcome.status, outcome.error) == ("FAILED", "States.NoChoiceMatched")


def test_choice_default_and_output_path() -> None:
    definition = {"StartAt": "C", "States": {
        "C": {"Type": "Choice", "InputPath": "$.in", "OutputPath": "$.keep",
              "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "Done"}],
              "Default": "Done"},
        "Done": {"Type": "Succeed"}}}
    assert run(definition, {"in": {"keep": 7}}).output == 7


# https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html
def test_wait_seconds_and_timestamps() -> None:
    definition = {"StartAt": "W1", "States": {
        "W1": {"Type": "Wait", "Seconds": 10, "Next": "W2"},
        "W2": {"Type": "Wait", "SecondsPath": "$.expiryseconds", "Next": "W3"},
        "W3": {"Type": "Wait", "TimestampPath": "$.expirydate", "End": True}}}
    parsed = parse_definition(definition)
    given = {"expiryseconds": 3, "expirydate": "2016-03-14T01:59:00Z"}
    first = asl.enter(parsed, "W1", given, context("W1", {}), {}, now=NOW, rng=random.Random())
    assert first == asl.Delay(seconds=10.0, until=None, then=asl.Next("W2", given, {}))
    third = asl.enter(parsed, "W3", given, context("W3", {}), {}, now=NOW, rng=random.Random())
    assert third == asl.Delay(seconds=None, until="2016-03-14T01:59:00+00:00",
                              then=asl.Succeed(given))
    assert run(parsed, given).delays == [10.0, 3.0, -1]


@pytest.mark.parametrize("given", [{"expiryseconds": -1}, {"expiryseconds": "3"}, {}])
def test_wait_seconds_path_must_select_a_non_negative_integer(given: Any) -> None:
    definition = {"StartAt": "W", "States": {"W": {
        "Type": "Wait", "SecondsPath": "$.expiryseconds", "End": True}}}
    outcome = run(definition, given)
    assert (outcome.status, outcome.error) == ("FAILED", "States.Runtime")


def test_succeed_applies_its_paths() -> None:
    definition = {"StartAt": "S", "States": {"S": {
        "Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}}}
    assert run(definition, {"a": {"b": [1]}}).output == [1]


# https://docs.aws.amazon.com/step-functions/latest/dg/state-fail.html
def test_fail_with_error_path_and_an_intrinsic_cause() -> None:
    definition = {"StartAt": "F", "States": {"F": {
        "Type": "Fail", "ErrorPath": "$.Error",
        "CausePath": "States.Format('this is the error: {}, and this is the cause: {}', "
                     "$.Error, $.Cause)"}}}
    outcome = run(definition, {"Error": "ErrorA", "Cause": "Kaiju attack"})
    assert outcome.error == "ErrorA"
    assert outcome.cause == "this is the error: ErrorA, and this is the cause: Kaiju attack"


def test_fail_static() -> None:
    outcome = run({"StartAt": "F", "States": {"F": {
        "Type": "Fail", "Error": "ErrorA", "Cause": "Kaiju attack"}}}, {})
    assert (outcome.error, outcome.cause) == ("ErrorA", "Kaiju attack")


# -- Parallel and Map -----------------------------------------------------------------------------
# https://docs.aws.amazon.com/step-functions/latest/dg/state-parallel.html


def test_parallel_outputs_are_the_branch_outputs_in_order() -> None:
    definition = {"StartAt": "P", "States": {"P": {
        "Type": "Parallel", "End": True, "Parameters": {"n.$": "$.n"},
        "ResultSelector": {"sum.$": "States.MathAdd($[0], $[1])"},
        "Branches": [
            {"StartAt": "Add", "States": {"Add": {"Type": "Task", "Resource": "add", "End": True}}},
            {"StartAt": "Sub", "States": {"Sub": {"Type": "Task", "Resource": "sub", "End": True}}},
        ]}}}

    def arithmetic(resource: str, payload: Any) -> Any:
        return payload["n"] + 1 if resource == "add" else payload["n"] - 1

    outcome = run(definition, {"n": 10}, arithmetic)
    assert outcome.output == {"sum": 20}
    assert outcome.payloads == [{"n": 10}, {"n": 10}]


def test_a_failing_branch_fails_the_parallel_which_may_catch_it() -> None:
    definition = {"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "End": True,
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Recover", "ResultPath": "$.e"}],
              "Branches": [
                  {"StartAt": "Ok", "States": {"Ok": {"Type": "Pass", "End": True}}},
                  {"StartAt": "Bad", "States": {"Bad": {"Type": "Fail", "Error": "Oops",
                                                        "Cause": "branch"}}}]},
        "Recover": {"Type": "Pass", "End": True}}}
    assert run(definition, {"x": 1}).output == {"x": 1, "e": {"Error": "Oops", "Cause": "branch"}}


# https://docs.aws.amazon.com/step-functions/latest/dg/state-map-inline.html
def test_map_with_items_path_and_item_selector() -> None:
    definition = {"StartAt": "M", "States": {"M": {
        "Type": "Map", "End": True, "ItemsPath": "$.detail.shipped", "MaxConcurrency": 2,
        "ResultPath": "$.detail.shipped",
        "ItemSelector": {"ContextIndex.$": "$$.Map.Item.Index",
                         "ContextValue.$": "$$.Map.Item.Value", "delivery.$": "$.delivery"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Ship",
                          "States": {"Ship": {"Type": "Task", "Resource": LAMBDA, "End": True}}},
    }}}
    given = {"delivery": "partner", "detail": {"shipped": [{"prod": "R31"}, {"prod": "S39"}]}}
    outcome = run(definition, given, lambda _, payload: payload["ContextIndex"] * 10)
    assert outcome.payloads == [
        {"ContextIndex": 0, "ContextValue": {"prod": "R31"}, "delivery": "partner"},
        {"ContextIndex": 1, "ContextValue": {"prod": "S39"}, "delivery": "partner"},
    ]
    assert outcome.output["detail"]["shipped"] == [0, 10]
    first = outcome.actions[0]
    assert isinstance(first, asl.RunMap) and first.max_concurrency == 2 and first.mode == "INLINE"


def test_map_items_must_be_an_array() -> None:
    definition = {"StartAt": "M", "States": {"M": {
        "Type": "Map", "End": True, "ItemsPath": "$.items",
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}}}
    outcome = run(definition, {"items": {"not": "a list"}})
    assert (outcome.status, outcome.error) == ("FAILED", "States.Runtime")


def test_map_without_selector_passes_each_item() -> None:
    definition = {"StartAt": "M", "States": {"M": {
        "Type": "Map", "End": True,
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}}}
    assert run(definition, [1, [2], {"3": 3}]).output == [1, [2], {"3": 3}]


def test_submachine_and_state_type() -> None:
    parsed = parse_definition({"StartAt": "M", "States": {"M": {
        "Type": "Map", "End": True,
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}}})
    assert asl.state_type(parsed, "M") == "Map"
    assert asl.submachine(parsed, "M", 0).start_at == "P"
    with pytest.raises(ValueError, match="runs no submachine"):
        asl.submachine(asl.submachine(parsed, "M", 0), "P", 0)


def test_item_selector_errors_raise_for_the_engine_to_route() -> None:
    parsed = parse_definition({"StartAt": "M", "States": {"M": {
        "Type": "Map", "End": True, "ItemSelector": {"v.$": "$.missing"},
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}}}})
    with pytest.raises(AslError, match=r"States\.Runtime"):
        asl.map_item_input(parsed, "M", 0, 1, [1], context("M", {}), {})


# -- variables --------------------------------------------------------------------------------
# https://docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html


def test_jsonpath_assign_and_variable_references() -> None:
    definition = {"StartAt": "Fetch", "States": {
        "Fetch": {"Type": "Task", "Resource": LAMBDA, "Next": "Check",
                  "ResultSelector": {"name.$": "$.customer.name", "total.$": "$.total"},
                  "Assign": {"customerName.$": "$.name", "limit": 100},
                  "ResultPath": None},
        "Check": {"Type": "Choice", "Choices": [
            {"Variable": "$total", "NumericGreaterThanPath": "$limit", "Next": "Big",
             "Assign": {"verdict": "big"}}], "Default": "Small"},
        "Big": {"Type": "Pass", "Parameters": {"who.$": "$customerName", "verdict.$": "$verdict",
                                               "title.$": "$.title"}, "End": True},
        "Small": {"Type": "Succeed"}}}
    outcome = run(definition, {"title": "Doctor"},
                  lambda_returning({"customer": {"name": "María"}, "total": 250}))
    assert outcome.status == "FAILED" and outcome.error == "States.Runtime"  # $total unassigned
    definition["States"]["Fetch"]["Assign"]["total.$"] = "$.total"  # type: ignore[index]
    outcome = run(definition, {"title": "Doctor"},
                  lambda_returning({"customer": {"name": "María"}, "total": 250}))
    assert outcome.output == {"who": "María", "verdict": "big", "title": "Doctor"}


def test_assignments_of_one_state_see_the_variables_as_they_were() -> None:
    definition = {"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"x": 1}, "Next": "B"},
        "B": {"Type": "Pass", "Assign": {"x": 2, "old.$": "$x"}, "Next": "C"},
        "C": {"Type": "Pass", "Parameters": {"x.$": "$x", "old.$": "$old"}, "End": True}}}
    assert run(definition, {}).output == {"x": 2, "old": 1}


# https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html ("Assign ... when this
# specific choice rule matches ... an Assign block at the state level ... applies regardless")
def test_choice_assign_of_the_state_and_of_the_matching_rule() -> None:
    definition = {"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Assign": {"seen": True, "path": "default"},
              "Choices": [{"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Out",
                           "Assign": {"path": "big", "n.$": "$.n"}}], "Default": "Out"},
        "Out": {"Type": "Pass", "Parameters": {"seen.$": "$seen", "path.$": "$path"},
                "End": True}}}
    assert run(definition, {"n": 5}).output == {"seen": True, "path": "big"}
    assert run(definition, {"n": 0}).output == {"seen": True, "path": "default"}


JSONATA = {"QueryLanguage": "JSONata", "StartAt": "Get", "States": {
    "Get": {"Type": "Task", "Resource": LAMBDA,
            "Arguments": {"static": "Hello", "title": "{% $states.input.title %}",
                          "name": "{% $customerName %}", "not-evaluated": "$customerName"},
            "Assign": {"total": "{% $states.result.total %}"},
            "Output": {"items": "{% $states.result.items %}"}, "Next": "Route",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed",
                       "Output": {"why": "{% $states.errorOutput.Cause %}",
                                  "input": "{% $states.input %}"},
                       "Assign": {"failed": True}}]},
    "Route": {"Type": "Choice", "Choices": [
        {"Condition": "{% $total > 100 %}", "Next": "Each", "Assign": {"big": True}}],
        "Default": "Each"},
    "Each": {"Type": "Map", "Items": "{% $states.input.items %}",
             "ItemSelector": {"i": "{% $states.context.Map.Item.Index %}",
                              "v": "{% $states.context.Map.Item.Value %}"},
             "ItemProcessor": {"StartAt": "Double", "States": {"Double": {
                 "Type": "Pass", "Output": "{% $states.input.v * 2 + $states.input.i %}",
                 "End": True}}},
             "Output": {"doubled": "{% $states.result %}", "big": "{% $big %}"}, "End": True},
    "Failed": {"Type": "Pass", "Output": {"why": "{% $states.input.why %}",
                                          "failed": "{% $failed %}"}, "End": True}}}


def test_a_jsonata_machine_runs_with_arguments_output_assign_and_conditions() -> None:
    outcome = run(JSONATA, {"title": "Doctor"},
                  lambda_returning({"total": 250, "items": [1, 2, 3]}),
                  variables={"customerName": "María"})
    assert outcome.payloads == [{"static": "Hello", "title": "Doctor", "name": "María",
                                 "not-evaluated": "$customerName"}]
    assert outcome.output == {"doubled": [2, 5, 8], "big": True}


def test_a_jsonata_catcher_sees_the_error_output() -> None:
    def failing(resource: str, payload: Any) -> Any:
        raise TaskError("Oops", "it broke")

    outcome = run(JSONATA, {"title": "Doctor"}, failing, variables={"customerName": "M"})
    assert outcome.entered == ["Get", "Failed"]
    assert outcome.output == {"why": "it broke", "failed": True}


def test_a_jsonata_expression_yielding_nothing_fails_the_state() -> None:
    definition = {"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {
        "Type": "Pass", "Output": "{% $states.input.nothing %}", "End": True}}}
    outcome = run(definition, {})
    assert (outcome.status, outcome.error) == ("FAILED", "States.QueryEvaluationError")


def test_a_jsonata_wait_and_fail() -> None:
    definition = {"QueryLanguage": "JSONata", "StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": "{% $states.input.s %}", "Next": "F"},
        "F": {"Type": "Fail", "Error": "{% 'E' & $states.input.s %}", "Cause": "static"}}}
    outcome = run(definition, {"s": 4})
    assert outcome.delays == [4.0]
    assert (outcome.error, outcome.cause) == ("E4", "static")


def test_a_jsonata_state_inside_a_jsonpath_machine() -> None:
    definition = {"StartAt": "A", "States": {
        "A": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": {"n": "{% 1 + 1 %}"},
              "Next": "B"},
        "B": {"Type": "Pass", "InputPath": "$.n", "End": True}}}
    assert run(definition, {}).output == 2
