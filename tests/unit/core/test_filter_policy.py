"""The SNS filter policy engine: SEMANTICS.md's vectors, every operator, the limits, properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanstack.core.errors import InvalidFilterPolicy, InvalidParameter
from fanstack.core.filter_policy import EVENT_PATTERN, FilterPolicy, compile_policy
from fanstack.core.message import MessageAttribute, to_attributes
from fanstack.core.specs import ATTRIBUTES_SCOPE, BODY_SCOPE


def attrs(**values: Any) -> dict[str, MessageAttribute]:
    return dict(to_attributes(values))


def number(value: str) -> MessageAttribute:
    return MessageAttribute("Number", value)


def matches(policy: Any, attributes: dict[str, MessageAttribute]) -> bool:
    return FilterPolicy.parse(policy).matches(attributes=attributes, body="")


def matches_body(policy: Any, body: Any) -> bool:
    text = body if isinstance(body, str) else json.dumps(body)
    return FilterPolicy.parse(policy, scope=BODY_SCOPE).matches(attributes={}, body=text)


# The table of SEMANTICS.md, row for row.
VECTORS = [
    ({"color": ["red", "blue"]}, {"color": "blue"}, True),
    ({"color": ["red"], "size": ["L"]}, {"color": "red"}, False),
    ({"qty": [{"numeric": [">=", 10, "<", 20]}]}, {"qty": number("20")}, False),
    ({"qty": [{"numeric": [">=", 10, "<", 20]}]}, {"qty": number("10")}, True),
    ({"qty": [7]}, {"qty": number("7.0")}, True),
    ({"region": [{"anything-but": ["us-east-1"]}]}, {}, False),
    ({"region": [{"anything-but": {"prefix": "us-"}}]}, {"region": "eu-west-2"}, True),
    ({"sku": [{"prefix": "AB-"}]}, {"sku": "ab-12"}, False),
    ({"sku": [{"equals-ignore-case": "ab-12"}]}, {"sku": "AB-12"}, True),
    ({"coupon": [{"exists": False}]}, {"color": "red"}, True),
    ({"tags": ["vip"]}, {"tags": ["new", "vip"]}, True),
    ({"client": [{"cidr": "192.168.0.0/16"}]}, {"client": "192.169.0.1"}, False),
    ({"kind": ["a"], "$or": [{"x": ["1"]}, {"y": ["2"]}]}, {"kind": "a", "y": "2"}, True),
]


@pytest.mark.parametrize(("policy", "values", "expected"), VECTORS)
def test_semantics_vectors_in_attribute_scope(
    policy: dict[str, Any], values: dict[str, Any], expected: bool
) -> None:
    assert matches(policy, attrs(**values)) is expected


def test_semantics_vector_nested_body_key_matches_any_array_element() -> None:
    policy = {"order": {"lines": {"sku": ["Z9"]}}}
    body = {"order": {"lines": [{"sku": "A1"}, {"sku": "Z9"}]}}
    assert matches_body(policy, body)
    assert not matches_body(policy, {"order": {"lines": [{"sku": "A1"}]}})


def test_semantics_vector_numeric_in_body_needs_a_json_number() -> None:
    policy = {"total": [{"numeric": [">", 100]}]}
    assert not matches_body(policy, {"total": "150"})
    assert matches_body(policy, {"total": 150})


def test_a_body_integer_too_large_for_a_float_compares_and_does_not_crash() -> None:
    huge = json.loads("9" * 400)
    assert matches_body({"total": [{"numeric": [">", 100]}]}, {"total": huge})
    assert not matches_body({"total": [{"numeric": ["<", 100]}]}, {"total": huge})
    assert matches_body({"total": [{"numeric": ["<", 0]}]}, {"total": -huge})
    assert not matches_body({"total": [1]}, {"total": huge})


# Body scope names a field by its dotted path, whichever way policy and body split the dots (AWS).
BODY_VECTORS = [
    ({"object.nested": ["x"]}, {"object": {"nested": "x"}}, True),
    ({"object.nested": ["x"]}, {"object.nested": "x"}, True),
    ({"object.nested": ["x"]}, {"object": {"nested": "y"}}, False),
    ({"object.nested": ["x"]}, {"object": "x"}, False),
    ({"a.b.c": ["x"]}, {"a": {"b": {"c": "x"}}}, True),
    ({"a.b.c": ["x"]}, {"a": {"b.c": "x"}}, True),
    ({"a.b.c": ["x"]}, {"a.b": {"c": "x"}}, True),
    ({"a": {"b.c": ["x"]}}, {"a.b": {"c": "x"}}, True),
    ({"a": {"b": ["x"]}}, {"a.b": "x"}, True),
    ({"a.b": ["x"]}, {"a": [{"b": "y"}, {"b": "x"}]}, True),
    ({"a.b": [{"numeric": [">", 1]}]}, {"a": {"b": 2}}, True),
    ({"a.b": [{"exists": False}]}, {"a": {"b": 1}}, False),
    ({"a.b": [{"exists": False}]}, {"a": {"c": 1}}, True),
]


@pytest.mark.parametrize(("policy", "body", "expected"), BODY_VECTORS)
def test_body_vectors_match_dotted_keys_at_every_split(
    policy: dict[str, Any], body: dict[str, Any], expected: bool
) -> None:
    assert matches_body(policy, body) is expected


def test_a_dotted_key_names_one_attribute_in_attribute_scope() -> None:
    assert matches({"a.b": ["x"]}, attrs(**{"a.b": "x"}))
    assert not matches({"a.b": ["x"]}, attrs(a="x"))


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ({"prefix": "bas"}, "baseball", True),
        ({"prefix": "bas"}, "rebase", False),
        ({"suffix": "ball"}, "baseball", True),
        ({"suffix": "ball"}, "balloon", False),
        ({"equals-ignore-case": "TeNnIs"}, "tennis", True),
        ({"equals-ignore-case": "TeNnIs"}, "tennis ", False),
        ({"anything-but": "a"}, "b", True),
        ({"anything-but": "a"}, "a", False),
        ({"anything-but": ["a", "b"]}, "b", False),
        ({"anything-but": {"prefix": "order-"}}, "order-1", False),
        ({"anything-but": {"prefix": "order-"}}, "refund-1", True),
        ({"cidr": "10.0.0.0/24"}, "10.0.0.255", True),
        ({"cidr": "10.0.0.0/24"}, "10.0.1.0", False),
        ({"cidr": "10.0.0.0/24"}, "not-an-ip", False),
        ({"cidr": "2001:db8::/32"}, "2001:db8::1", True),
        ({"cidr": "2001:db8::/32"}, "10.0.0.1", False),
        ({"exists": True}, "anything", True),
        ({"exists": False}, "anything", False),
    ],
)
def test_string_operators(rule: dict[str, Any], value: str, expected: bool) -> None:
    assert matches({"k": [rule]}, attrs(k=value)) is expected


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ({"numeric": ["=", 5]}, "5", True),
        ({"numeric": ["=", 5]}, "5.0000", True),
        ({"numeric": ["=", 5]}, "5.1", False),
        ({"numeric": [">", 0, "<=", 150]}, "150", True),
        ({"numeric": [">", 0, "<=", 150]}, "0", False),
        ({"numeric": ["<", 0]}, "-0.5", True),
        ({"numeric": [">=", 1e9]}, "1000000000", True),
        ({"anything-but": [100, 200]}, "100", False),
        ({"anything-but": [100, 200]}, "150", True),
        ({"anything-but": 100}, "100.0", False),
    ],
)
def test_numeric_operators_on_number_attributes(
    rule: dict[str, Any], value: str, expected: bool
) -> None:
    assert matches({"k": [rule]}, {"k": number(value)}) is expected


def test_numeric_rule_never_matches_a_string_attribute() -> None:
    assert not matches({"k": [{"numeric": [">", 1]}]}, attrs(k="5"))
    assert not matches({"k": [5]}, attrs(k="5"))


def test_exact_string_does_not_match_a_number_attribute() -> None:
    assert not matches({"k": ["5"]}, {"k": number("5")})


def test_binary_attribute_matches_only_exists() -> None:
    binary = attrs(k=b"\x00\x01")
    assert not matches({"k": ["AAE="]}, binary)
    assert not matches({"k": [{"anything-but": "x"}]}, binary)
    assert matches({"k": [{"exists": True}]}, binary)


def test_anything_but_requires_the_attribute() -> None:
    assert not matches({"k": [{"anything-but": {"prefix": "x"}}]}, attrs(other="y"))


def test_exists_true_needs_the_attribute() -> None:
    assert matches({"k": [{"exists": True}]}, attrs(k="v"))
    assert not matches({"k": [{"exists": True}]}, attrs(other="v"))


def test_values_in_a_key_are_ored_and_keys_are_anded() -> None:
    policy = {"a": ["1", {"prefix": "x"}], "b": [{"exists": True}]}
    assert matches(policy, attrs(a="xyz", b="q"))
    assert matches(policy, attrs(a="1", b="q"))
    assert not matches(policy, attrs(a="2", b="q"))
    assert not matches(policy, attrs(a="1"))


def test_string_array_matches_any_element_with_every_operator() -> None:
    tags = attrs(tags=["alpha", "beta", 3, True, None])
    assert matches({"tags": [{"prefix": "be"}]}, tags)
    assert matches({"tags": [{"numeric": [">", 2]}]}, tags)
    assert matches({"tags": [True]}, tags)
    assert matches({"tags": [None]}, tags)
    assert not matches({"tags": ["gamma"]}, tags)


def test_or_branches_combine_with_sibling_keys() -> None:
    policy = {"kind": ["a"], "$or": [{"x": ["1"]}, {"y": ["2"]}]}
    assert not matches(policy, attrs(kind="b", y="2"))
    assert not matches(policy, attrs(kind="a", y="3"))
    assert matches(policy, attrs(kind="a", x="1"))


def test_or_inside_a_nested_body_object() -> None:
    policy = {"order": {"$or": [{"total": [{"numeric": [">", 100]}]}, {"vip": [True]}]}}
    assert matches_body(policy, {"order": {"total": 150}})
    assert matches_body(policy, {"order": {"total": 5, "vip": True}})
    assert not matches_body(policy, {"order": {"total": 5, "vip": False}})


def test_body_scope_ignores_attributes_and_non_object_bodies() -> None:
    policy = FilterPolicy.parse({"a": ["1"]}, scope=BODY_SCOPE)
    assert not policy.matches(attributes=attrs(a="1"), body="not json")
    assert not policy.matches(attributes=attrs(a="1"), body='["a"]')
    assert policy.matches(attributes={}, body='{"a": "1"}')


def test_body_exists_false_on_a_missing_nested_path() -> None:
    assert matches_body({"a": {"b": [{"exists": False}]}}, {"a": {"c": 1}})
    assert not matches_body({"a": {"b": [{"exists": False}]}}, {"a": {"b": 1}})


def test_body_object_is_not_a_leaf_value() -> None:
    assert not matches_body({"a": [{"exists": True}]}, {"a": {"b": 1}})


def test_empty_policy_matches_everything() -> None:
    assert matches({}, attrs(a="1"))


def test_policy_round_trips_through_json() -> None:
    policy = FilterPolicy.parse('{"b": ["2"], "a": [{"prefix": "x"}]}')
    assert FilterPolicy.parse(policy.to_json()).policy == policy.policy
    assert policy.scope == ATTRIBUTES_SCOPE


# -- rejected policies: each names the key and the reason ------------------------------------


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ('{"k": ', "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ({"k": "not-a-list"}, "'k'"),
        ({"k": []}, "must not be empty"),
        ({"k": [[1]]}, "'k'"),
        ({"k": [{"prefix": 5}]}, "'prefix' takes a string"),
        ({"k": [{"bogus": 1}]}, "unrecognized operator 'bogus'"),
        ({"k": [{"prefix": "a", "suffix": "b"}]}, "exactly one operator"),
        ({"price": [{"numeric": [">", "x"]}]}, "'price'"),
        ({"k": [{"numeric": [">"]}]}, "'numeric' takes"),
        ({"k": [{"numeric": ["!=", 1]}]}, "unrecognized numeric operator"),
        ({"k": [{"numeric": [">", 1, ">", 2]}]}, "lower bound ('>' or '>=') first"),
        ({"k": [{"numeric": ["<", 100, ">", 10]}]}, "got '<' then '>'"),
        ({"k": [{"numeric": ["<=", 100, "<", 10]}]}, "lower bound ('>' or '>=') first"),
        ({"k": [{"numeric": ["=", 1, "<", 2]}]}, "cannot be combined"),
        ({"k": [{"numeric": [">", 10, "<", 5]}]}, "range is empty"),
        ({"k": [{"numeric": [">", 2e9]}]}, "outside -1e9..1e9"),
        ({"k": [{"exists": "yes"}]}, "true or false"),
        ({"k": [{"cidr": "300.0.0.0/8"}]}, "'cidr'"),
        ({"k": [{"cidr": "10.0.0.1"}]}, "one '/'"),
        ({"k": [{"cidr": "10.0.0.0/8/8"}]}, "one '/'"),
        ({"k": [{"cidr": 10}]}, "one '/'"),
        ({"k": [{"anything-but": {"suffix": "x"}}]}, "'anything-but'"),
        ({"k": [{"anything-but": []}]}, "at least one value"),
        ({"k": [{"anything-but": [{"a": 1}]}]}, "strings or numbers"),
        ({"k": [{"wildcard": "a*"}]}, "unrecognized operator 'wildcard'"),
        ({"k": {"nested": ["x"]}}, "filter_scope 'body'"),
        ({"$or": [{"a": ["1"]}]}, "at least two"),
        ({"$or": [{"a": ["1"]}, "b"]}, "'$or' branch"),
    ],
)
def test_invalid_policy_is_rejected_naming_the_cause(policy: Any, fragment: str) -> None:
    with pytest.raises(InvalidFilterPolicy, match=None) as caught:
        FilterPolicy.parse(policy)
    assert fragment in str(caught.value)
    assert isinstance(caught.value, InvalidParameter)
    assert caught.value.code == "InvalidParameter"


def test_more_than_five_keys_is_rejected() -> None:
    policy = {f"k{i}": ["v"] for i in range(6)}
    with pytest.raises(InvalidFilterPolicy, match="limit is 5 keys"):
        FilterPolicy.parse(policy)
    FilterPolicy.parse({f"k{i}": ["v"] for i in range(5)})


def test_nested_body_keys_count_as_their_parent_key() -> None:
    one_parent = {"a": {"b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": ["1"], "g": ["1"]}}
    FilterPolicy.parse(one_parent, scope=BODY_SCOPE)  # 6 nested keys, 1 parent key
    six_parents = {f"k{i}": ["v"] for i in range(5)} | {"n": {"x": ["1"]}}
    with pytest.raises(InvalidFilterPolicy, match=r"6 keys.*limit is 5 keys"):
        FilterPolicy.parse(six_parents, scope=BODY_SCOPE)


def _values(count: int) -> list[str]:
    return [f"value_{i}" for i in range(count)]


# AWS's example: depth 3 x 4 values, depth 2 x 3 values = 72; with a top-level key of 3 values,
# 3x4 x 2x3 x 1x3 = 216, over the limit of 150.
COMBINATION_VECTORS = [
    ({"key_a": {"key_b": {"key_c": _values(4)}}, "key_d": {"key_e": _values(3)}}, 72),
    (
        {
            "key_a": {"key_b": {"key_c": _values(4)}},
            "key_d": {"key_e": _values(3)},
            "key_f": _values(3),
        },
        216,
    ),
    ({"a": {"b": _values(10)}, "c": _values(8)}, 160),
    ({"a": {"b": _values(10)}, "c": _values(7)}, 140),
    ({"a": {"$or": [{"b": _values(45)}, {"c": {"d": _values(20)}}]}}, 2 * 45 + 3 * 20),
    ({"a": {"$or": [{"b": _values(50)}, {"c": {"d": _values(20)}}]}}, 2 * 50 + 3 * 20),
]


@pytest.mark.parametrize(("policy", "combinations"), COMBINATION_VECTORS)
def test_body_combinations_multiply_values_by_nesting_depth(
    policy: dict[str, Any], combinations: int
) -> None:
    if combinations <= 150:
        FilterPolicy.parse(policy, scope=BODY_SCOPE)
        return
    with pytest.raises(InvalidFilterPolicy, match=f"{combinations} combinations.*limit is 150"):
        FilterPolicy.parse(policy, scope=BODY_SCOPE)


def test_combinations_over_150_are_rejected() -> None:
    ten = [str(i) for i in range(10)]
    FilterPolicy.parse({"a": ten, "b": ten, "c": ten[:1]})  # 100 combinations
    with pytest.raises(InvalidFilterPolicy, match="160 combinations"):
        FilterPolicy.parse({"a": ten, "b": ten[:4], "c": ten[:4]})


def test_or_branches_are_summed_for_combinations() -> None:
    ten = [str(i) for i in range(10)]
    # (a x b) + (a x c) = 80 + 80 = 160 > 150; either branch alone is fine.
    policy = {"a": ten, "$or": [{"b": ten[:8]}, {"c": ten[:8]}]}
    with pytest.raises(InvalidFilterPolicy, match="160 combinations"):
        FilterPolicy.parse(policy)
    FilterPolicy.parse({"a": ten, "$or": [{"b": ten[:7]}, {"c": ten[:7]}]})


def test_policy_over_256_kb_is_rejected() -> None:
    policy = {"k": ["x" * (256 * 1024)]}
    with pytest.raises(InvalidFilterPolicy, match="262144 bytes"):
        FilterPolicy.parse(policy)


def test_unknown_scope_is_rejected() -> None:
    with pytest.raises(InvalidFilterPolicy, match="FilterPolicyScope"):
        FilterPolicy.parse({"a": ["1"]}, scope="Headers")


def test_event_pattern_dialect_accepts_what_sns_rejects() -> None:
    compile_policy(
        {"k": [{"anything-but": {"suffix": ".tmp"}}]}, nested=True, dialect=EVENT_PATTERN
    )
    compile_policy({"k": [{"wildcard": "a*b"}]}, nested=True, dialect=EVENT_PATTERN)
    with pytest.raises(InvalidFilterPolicy):
        FilterPolicy.parse({"k": [{"prefix": {"equals-ignore-case": "a"}}]})


def test_suffix_is_case_sensitive_like_every_sns_string_match() -> None:
    assert matches({"k": [{"suffix": "ball"}]}, attrs(k="baseball"))
    assert not matches({"k": [{"suffix": "ball"}]}, attrs(k="BASEBALL"))


@pytest.mark.parametrize(
    "rule",
    [
        {"anything-but": {"equals-ignore-case": "a"}},
        {"anything-but": {"wildcard": "a*"}},
        {"suffix": {"equals-ignore-case": "a"}},
    ],
)
def test_sns_rejects_operators_only_event_patterns_accept(rule: dict[str, Any]) -> None:
    with pytest.raises(InvalidFilterPolicy, match="'k'"):
        FilterPolicy.parse({"k": [rule]})


def test_event_pattern_dialect_takes_numbers_up_to_five_billion() -> None:
    compile_policy({"k": [{"numeric": [">", 4e9]}]}, nested=True, dialect=EVENT_PATTERN)
    with pytest.raises(InvalidFilterPolicy, match=r"outside -1e9\.\.1e9"):
        FilterPolicy.parse({"k": [{"numeric": [">", 4e9]}]})


# -- properties -------------------------------------------------------------------------------

names = st.text("abcdef", min_size=1, max_size=3)
strings = st.text("abcXYZ-_.", min_size=1, max_size=6)


@given(value=strings, rule=strings)
def test_exact_string_matches_only_itself(value: str, rule: str) -> None:
    assert matches({"k": [rule]}, attrs(k=value)) is (value == rule)


@given(value=strings, prefix=strings)
def test_anything_but_prefix_is_the_complement_of_prefix(value: str, prefix: str) -> None:
    if not prefix:
        return
    positive = matches({"k": [{"prefix": prefix}]}, attrs(k=value))
    negative = matches({"k": [{"anything-but": {"prefix": prefix}}]}, attrs(k=value))
    assert positive is not negative


@given(
    value=st.integers(-1000, 1000),
    low=st.integers(-1000, 1000),
    width=st.integers(1, 500),
)
def test_numeric_range_agrees_with_python(value: int, low: int, width: int) -> None:
    policy = {"n": [{"numeric": [">=", low, "<", low + width]}]}
    assert matches(policy, {"n": number(str(value))}) is (low <= value < low + width)


@given(
    keys=st.dictionaries(names, st.lists(strings, min_size=1, max_size=3), min_size=1, max_size=4),
    message=st.dictionaries(names, strings, max_size=5),
)
def test_policy_is_an_and_of_ors(keys: dict[str, list[str]], message: dict[str, str]) -> None:
    expected = all(message.get(key) in values for key, values in keys.items())
    assert matches(keys, attrs(**message)) is expected


@given(
    left=st.dictionaries(names, st.lists(strings, min_size=1, max_size=2), min_size=1, max_size=2),
    right=st.dictionaries(names, st.lists(strings, min_size=1, max_size=2), min_size=1, max_size=2),
    message=st.dictionaries(names, strings, max_size=5),
)
def test_or_matches_when_either_branch_matches(
    left: dict[str, list[str]], right: dict[str, list[str]], message: dict[str, str]
) -> None:
    attributes = attrs(**message)
    either = matches(left, attributes) or matches(right, attributes)
    assert matches({"$or": [left, right]}, attributes) is either


@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers(-100, 100) | strings,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
        max_leaves=10,
    )
)
def test_body_matching_never_raises_on_any_json(value: Any) -> None:
    policy = FilterPolicy.parse(
        {"a": {"b": [{"exists": True}, {"numeric": [">", 1]}, "x", {"prefix": "a"}]}},
        scope=BODY_SCOPE,
    )
    policy.matches(attributes={}, body=json.dumps({"a": value}))
