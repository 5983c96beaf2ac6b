"""EventBridge event patterns: AWS's vectors, invalid patterns, TestEventPattern, properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanstack.core.errors import InvalidEventPattern, ValidationException
from fanstack.core.event_pattern import MAX_BRANCHES, EventPattern, flatten
from fanstack.core.event_pattern import test_event_pattern as run_test_event_pattern


def matches(pattern: Any, event: dict[str, Any]) -> bool:
    return EventPattern.parse(pattern).matches(event)


EC2_EVENT = {
    "version": "0",
    "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "012345679012",
    "time": "2017-10-02T16:24:49Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
    "detail": {
        "c-count": 5,
        "d-count": 3,
        "x-limit": 301.8,
        "source-ip": "10.0.0.33",
        "instance-id": "i-000000aaaaaa00000",
        "state": "running",
    },
}

VECTORS: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern.html
    (
        {
            "source": ["aws.ec2"],
            "detail-type": ["EC2 Instance State-change Notification"],
            "detail": {"state": ["running"]},
        },
        EC2_EVENT,
        True,
    ),
    ({"source": ["aws.ec2", "aws.fargate"]}, {"source": "aws.fargate"}, True),
    ({"source": ["aws.ec2", "aws.fargate"]}, {"source": "aws.s3"}, False),
    ({"detail": {"state": ["terminated"]}}, EC2_EVENT, False),
    # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-arrays.html
    (
        {"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f", "arn:x"]},
        {
            "resources": [
                "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b",
                "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
            ]
        },
        True,
    ),
    # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-null-values.html
    ({"detail": {"eventVersion": [""]}}, {"detail": {"eventVersion": ""}}, True),
    ({"detail": {"responseElements": [None]}}, {"detail": {"responseElements": None}}, True),
    ({"detail": {"responseElements": [""]}}, {"detail": {"responseElements": None}}, False),
    ({"detail": {"eventVersion": [None]}}, {"detail": {"eventVersion": ""}}, False),
    # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html
    ({"time": [{"prefix": "2017-10-02"}]}, {"time": "2017-10-02T18:43:48Z"}, True),
    ({"time": [{"prefix": "2017-10-02"}]}, {"time": "2017-10-03T18:43:48Z"}, False),
    (
        {"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}},
        {"detail": {"service": "eventbridge"}},
        True,
    ),
    ({"FileName": [{"suffix": ".png"}]}, {"FileName": "image.png"}, True),
    ({"FileName": [{"suffix": ".png"}]}, {"FileName": "image.PNG"}, False),
    (
        {"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}},
        {"detail": {"FileName": "image.PNG"}},
        True,
    ),
    ({"detail": {"state": [{"anything-but": "initializing"}]}}, EC2_EVENT, True),
    (
        {"detail": {"state": [{"anything-but": "initializing"}]}},
        {"detail": {"state": "initializing"}},
        False,
    ),
    ({"detail": {"x-limit": [{"anything-but": 123}]}}, {"detail": {"x-limit": 123}}, False),
    (
        {"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}},
        {"detail": {"state": "stopped"}},
        False,
    ),
    ({"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}, EC2_EVENT, True),
    (
        {"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}},
        {"detail": {"x-limit": 200}},
        False,
    ),
    ({"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}, EC2_EVENT, True),
    (
        {"detail": {"state": [{"anything-but": {"prefix": "init"}}]}},
        {"detail": {"state": "initializing"}},
        False,
    ),
    (
        {"detail": {"FileName": [{"anything-but": {"suffix": ".txt"}}]}},
        {"detail": {"FileName": "notes.txt"}},
        False,
    ),
    ({"s": [{"anything-but": {"equals-ignore-case": ["Stopped", "Ov"]}}]}, {"s": "STOPPED"}, False),
    ({"s": [{"anything-but": {"equals-ignore-case": ["Stopped", "Ov"]}}]}, {"s": "on"}, True),
    (
        {"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]},
        {"FilePath": "/usr/lib/libc.so"},
        False,
    ),
    (
        {"FilePath": [{"anything-but": {"wildcard": ["*/lib/*", "*/bin/*"]}}]},
        {"FilePath": "/home/me/notes.md"},
        True,
    ),
    (
        {
            "detail": {
                "c-count": [{"numeric": [">", 0, "<=", 5]}],
                "d-count": [{"numeric": ["<", 10]}],
                "x-limit": [{"numeric": ["=", 3.018e2]}],
            }
        },
        EC2_EVENT,
        True,
    ),
    ({"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}, EC2_EVENT, True),
    ({"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}}, EC2_EVENT, False),
    ({"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db8::ff00:42:8329"}, True),
    ({"detail": {"c-count": [{"exists": False}]}}, {"detail": {"state": "running"}}, True),
    ({"detail": {"c-count": [{"exists": False}]}}, {"detail": {"c-count": {"c1": 100}}}, True),
    ({"detail": {"c-count": [{"exists": False}]}}, EC2_EVENT, False),
    ({"detail": {"c-count": [{"exists": True}]}}, EC2_EVENT, True),
    ({"detail": {"name": [{"equals-ignore-case": "alice"}]}}, {"detail": {"name": "ALICE"}}, True),
    (
        {"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]},
        {"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/orders"},
        True,
    ),
    ({"Filename": [{"wildcard": "dir/*.png"}]}, {"Filename": "dir/sub/image.png"}, True),
    ({"Filename": [{"wildcard": "dir/*.png"}]}, {"Filename": "dir/image.jpg"}, False),
    (
        {
            "time": [{"prefix": "2017-10-02"}],
            "detail": {
                "state": [{"anything-but": "initializing"}],
                "c-count": [{"numeric": [">", 0, "<=", 5]}],
                "d-count": [{"numeric": ["<", 10]}],
                "x-limit": [{"anything-but": [100, 200, 300]}],
                "source-ip": [{"cidr": "10.0.0.0/8"}],
            },
        },
        EC2_EVENT,
        True,
    ),
    (
        {
            "source": ["aws.cloudwatch"],
            "$or": [
                {"metricName": ["CPUUtilization", "ReadLatency"]},
                {"namespace": ["AWS/EC2", "AWS/ES"]},
            ],
        },
        {"source": "aws.cloudwatch", "namespace": "AWS/ES"},
        True,
    ),
    (
        {
            "source": ["aws.cloudwatch"],
            "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}],
        },
        {"source": "aws.cloudwatch", "metricName": "DiskWrites"},
        False,
    ),
    (
        {
            "detail": {
                "$or": [
                    {"c-count": [{"numeric": [">", 0, "<=", 5]}]},
                    {"d-count": [{"numeric": ["<", 10]}]},
                    {"x-limit": [{"numeric": ["=", 3.018e2]}]},
                ]
            }
        },
        {"detail": {"c-count": 50, "d-count": 50, "x-limit": 301.8}},
        True,
    ),
    # SEMANTICS.md, "Event bus": finer points recorded against AWS.
    ({"n": [{"numeric": ["=", 5]}]}, {"n": "5"}, False),
    ({"n": [{"numeric": ["=", 5]}]}, {"n": 5.0}, True),
    ({"n": [5]}, {"n": 5.0}, True),
    ({"n": [5]}, {"n": "5"}, False),
    ({"flag": [True]}, {"flag": 1}, False),
    ({"a": [{"exists": True}]}, {"a": {"b": 1}}, False),
    ({"a": [{"exists": False}]}, {"a": {"b": 1}}, True),
    ({"a": [{"exists": True}]}, {"a": []}, False),
    ({"a.b": ["x"]}, {"a": {"b": "x"}}, True),
    ({"a": {"b": ["x"]}}, {"a.b": "x"}, True),
    ({"a": {"b": ["x"]}}, {"a": [{"b": "y"}, {"b": "x"}]}, True),
    ({"$or": ["x", "y"]}, {"$or": "y"}, True),
    ({"$or": {"kind": ["x"]}}, {"$or": {"kind": "x"}}, True),
    ({"a": ["x"]}, {"a": "x", "unrelated": {"deep": [1, 2]}}, True),
    ({"a": [{"wildcard": "a\\*b"}]}, {"a": "a*b"}, True),
    ({"a": [{"wildcard": "a\\*b"}]}, {"a": "axb"}, False),
    ({"a": [{"wildcard": "a\\\\b"}]}, {"a": "a\\b"}, True),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), VECTORS)
def test_documented_vectors(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, event) is expected


INVALID: list[tuple[Any, str]] = [
    ('{"a": ', "not valid JSON"),
    ('{"a": [NaN]}', "not valid JSON"),
    ("[1]", "must be a JSON object"),
    ({}, "at least one field"),
    ({"detail": {"state": "running"}}, "key 'detail.state': the value must be an array"),
    ({"detail": {}}, "key 'detail': an object must name at least one field"),
    ({"a": []}, "key 'a': the array of rules must not be empty"),
    ({"a": [["x"]]}, "key 'a'"),
    ({"a": [{"Prefix": "x"}]}, "key 'a': unrecognized operator 'Prefix'"),
    ({"a": [{"prefix": "x", "suffix": "y"}]}, "exactly one operator"),
    ({"a": [{"prefix": 5}]}, "key 'a': 'prefix' takes a string"),
    ({"a": [{"prefix": {"exists": True}}]}, "key 'a': 'prefix' accepts a string or"),
    ({"a": [{"equals-ignore-case": ["x"]}]}, "'equals-ignore-case' takes a string"),
    ({"a": [{"anything-but": {"prefix": ""}}]}, "key 'a': 'anything-but' 'prefix' must not be"),
    ({"a": [{"anything-but": ["x", 1]}]}, "key 'a': 'anything-but' takes all strings or all"),
    ({"a": [{"anything-but": [True]}]}, "'anything-but' values must be strings or numbers"),
    ({"a": [{"anything-but": None}]}, "'anything-but' values must be strings or numbers"),
    ({"a": [{"anything-but": []}]}, "'anything-but' needs at least one value"),
    ({"a": [{"anything-but": {"exists": True}}]}, "'anything-but' accepts an object with only"),
    ({"a": [{"anything-but": {"prefix": "x", "suffix": "y"}}]}, "accepts an object with only"),
    ({"a": [{"anything-but": {"wildcard": "a**"}}]}, "consecutive '*'"),
    ({"a": [{"numeric": [">", 6e9]}]}, "key 'a': number 6000000000.0 is outside -5e9..5e9"),
    ({"a": [{"numeric": [">", 0.1234567]}]}, "more than 6 decimal places"),
    ({"a": [{"numeric": ["<", 5, ">", 1]}]}, "lower bound ('>' or '>=') first"),
    ({"a": [{"numeric": [">", 5, "<", 1]}]}, "range is empty"),
    ({"a": [{"numeric": ["=", "5"]}]}, "needs a number"),
    ({"a": [{"numeric": 5}]}, "'numeric' takes"),
    ({"a": [{"exists": "true"}]}, "'exists' takes true or false"),
    ({"ip": [{"cidr": "10.0.0.0/33"}]}, "key 'ip': 'cidr' needs an IPv4 or IPv6 network"),
    ({"ip": [{"cidr": "10.0.0.1"}]}, "key 'ip': 'cidr' needs a network with one '/'"),
    ({"a": [{"wildcard": "a**b"}]}, "key 'a': 'wildcard' 'a**b': consecutive '*'"),
    ({"a": [{"wildcard": "a\\db"}]}, "a backslash may only escape"),
    ({"a": [{"wildcard": "ab\\"}]}, "a backslash may only escape"),
    ({"a": [{"wildcard": 5}]}, "'wildcard' takes a string"),
    ({"$or": [{"a": ["x"]}]}, "key '$or': unrecognized operator 'a'"),
    ({"d": {"$or": [{"a": ["x"]}, {}]}}, "key 'd.$or': each '$or' branch must name"),
    ({"a": {"b": ["x"]}, "a.b": ["y"]}, "field 'a.b' is named twice in one branch"),
    ({"k": ["x" * 2100]}, "the limit is 2048 characters"),
]


@pytest.mark.parametrize(("pattern", "fragment"), INVALID)
def test_invalid_pattern_is_rejected_naming_the_key_and_reason(pattern: Any, fragment: str) -> None:
    with pytest.raises(InvalidEventPattern) as caught:
        EventPattern.parse(pattern)
    assert fragment in str(caught.value)
    assert caught.value.code == "InvalidEventPatternException"


def test_or_expanding_past_the_branch_limit_is_rejected() -> None:
    pattern = {f"k{i}": {"$or": [{"a": ["1"]}, {"b": ["2"]}]} for i in range(11)}
    with pytest.raises(InvalidEventPattern, match=f"the limit is {MAX_BRANCHES}"):
        EventPattern.parse(pattern)


def test_or_over_rule_objects_is_a_field_named_or() -> None:
    pattern = EventPattern.parse({"$or": [{"numeric": [">", 1]}, {"prefix": "a"}]})
    assert [c.field for branch in pattern.branches for c in branch] == ["$or"]
    assert pattern.matches({"$or": "abc"})


def test_exists_true_and_false_together_always_hold() -> None:
    pattern = EventPattern.parse({"a": [{"exists": True}, {"exists": False}], "b": ["x"]})
    assert pattern.matches({"b": "x"})
    assert pattern.matches({"a": 1, "b": "x"})


def test_exists_false_beside_values_matches_absence_or_a_value() -> None:
    pattern = EventPattern.parse({"a": [{"exists": False}, "x"]})
    assert pattern.matches({})
    assert pattern.matches({"a": "x"})
    assert not pattern.matches({"a": "y"})


def test_numeric_ignores_event_numbers_outside_the_range() -> None:
    assert not matches({"n": [{"numeric": [">", 0]}]}, {"n": 6e9})
    assert matches({"n": [6e9]}, {"n": 6e9})
    assert matches({"account": [123456789012]}, {"account": 123456789012})


def test_pattern_round_trips_through_json() -> None:
    pattern = EventPattern.parse('{"source": ["a"], "detail": {"n": [{"numeric": [">", 1]}]}}')
    assert EventPattern.parse(pattern.to_json()).pattern == pattern.pattern
    assert pattern.to_json() == '{"source":["a"],"detail":{"n":[{"numeric":[">",1]}]}}'


def test_flatten_joins_paths_and_descends_into_arrays() -> None:
    event = {"a": {"b": [1, {"c": 2}, [3]]}, "a.b": 4, "e": [], "o": {}}
    assert flatten(event) == {"a.b": [1, 3, 4], "a.b.c": [2]}


# -- TestEventPattern --------------------------------------------------------------------------


def test_test_event_pattern_takes_json_text_or_a_dict() -> None:
    assert run_test_event_pattern('{"source": ["aws.ec2"]}', json.dumps(EC2_EVENT))
    assert not run_test_event_pattern({"source": ["aws.s3"]}, EC2_EVENT)


@pytest.mark.parametrize("event", ['["not", "an", "object"]', "42", "{not json", [1]])
def test_test_event_pattern_rejects_an_event_that_is_not_an_object(event: Any) -> None:
    with pytest.raises(ValidationException, match="Event: "):
        run_test_event_pattern({"source": ["x"]}, event)


def test_test_event_pattern_requires_the_mandatory_envelope_fields() -> None:
    event = {key: value for key, value in EC2_EVENT.items() if key != "region"}
    with pytest.raises(ValidationException, match=r"missing mandatory field.*'region'"):
        run_test_event_pattern({"source": ["aws.ec2"]}, event)


def test_test_event_pattern_rejects_an_invalid_pattern() -> None:
    with pytest.raises(InvalidEventPattern):
        run_test_event_pattern({"source": "aws.ec2"}, EC2_EVENT)


# -- properties -------------------------------------------------------------------------------

names = st.sampled_from(["a", "b", "c", "d"])
strings = st.text("abAB.-", max_size=4)
numbers = st.integers(-1000, 1000) | st.floats(-1e6, 1e6).map(lambda f: round(f, 3))
scalars = st.none() | st.booleans() | numbers | strings
events = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=12,
).filter(lambda value: isinstance(value, dict))


def _nest(path: str, rules: list[Any]) -> dict[str, Any]:
    head, _, rest = path.partition(".")
    return {head: _nest(rest, rules) if rest else rules}


@given(event=events, data=st.data())
def test_a_pattern_of_the_events_own_values_matches_it(event: dict[str, Any], data: Any) -> None:
    fields = flatten(event)
    if not fields:
        return
    path = data.draw(st.sampled_from(sorted(fields)))
    value = data.draw(st.sampled_from(fields[path]))
    assert matches(_nest(path, [value]), event)
    assert matches({path: [value]}, event)


@given(value=scalars.filter(lambda v: isinstance(v, str) or type(v) in (int, float)), other=scalars)
def test_anything_but_a_value_never_matches_that_value(value: Any, other: Any) -> None:
    assert not matches({"k": [{"anything-but": value}]}, {"k": value})
    assert not matches({"k": [{"anything-but": [value]}]}, {"k": [value, value]})
    differs = not (type(other) is type(value) and other == value) and not (
        type(other) in (int, float) and type(value) in (int, float) and other == value
    )
    assert matches({"k": [{"anything-but": value}]}, {"k": other}) is differs


def _leaf_patterns() -> st.SearchStrategy[dict[str, Any]]:
    rules = st.lists(
        strings.map(lambda s: {"prefix": s}) | scalars | st.just({"exists": True}),
        min_size=1,
        max_size=3,
    )
    return st.dictionaries(names, rules, min_size=1, max_size=2)


@given(left=_leaf_patterns(), right=_leaf_patterns(), event=events)
def test_or_matches_exactly_when_one_of_its_branches_does(
    left: dict[str, Any], right: dict[str, Any], event: dict[str, Any]
) -> None:
    either = matches(left, event) or matches(right, event)
    assert matches({"$or": [left, right]}, event) is either


@given(event=events, name=names)
def test_exists_true_and_exists_false_are_complements(event: dict[str, Any], name: str) -> None:
    present = matches({name: [{"exists": True}]}, event)
    assert matches({name: [{"exists": False}]}, event) is not present


@given(value=strings, prefix=strings.filter(bool))
def test_anything_but_prefix_is_the_complement_of_prefix(value: str, prefix: str) -> None:
    positive = matches({"k": [{"prefix": prefix}]}, {"k": value})
    assert matches({"k": [{"anything-but": {"prefix": prefix}}]}, {"k": value}) is not positive


@given(value=numbers, low=st.integers(-1000, 1000), width=st.integers(1, 500))
def test_numeric_range_agrees_with_python(value: float, low: int, width: int) -> None:
    pattern = {"n": [{"numeric": [">=", low, "<", low + width]}]}
    assert matches(pattern, {"n": value}) is (low <= value < low + width)


@given(event=events)
def test_matching_any_json_event_never_raises(event: dict[str, Any]) -> None:
    pattern = EventPattern.parse(
        {
            "a": [{"numeric": [">", 1]}, {"anything-but": {"wildcard": "a*"}}, {"cidr": "::/0"}],
            "b": {"c": [{"suffix": {"equals-ignore-case": "B"}}, {"exists": False}]},
        }
    )
    pattern.matches(event)
