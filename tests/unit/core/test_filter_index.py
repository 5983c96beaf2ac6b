"""The filter index gives exactly FilterPolicy.matches' answers, in route order, testing few."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanstack.core.errors import InvalidFilterPolicy
from fanstack.core.fanout import Route, index_routes, plan_publication
from fanstack.core.filter_index import INDEXED_FROM, FilterIndex
from fanstack.core.filter_policy import FilterPolicy
from fanstack.core.message import STRING_ARRAY, MessageAttribute, to_attributes
from fanstack.core.specs import ATTRIBUTES_SCOPE, BODY_SCOPE, QueueSpec, SubscriptionSpec, TopicSpec

FILLERS = [FilterPolicy.parse({"filler": [f"never-{n}"]}) for n in range(INDEXED_FROM)]
"""Policies no test message matches, so that the policies under test are looked up."""


class Indexed(NamedTuple):
    """An index and what it was built from."""

    index: FilterIndex[str]
    entries: list[tuple[str, FilterPolicy | None]]


def index_of(*policies: Mapping[str, Any] | None, scope: str = ATTRIBUTES_SCOPE) -> Indexed:
    """The policies keyed p0, p1, ..., followed by fillers enough to use the lookups."""
    entries = [
        (f"p{n}", None if policy is None else FilterPolicy.parse(policy, scope=scope))
        for n, policy in enumerate(policies)
    ]
    entries += [(f"filler{n}", policy) for n, policy in enumerate(FILLERS)]
    return Indexed(FilterIndex(entries), entries)


def matching(indexed: Indexed, body: Any = "", **values: Any) -> list[str]:
    """The index's answer, checked against testing every policy in turn."""
    attributes = {
        name: value if isinstance(value, MessageAttribute) else to_attributes({name: value})[name]
        for name, value in values.items()
    }
    text = body if isinstance(body, str) else json.dumps(body)
    found = indexed.index.matching(attributes=attributes, body=text)
    expected = [
        key
        for key, policy in indexed.entries
        if policy is None or policy.matches(attributes=attributes, body=text)
    ]
    assert found == expected
    return found


def route(queue: str, policy: FilterPolicy | None) -> Route:
    subscription = SubscriptionSpec(topic="t", queue=queue, raw=True)
    return Route(subscription, QueueSpec(name=queue), policy)


def number(text: str) -> MessageAttribute:
    return MessageAttribute("Number", text)


# -- each operator, looked up ---------------------------------------------------------------


def test_exact_strings_are_ored_within_a_key_and_anded_across_keys() -> None:
    index = index_of({"color": ["red", "blue"]}, {"color": ["red"], "size": ["L"]})
    assert matching(index, color="blue") == ["p0"]
    assert matching(index, color="red") == ["p0"]
    assert matching(index, color="red", size="L") == ["p0", "p1"]
    assert matching(index, color="green", size="L") == []


def test_exact_numbers_match_number_attributes_only() -> None:
    index = index_of({"qty": [7]}, {"qty": ["7"]}, {"qty": [{"numeric": ["=", 7]}]})
    assert matching(index, qty=number("7.0")) == ["p0", "p2"]
    assert matching(index, qty="7") == ["p1"]
    assert matching(index, qty=number("not a number")) == []


def test_numeric_bounds_and_ranges_match_the_numbers_within_them() -> None:
    index = index_of(
        {"qty": [{"numeric": [">=", 10, "<", 20]}]},
        {"qty": [{"numeric": [">", 100]}]},
        {"qty": [{"numeric": ["<=", -1]}]},
    )
    assert matching(index, qty=10) == ["p0"]
    assert matching(index, qty=20) == []
    assert matching(index, qty=100.5) == ["p1"]
    assert matching(index, qty=-1) == ["p2"]
    assert matching(index, qty="15") == []


def test_prefix_and_suffix_heed_case_and_equals_ignore_case_does_not() -> None:
    index = index_of(
        {"sku": [{"prefix": "AB-"}]},
        {"sku": [{"suffix": "-12"}]},
        {"sku": [{"equals-ignore-case": "ab-12"}]},
        {"sku": [{"prefix": ""}]},
    )
    assert matching(index, sku="AB-12") == ["p0", "p1", "p2", "p3"]
    assert matching(index, sku="ab-12") == ["p1", "p2", "p3"]
    assert matching(index, sku="AB-") == ["p0", "p3"]
    assert matching(index, sku=number("12")) == []


