"""Choice rules: every operator, type mismatches, timestamps, StringMatches, shapes, JSONata."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanstack.core.asl.choice import (
    COMPARISONS,
    Rule,
    check_path,
    compare,
    condition_holds,
    holds,
    parse_rule,
    parse_timestamp,
    read_path,
)
from fanstack.core.asl.data import AslError
from fanstack.core.asl.paths import select


def rule(raw: dict[str, Any]) -> Rule:
    return parse_rule({**raw, "Next": "N"}, where="Choices[0]", language="JSONPath")


def evaluate(raw: dict[str, Any], data: Any) -> bool:
    return holds(rule(raw), lambda path: select(data, path))


# https://states-language.net/spec.html ("Choice Rules": the ChoiceStateX example)
SPEC_CHOICES = [
    {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
    {"And": [
        {"Variable": "$.value", "IsPresent": True},
        {"Variable": "$.value", "IsNumeric": True},
        {"Variable": "$.value", "NumericGreaterThanEquals": 20},
        {"Variable": "$.value", "NumericLessThan": 30},
    ], "Next": "ValueInTwenties"},
    {"Variable": "$.rating", "NumericGreaterThanPath": "$.auditThreshold", "Next": "StartAudit"},
]


@pytest.mark.parametrize(("data", "expected"), [
    ({"type": "Public", "value": 22}, "Public"),
    ({"type": "Private", "value": 22}, "ValueInTwenties"),
    ({"type": "Private", "value": 35, "rating": 53, "auditThreshold": 50}, "StartAudit"),
    ({"type": "Private", "value": "22", "rating": 1, "auditThreshold": 50}, None),
])
def test_the_specs_choice_state(data: dict[str, Any], expected: str | None) -> None:
    rules = [parse_rule(r, where=f"Choices[{i}]", language="JSONPath")
             for i, r in enumerate(SPEC_CHOICES)]
    chosen = next((r.next for r in rules if holds(r, lambda p: select(data, p))), None)
    assert chosen == expected


# https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html ("Choice Rules")
@pytest.mark.parametrize(("raw", "data", "expected"), [
    ({"Variable": "$.foo", "NumericEquals": 1}, {"foo": 1}, True),
    ({"Variable": "$.foo", "NumericEquals": 1}, {"foo": 1.0}, True),  # ints and floats
    ({"Variable": "$.foo", "NumericEquals": 1}, {"foo": "1"}, False),  # a string is no number
    ({"Variable": "$.foo", "NumericEquals": 1}, {"foo": True}, False),  # nor a boolean
    ({"Variable": "$.foo", "NumericLessThan": 0.5}, {"foo": 0}, True),
    ({"Variable": "$.foo", "NumericGreaterThan": 2}, {"foo": 2.000001}, True),
    ({"Variable": "$.foo", "NumericLessThanEquals": 2}, {"foo": 2}, True),
    ({"Variable": "$.foo", "NumericGreaterThanEquals": 2}, {"foo": 1.99}, False),
    ({"Variable": "$.foo", "StringEquals": "MyString"}, {"foo": "MyString"}, True),
    ({"Variable": "$.foo", "StringGreaterThan": "MyStringABC"}, {"foo": "MyStringABD"}, True),
    ({"Variable": "$.foo", "StringLessThan": "b"}, {"foo": "a"}, True),
    ({"Variable": "$.foo", "StringLessThanEquals": "a"}, {"foo": "a"}, True),
    ({"Variable": "$.foo", "StringGreaterThanEquals": "b"}, {"foo": "a"}, False),
    ({"Variable": "$.foo", "StringEquals": "1"}, {"foo": 1}, False),
    ({"Variable": "$.foo", "BooleanEquals": True}, {"foo": True}, True),
    ({"Variable": "$.foo", "BooleanEquals": False}, {"foo": 0}, False),
    ({"Variable": "$.possiblyNullValue", "IsNull": True}, {"possiblyNullValue": None}, True),
    ({"Variable": "$.x", "IsNull": False}, {"x": 0}, True),
    ({"Variable": "$.x", "IsPresent": True}, {"x": None}, True),
    ({"Variable": "$.keyThatMightNotExist", "IsPresent": True}, {}, False),
    ({"Variable": "$.keyThatMightNotExist", "IsPresent": False}, {}, True),
    ({"Variable": "$.x", "IsNumeric": True}, {"x": 1.5}, True),
    ({"Variable": "$.x", "IsNumeric": True}, {"x": False}, False),
    ({"Variable": "$.x", "IsString": True}, {"x": "s"}, True),
    ({"Variable": "$.x", "IsBoolean": True}, {"x": False}, True),
    ({"Variable": "$.x", "IsBoolean": True}, {"x": 0}, False),
    ({"Variable": "$.x", "IsTimestamp": True}, {"x": "2001-01-01T12:00:00Z"}, True),
    ({"Variable": "$.x", "IsTimestamp": True}, {"x": "2001-01-01 12:00:00Z"}, False),
    ({"Variable": "$.x", "IsTimestamp": True}, {"x": 978350400}, False),
    ({"Variable": "$.a", "NumericEqualsPath": "$.b"}, {"a": 42, "b": 42.0}, True),
    ({"Variable": "$.a", "StringEqualsPath": "$.b"}, {"a": "x", "b": "x"}, True),
    ({"Variable": "$.a", "StringLessThanPath": "$.b"}, {"a": "x", "b": 1}, False),
    ({"Variable": "$.a", "BooleanEqualsPath": "$.b"}, {"a": True, "b": True}, True),
    ({"Variable": "$.a", "TimestampLessThanPath": "$.b"},
     {"a": "2001-01-01T12:00:00Z", "b": "2001-01-01T12:00:01Z"}, True),
    ({"Or": [{"Variable": "$.s", "StringEquals": "a"}, {"Variable": "$.s", "StringEquals": "b"}]},
     {"s": "b"}, True),
    ({"And": [{"Variable": "$.n", "NumericGreaterThan": 0},
              {"Not": {"Variable": "$.n", "NumericEquals": 5}}]}, {"n": 5}, False),
])
def test_comparison_operators(raw: dict[str, Any], data: Any, expected: bool) -> None:
    assert evaluate(raw, data) is expected


# Timestamps: https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html ("the
# timestamp must conform to RFC3339 ... an uppercase T ... an uppercase Z")
@pytest.mark.parametrize(("name", "value", "operand", "expected"), [
    ("TimestampEquals", "2001-01-01T12:00:00Z", "2001-01-01T12:00:00Z", True),
    ("TimestampEquals", "2001-01-01T13:00:00+01:00", "2001-01-01T12:00:00Z", True),
    ("TimestampEquals", "2001-01-01T12:00:00.000Z", "2001-01-01T12:00:00Z", True),
    ("TimestampLessThan", "2001-01-01T12:30:00+01:00", "2001-01-01T12:00:00Z", True),
    ("TimestampGreaterThan", "2001-01-01T12:00:00.5Z", "2001-01-01T12:00:00Z", True),
    ("TimestampLessThanEquals", "2001-01-01T12:00:00Z", "2001-01-01T12:00:00Z", True),
    ("TimestampGreaterThanEquals", "2000-12-31T23:59:59Z", "2001-01-01T00:00:00Z", False),
    ("TimestampEquals", "2001-01-01t12:00:00z", "2001-01-01T12:00:00Z", False),  # lowercase
    ("TimestampEquals", "2001-01-01T12:00:00", "2001-01-01T12:00:00Z", False),  # no zone
    ("TimestampEquals", 978350400, "2001-01-01T12:00:00Z", False),
])
def test_timestamp_comparisons(name: str, value: Any, operand: str, expected: bool) -> None:
    assert compare(name, value, operand) is expected


def test_parse_timestamp_keeps_nanosecond_text_and_rejects_impossible_dates() -> None:
    moment = parse_timestamp("2016-03-14T01:59:00.123456789Z")
    assert moment is not None and moment.microsecond == 123456
    assert parse_timestamp("2016-02-30T00:00:00Z") is None


# StringMatches: https://states-language.net/spec.html ("foo*.log" matches "foo23.log", "*.log"
# matches "zebra.log", "foo*.*" matches "foobar.zebra"; "\\*" is a literal "*", "\\\\" a "\\")
@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("foo*.log", "foo23.log", True),
    ("*.log", "zebra.log", True),
    ("foo*.*", "foobar.zebra", True),
    ("log-*.txt", "log-2024-01-15.txt", True),
    ("foo*.log", "foo.log", True),  # * matches nothing too
    ("foo*.log", "foo23.logs", False),
    ("foo?.log", "foo1.log", False),  # only * is special
    ("a.c", "abc", False),
    (r"star\*", "star*", True),
    (r"star\*", "stars", False),
    ("back\\\\slash", "back\\slash", True),
    ("*", "", True),
    ("", "", True),
    ("line*", "line1\nline2", True),
])
def test_string_matches(pattern: str, value: str, expected: bool) -> None:
    assert evaluate({"Variable": "$.s", "StringMatches": pattern}, {"s": value}) is expected


def test_string_matches_on_a_non_string_is_false() -> None:
    assert evaluate({"Variable": "$.s", "StringMatches": "*"}, {"s": 1}) is False


def test_a_missing_variable_fails_the_state_with_states_runtime() -> None:
    with pytest.raises(AslError) as caught:
        evaluate({"Variable": "$.missing", "StringEquals": "x"}, {})
    assert caught.value.error == "States.Runtime"


def test_a_missing_path_operand_fails_the_state_with_states_runtime() -> None:
    with pytest.raises(AslError) as caught:
        evaluate({"Variable": "$.a", "NumericEqualsPath": "$.b"}, {"a": 1})
    assert caught.value.error == "States.Runtime"


def test_variables_and_the_context_object_are_paths_too() -> None:
    variables = {"limit": {"max": 10}}
    context = {"Execution": {"Name": "run-1"}}
    assert read_path("$limit.max", {}, context, variables) == 10
    assert read_path("$$.Execution.Name", {}, context, variables) == "run-1"
    assert read_path("$.a", {"a": 2}, context, variables) == 2
    with pytest.raises(AslError, match="not assigned"):
        read_path("$nope", {}, context, variables)
    check_path("$limit.max", field="Variable", reference=True)


# -- JSONata Conditions --------------------------------------------------------------------
# https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html ("Choice Rules (JSONata)")


def jsonata_rule(condition: Any) -> Rule:
    return parse_rule({"Condition": condition, "Next": "N"}, where="Choices[0]",
                      language="JSONata")


def test_jsonata_conditions() -> None:
    states = {"input": {"foo": 1}, "context": {}}
    assert condition_holds(jsonata_rule("{% $states.input.foo = 1 %}"), states, {})
    assert condition_holds(jsonata_rule("{% $type = 'local' %}"), states, {"type": "local"})
    assert not condition_holds(
        jsonata_rule("{% $possiblyNullValue != null and $possiblyNullValue = 42 %}"),
        states, {"possiblyNullValue": None})
    assert condition_holds(jsonata_rule(True), states, {})


def test_a_jsonata_condition_must_yield_a_boolean() -> None:
    with pytest.raises(AslError) as caught:
        condition_holds(jsonata_rule("{% $states.input.foo %}"), {"input": {"foo": 1}}, {})
    assert caught.value.error == "States.QueryEvaluationError"


# -- shapes rejected at declaration --------------------------------------------------------


@pytest.mark.parametrize(("raw", "message"), [
    ({"Variable": "$.x", "StringEquals": "a"}, r"field 'Choices\[0\].Next' must name a state"),
    ({"Variable": "$.x", "StringEquals": 1, "Next": "N"},
     r"field 'Choices\[0\].StringEquals' must be a string"),
    ({"Variable": "$.x", "NumericEquals": "1", "Next": "N"}, "must be a number"),
    ({"Variable": "$.x", "NumericEquals": True, "Next": "N"}, "must be a number"),
    ({"Variable": "$.x", "BooleanEquals": "true", "Next": "N"}, "must be a boolean"),
    ({"Variable": "$.x", "TimestampEquals": "2001-01-01", "Next": "N"}, "must be a timestamp"),
    ({"Variable": "$.x", "IsNull": "yes", "Next": "N"}, "must be a boolean"),
    ({"Variable": "$.x", "StringMatches": "a\\", "Next": "N"}, "lone backslash"),
    ({"Variable": "$.x", "Next": "N"}, "exactly one comparison operator, found 0"),
    ({"Variable": "$.x", "StringEquals": "a", "IsNull": True, "Next": "N"},
     "exactly one comparison operator, found 2"),
    ({"Variable": "$.x", "StringContains": "a", "Next": "N"},
     r"field 'Choices\[0\].StringContains' is not a Choice rule field"),
    ({"StringEquals": "a", "Next": "N"}, r"field 'Choices\[0\].Variable' must be a path"),
    ({"Variable": "$.x[*]", "StringEquals": "a", "Next": "N"}, "not a Reference Path"),
    ({"Variable": "$.x", "StringEqualsPath": "$..y", "Next": "N"}, "not a Reference Path"),
    ({"And": [], "Next": "N"}, r"field 'Choices\[0\].And' must be a non-empty array"),
    ({"Variable": "$.x", "Not": {"Variable": "$.x", "IsNull": True}, "Next": "N"},
     "'Choices\\[0\\].Variable' is not allowed with Not"),
    ({"Not": {"Variable": "$.x", "IsNull": True, "Next": "M"}, "Next": "N"},
     r"field 'Choices\[0\].Not.Next' is not a Choice rule field"),
    ({"Condition": "{% true %}", "Next": "N"},
     r"field 'Choices\[0\].Condition' is not a Choice rule field"),
])
def test_bad_rules_are_rejected_naming_the_field(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rule(raw, where="Choices[0]", language="JSONPath")


@pytest.mark.parametrize(("raw", "message"), [
    ({"Variable": "$.x", "StringEquals": "a", "Next": "N"}, "is not allowed in a JSONata"),
    ({"Condition": "$.x == 1", "Next": "N"}, "must be a JSONata expression or a boolean"),
    ({"Condition": "{% $x = %}", "Next": "N"}, "invalid JSONata expression"),
])
def test_bad_jsonata_rules_are_rejected(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rule(raw, where="Choices[0]", language="JSONata")


def test_every_comparison_operator_has_a_path_form_but_string_matches() -> None:
    assert "StringMatchesPath" not in COMPARISONS
    assert "BooleanLessThan" not in COMPARISONS
    assert len(COMPARISONS) == 2 * (5 + 5 + 1 + 5) + 1


@given(st.one_of(st.integers(), st.floats(allow_nan=False)),
       st.one_of(st.integers(), st.floats(allow_nan=False)))
def test_numeric_comparisons_agree_with_the_numbers(a: float, b: float) -> None:
    assert compare("NumericLessThan", a, b) is (a < b)
    assert compare("NumericEquals", a, b) is (a == b)
    assert compare("NumericGreaterThanEquals", a, b) is (a >= b)


@given(st.text(alphabet="ab*", max_size=6), st.text(alphabet="ab*", max_size=8))
def test_a_pattern_without_star_matches_only_itself(pattern: str, value: str) -> None:
    literal = pattern.replace("*", "")
    assert compare("StringMatches", value, literal) is (value == literal)
