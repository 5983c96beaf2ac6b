"""JSONata fields: the AWS docs' examples, AWS's functions, errors, determinism, properties."""

from __future__ import annotations

import copy
import hashlib
import random
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanstack.core.asl.data import AslError
from fanstack.core.asl.jsonata import check_expression, evaluate, is_expression

CONTEXT = {
    "Execution": {"Id": "arn:aws:states:us-east-1:123456789012:execution:sm:run", "Name": "run"},
    "State": {"EnteredTime": "2024-11-22T10:15:30.250Z", "Name": "Step", "RetryCount": 0},
}
STATES: dict[str, Any] = {
    "input": {
        "customer": {"name": "Ana"}, "orders": [{"id": 1, "price": 5}, {"id": 2, "price": 20}]
    },
    "context": CONTEXT,
}


def run(expression: str, variables: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    check_expression(expression, field="Output")
    return evaluate(expression, STATES, variables or {}, **kwargs)


def failure(expression: str, states: dict[str, Any] | None = None) -> AslError:
    with pytest.raises(AslError) as caught:
        evaluate(expression, STATES if states is None else states, {})
    assert caught.value.error == "States.QueryEvaluationError"
    return caught.value


# https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html
# ("Transforming data with JSONata in Step Functions": $states, variables, Output, Arguments)
def test_states_input_and_a_filter_of_the_docs() -> None:
    assert run("{% $states.input.customer.name %}") == "Ana"
    assert run("{% $states.input.orders[price > 10].id %}") == 2
    assert run("{% $states.input.orders[price > 1].id %}") == [1, 2]


def test_variables_are_read_as_dollar_name() -> None:
    # https://docs.aws.amazon.com/step-functions/latest/dg/concepts-amazon-states-language.html
    # (the JSONata example: Assign foo from the input, then a Choice Condition on $foo)
    assert run("{% $foo = 1 %}", {"foo": 1}) is True
    assert run("{% $foo = 2 %}", {"foo": 1}) is False
    assert run("{% $x %}", {"x": None}) is None


def test_result_error_output_and_context() -> None:
    error_output = {"Error": "E", "Cause": "c"}
    states = {**STATES, "result": {"Payload": {"ok": True}}, "errorOutput": error_output}
    assert evaluate("{% $states.result.Payload.ok %}", states, {}) is True
    assert evaluate("{% $states.errorOutput.Error %}", states, {}) == "E"
    assert evaluate("{% $states.context.Execution.Name %}", states, {}) == "run"


def test_objects_and_arrays_are_walked_and_literals_kept() -> None:
    value = {
        "ticket": "{% $states.input.customer.name & '-' & $n %}",
        "static": "plain {% not an expression",
        "list": ["{% $n + 1 %}", 3, None, {"deep": "{% [$n] %}"}],
        "flag": False,
    }
    assert evaluate(value, STATES, {"n": 1}) == {
        "ticket": "Ana-1",
        "static": "plain {% not an expression",
        "list": [2, 3, None, {"deep": [1]}],
        "flag": False,
    }


# AWS's added functions ($partition, $range, $hash, $random, $uuid, $parse), as the developer
# guide ("Transforming data with JSONata", "JSONata functions provided by Step Functions") shows.
def test_partition_of_the_docs() -> None:
    assert run("{% $partition([1,2,3,4,5,6,7,8,9], 3) %}") == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert run("{% $partition([1,2,3,4,5], 2) %}") == [[1, 2], [3, 4], [5]]


def test_range_of_the_docs() -> None:
    assert run("{% $range(0, 10, 2) %}") == [0, 2, 4, 6, 8, 10]
    assert run("{% $range(10, 0, -5) %}") == [10, 5, 0]


@pytest.mark.parametrize(
    ("algorithm", "name"),
    [("MD5", "md5"), ("SHA-1", "sha1"), ("SHA-256", "sha256"), ("SHA-384", "sha384"),
     ("SHA-512", "sha512")],
)
def test_hash_of_the_docs(algorithm: str, name: str) -> None:
    expected = hashlib.new(name, b"Ana").hexdigest()
    assert run(f"{{% $hash($states.input.customer.name, '{algorithm}') %}}") == expected


def test_random_with_a_seed_repeats_and_without_draws_from_rng() -> None:
    seeded = run("{% $random(42) %}")
    assert 0 <= seeded < 1 and run("{% $random(42) %}") == seeded
    first = run("{% $random() %}", rng=random.Random(5))
    assert run("{% $random() %}", rng=random.Random(5)) == first


def test_uuid_is_version_4_and_reproducible_with_rng() -> None:
    value = run("{% $uuid() %}")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        value)
    assert run("{% $uuid() %}", rng=random.Random(9)) == run("{% $uuid() %}", rng=random.Random(9))