def test_anything_but_values_lists_and_prefix_need_the_attribute() -> None:
    index = index_of(
        {"region": [{"anything-but": "us-east-1"}]},
        {"region": [{"anything-but": ["us-east-1", "eu-west-1"]}]},
        {"region": [{"anything-but": {"prefix": "us-"}}]},
        {"qty": [{"anything-but": [100, 200]}]},
    )
    assert matching(index, region="eu-west-1") == ["p0", "p2"]
    assert matching(index, region="eu-west-2") == ["p0", "p1", "p2"]
    assert matching(index, region="us-west-2") == ["p0", "p1"]
    assert matching(index, qty=100) == []
    assert matching(index, qty=150) == ["p3"]
    assert matching(index) == []


def test_exists_true_needs_the_attribute_even_binary_and_exists_false_its_absence() -> None:
    index = index_of(
        {"coupon": [{"exists": True}]},
        {"coupon": [{"exists": False}]},
        {"coupon": [{"exists": False}, "x"]},
        {"coupon": [{"exists": True}], "kind": ["a"]},
    )
    assert matching(index) == ["p1", "p2"]
    assert matching(index, coupon="x") == ["p0", "p2"]
    assert matching(index, coupon=b"\x00", kind="a") == ["p0", "p3"]


def test_binary_attributes_offer_no_value_to_other_operators() -> None:
    index = index_of({"blob": [{"prefix": ""}]}, {"blob": [{"anything-but": "x"}]})
    assert matching(index, blob=b"xyz") == []


def test_cidr_matches_ipv4_and_ipv6_strings() -> None:
    index = index_of(
        {"client": [{"cidr": "192.168.0.0/16"}]}, {"client": [{"cidr": "2001:db8::/32"}]}
    )
    assert matching(index, client="192.168.4.1") == ["p0"]
    assert matching(index, client="192.169.0.1") == []
    assert matching(index, client="2001:db8::1") == ["p1"]


def test_string_arrays_match_if_any_element_matches() -> None:
    index = index_of({"tags": ["vip"]}, {"tags": [5]}, {"tags": [{"prefix": "ne"}]})
    assert matching(index, tags=["new", "vip"]) == ["p0", "p2"]
    assert matching(index, tags=MessageAttribute(STRING_ARRAY, '[5, {"vip": 1}]')) == ["p1"]
    assert matching(index, tags=MessageAttribute(STRING_ARRAY, "not json")) == []


def test_custom_subtypes_keep_their_base_type() -> None:
    index = index_of({"qty": [{"numeric": [">", 1]}]}, {"name": ["x"]})
    assert matching(index, qty=MessageAttribute("Number.float", "2.5")) == ["p0"]
    assert matching(index, name=MessageAttribute("String.custom", "x")) == ["p1"]


def test_or_branches_are_looked_up_with_their_sibling_keys() -> None:
    index = index_of(
        {"kind": ["a"], "$or": [{"x": ["1"]}, {"y": [{"prefix": "2"}]}]},
        {"$or": [{"x": ["1"]}, {"z": [{"exists": False}]}]},
    )
    assert matching(index, kind="a", y="20") == ["p0", "p1"]
    assert matching(index, kind="b", y="20") == ["p1"]
    assert matching(index, kind="a", x="1", z="0") == ["p0", "p1"]
    assert matching(index, kind="a", z="0") == []


def test_dotted_attribute_names_are_one_name() -> None:
    index = index_of({"a.b": ["1"]}, {"a": ["1"]})
    assert matching(index, **{"a.b": "1"}) == ["p0"]
    assert matching(index, a="1") == ["p1"]


def test_body_scope_matches_nested_keys_dotted_keys_and_array_elements() -> None:
    index = index_of(
        {"order": {"lines": {"sku": ["Z9"]}}},
        {"order.lines.sku": [{"prefix": "A"}]},
        {"total": [{"numeric": [">", 100]}]},
        {"order": {"$or": [{"state": ["open"]}, {"lines": {"qty": [3]}}]}},
        {"gone": [{"exists": False}]},
        scope=BODY_SCOPE,
    )
    body = {"order": {"lines": [{"sku": "A1"}, {"sku": "Z9", "qty": 3}]}, "total": "150"}
    assert matching(index, body) == ["p0", "p1", "p3", "p4"]
    assert matching(index, {"order.lines": {"sku": "Z9"}, "total": 150}) == ["p0", "p2", "p4"]
    assert matching(index, {"order": {"state": "open"}, "gone": {"x": 1}}) == ["p3", "p4"]