def test_parse_replaces_eval() -> None:
    assert run("{% $parse($s).a %}", {"s": '{"a": [1, 2]}'}) == [1, 2]
    assert run("{% $parse('null') %}") is None
    with pytest.raises(ValueError, match=r"\$eval is not available"):
        check_expression("{% $eval('1 + 1') %}", field="Output")
    assert "not available" in failure("{% $eval('1') %}").cause


def test_now_and_millis_are_the_state_entry_time() -> None:
    assert run("{% $now() %}") == "2024-11-22T10:15:30.250Z"
    assert run("{% $millis() %}") == 1732270530250
    assert "EnteredTime" in failure("{% $now() %}", {"input": {}}).cause


@pytest.mark.parametrize(
    "expression",
    [
        "{% $partition([1,2], 0) %}",
        "{% $partition() %}",
        "{% $range(1, 1001, 1) %}",
        "{% $range(1, 5, 0) %}",
        "{% $range('1', 5, 1) %}",
        "{% $hash('x', 'SHA3') %}",
        "{% $hash(1, 'MD5') %}",
        "{% $parse('{oops') %}",
    ],
)
def test_bad_arguments_to_aws_functions_fail_the_state(expression: str) -> None:
    assert "$" + expression.split("$")[1].split("(")[0] in failure(expression).cause


# https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html
# ("an expression that returns undefined" and evaluation errors: States.QueryEvaluationError)
@pytest.mark.parametrize(
    "expression",
    [
        "{% $states.input.missing %}",
        "{% customer.name %}",
        "{% $ %}",
        "{% $nothing %}",
        "{% 'a' + 1 %}",
        "{% $error('boom') %}",
        "{% $number('x') %}",
        "{% function($x) { $x } %}",
        "{% 1 / 0 %}",
    ],
)
def test_undefined_and_failing_expressions_are_query_evaluation_errors(expression: str) -> None:
    assert expression[3:-3] in failure(expression).cause


@pytest.mark.parametrize(("text", "expected"), [
    ("{% $x %}", True), ("{%$x%}", True), (" {% $x %}", False), ("{% $x %} ", False),
    ("{% $x", False), ("$x %}", False), (3, False), (None, False),
])
def test_is_expression(text: Any, expected: bool) -> None:
    assert is_expression(text) is expected


@pytest.mark.parametrize("text", ["{% $states.input. %}", "{% ( %}", "{%  %}", "{% [1, %}"])
def test_check_expression_names_the_field(text: str) -> None:
    with pytest.raises(ValueError, match=r"^Arguments\.a: invalid JSONata expression"):
        check_expression(text, field="Arguments.a")


def test_evaluation_does_not_modify_its_inputs() -> None:
    states = copy.deepcopy(STATES)
    variables = {"list": [3, 1, 2]}
    evaluate("{% [$sort($list), $append($states.input.orders, {'id': 3})] %}", states, variables)
    assert states == STATES and variables == {"list": [3, 1, 2]}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False, width=32) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)


@given(value=JSON)
def test_a_variable_comes_back_as_it_was_bound(value: Any) -> None:
    assert evaluate("{% $v %}", {}, {"v": value}) == value
    assert evaluate({"k": ["{% $states.input %}"]}, {"input": value}, {}) == {"k": [value]}


@given(items=st.lists(st.integers(), min_size=1, max_size=30), size=st.integers(1, 8))
def test_partition_then_concatenation_is_identity(items: list[int], size: int) -> None:
    chunks = evaluate("{% $partition($a, $n) %}", {}, {"a": items, "n": size})
    assert [item for chunk in chunks for item in chunk] == items