def test_body_scope_ignores_attributes_and_bodies_that_are_not_json_objects() -> None:
    index = index_of({"color": ["red"]}, {"gone": [{"exists": False}]}, scope=BODY_SCOPE)
    assert matching(index, "not json", color="red") == []
    assert matching(index, "[1, 2]") == []
    assert matching(index, {"color": "red"}) == ["p0", "p1"]


def test_subscriptions_without_a_policy_and_empty_policies_match_everything() -> None:
    index = index_of(None, {}, {"color": ["red"]}, None)
    assert matching(index) == ["p0", "p1", "p3"]
    assert matching(index, "not json", color="red") == ["p0", "p1", "p2", "p3"]


def test_few_policies_are_tested_one_by_one_with_the_same_answers() -> None:
    index = FilterIndex([("red", FilterPolicy.parse({"color": ["red"]})), ("all", None)])
    assert index.matching(attributes=to_attributes({"color": "red"}), body="") == ["red", "all"]
    assert index.matching(attributes={}, body="") == ["all"]


# -- order and narrowing ----------------------------------------------------------------------


def test_matches_come_in_route_order_whatever_the_scope_or_lookup() -> None:
    policies: list[FilterPolicy | None] = [
        FilterPolicy.parse({"total": [{"numeric": [">", 1]}]}, scope=BODY_SCOPE),
        None,
        FilterPolicy.parse({"color": ["red"]}),
        FilterPolicy.parse({"color": [{"anything-but": "blue"}]}),
        FilterPolicy.parse({"total": [2]}, scope=BODY_SCOPE),
        *FILLERS,
        FilterPolicy.parse({"color": [{"prefix": "r"}]}),
        None,
    ]
    routes = [route(f"q{n}", policy) for n, policy in enumerate(policies)]
    topic = TopicSpec(name="t")
    publication = plan_publication(
        topic,
        index_routes(routes),
        message_id="m",
        body='{"total": 2}',
        attributes=to_attributes({"color": "red"}),
        now=0.0,
    )
    expected = ["q0", "q1", "q2", "q3", "q4", f"q{len(policies) - 2}", f"q{len(policies) - 1}"]
    assert [delivery.queue for delivery in publication.deliveries] == expected


def test_policies_whose_looked_up_value_differs_are_never_tested(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policies = [FilterPolicy.parse({"market": [f"m{n}"]}) for n in range(200)]
    policies += [FilterPolicy.parse({"shop": [{"prefix": f"s{n}-"}]}) for n in range(50)]
    index = FilterIndex(enumerate(policies))
    tested: list[Mapping[str, Any]] = []
    original = FilterPolicy.matches

    def counting(self: FilterPolicy, **message: Any) -> bool:
        tested.append(self.policy)
        return original(self, **message)

    monkeypatch.setattr(FilterPolicy, "matches", counting)
    attributes = to_attributes({"market": "m17", "shop": "s3-x"})
    assert index.matching(attributes=attributes, body="") == [17, 203]
    assert tested == [{"market": ["m17"]}, {"shop": [{"prefix": "s3-"}]}]


# -- equivalence with FilterPolicy.matches ----------------------------------------------------
# Few names and values, so that policies and messages meet often (about one pair in eight
# matches) and every operator, scope and attribute type is drawn.

words = st.sampled_from(["", "a", "ab", "Ab", "10.0.0.7", "::1"])
numbers = st.sampled_from([0, 1, 2.5, -3, 7])
affixes = words.filter(bool)
ranges = st.tuples(st.integers(-5, 5), st.integers(-5, 5)).filter(lambda r: r[0] < r[1])


anything_but = st.one_of(
    words,
    numbers,
    st.lists(words | numbers, min_size=1, max_size=3),
    affixes.map(lambda s: {"prefix": s}),
)
rules = st.one_of(
    words,
    numbers,
    words.map(lambda s: {"prefix": s}),
    words.map(lambda s: {"suffix": s}),
    words.map(lambda s: {"equals-ignore-case": s}),
    anything_but.map(lambda v: {"anything-but": v}),
    ranges.map(lambda r: {"numeric": [">=", r[0], "<", r[1]]}),
    ranges.map(lambda r: {"numeric": [">", r[0], "<=", r[1]]}),
    st.sampled_from([">", ">=", "<", "<=", "="]).map(lambda op: {"numeric": [op, 1]}),
    st.booleans().map(lambda flag: {"exists": flag}),
    st.sampled_from(["10.0.0.0/24", "::/0"]).map(lambda net: {"cidr": net}),
)
leaves = st.lists(rules, min_size=1, max_size=3)


def _keys(names: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(names), values, min_size=1, max_size=2)


def _with_or(
    keys: st.SearchStrategy[dict[str, Any]], branch: st.SearchStrategy[dict[str, Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """`keys`, sometimes with an `$or` of two or three branches beside them."""
    alternatives = st.none() | st.lists(branch, min_size=2, max_size=3)
    return st.builds(lambda k, o: {**k, **({"$or": o} if o else {})}, keys, alternatives)


ATTRIBUTE_NAMES = ["a", "b", "a.b"]
attribute_policies = _with_or(_keys(ATTRIBUTE_NAMES, leaves), _keys(ATTRIBUTE_NAMES, leaves))
BODY_NAMES = ["a", "b", "a.b"]
INNER_NAMES = ["x", "y"]
nested = st.recursive(
    leaves,
    lambda inner: _with_or(_keys(INNER_NAMES, inner), _keys(INNER_NAMES, inner)),
    max_leaves=3,
)
body_policies = _with_or(_keys(BODY_NAMES, nested), _keys(BODY_NAMES, nested))
policies = st.one_of(
    st.none(),
    attribute_policies.map(lambda p: (p, ATTRIBUTES_SCOPE)),
    body_policies.map(lambda p: (p, BODY_SCOPE)),
)


leaf_values = words | numbers | st.booleans() | st.none() | st.sampled_from(["1", "7"])
attribute_kinds = st.one_of(
    words.map(lambda s: MessageAttribute("String", s)),
    st.sampled_from(["0", "1", "7.0", "2.5", "-3", "x"]).map(number),
    st.lists(leaf_values | st.just({"a": 1}), max_size=3).map(
        lambda items: MessageAttribute(STRING_ARRAY, json.dumps(items))
    ),
    st.just(MessageAttribute(STRING_ARRAY, "[not json")),
    st.just(MessageAttribute("Binary", binary_value=b"ab")),
    st.sampled_from(["7", "2.5"]).map(lambda s: MessageAttribute("Number.float", s)),
    words.map(lambda s: MessageAttribute("String.custom", s)),
)
messages_attributes = st.dictionaries(
    st.sampled_from([*ATTRIBUTE_NAMES, "z"]), attribute_kinds, min_size=2
)
inner_fields = leaf_values | st.lists(leaf_values, max_size=3)
objects = st.dictionaries(st.sampled_from([*INNER_NAMES, "x.y"]), inner_fields, min_size=1)
body_fields = inner_fields | objects | st.lists(objects, max_size=3)
json_objects = st.dictionaries(st.sampled_from([*BODY_NAMES, "z"]), body_fields, min_size=2).map(
    json.dumps
)
not_objects = st.sampled_from(["", "not json", "[1, 2]", "5", '"a"'])
bodies = st.one_of(json_objects, json_objects, json_objects, not_objects)


def _parsed(document: tuple[dict[str, Any], str] | None) -> FilterPolicy | None:
    """The policy, or None for no policy and for one SNS rejects (over its limits)."""
    if document is None:
        return None
    try:
        return FilterPolicy.parse(document[0], scope=document[1])
    except InvalidFilterPolicy:
        return None


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    documents=st.lists(policies, min_size=2 * INDEXED_FROM, max_size=4 * INDEXED_FROM),
    messages=st.lists(st.tuples(messages_attributes, bodies), min_size=1, max_size=8),
)
def test_index_answers_exactly_what_testing_each_route_answers(
    documents: list[tuple[dict[str, Any], str] | None],
    messages: list[tuple[dict[str, MessageAttribute], str]],
) -> None:
    routes = [route(f"q{n}", _parsed(document)) for n, document in enumerate(documents)]
    index = index_routes(routes)
    for attributes, body in messages:
        expected = [
            r
            for r in routes
            if r.policy is None or r.policy.matches(attributes=attributes, body=body)
        ]
        assert index.matching(attributes=attributes, body=body) == expected
