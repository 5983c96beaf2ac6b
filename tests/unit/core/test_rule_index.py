"""The rule index gives exactly EventPattern.matches' answers, found by lookups, in rule order."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanstack.core.event_pattern import EventPattern
from fanstack.core.rule_index import RuleIndex


def index_of(*patterns: dict[str, Any]) -> RuleIndex[str]:
    return RuleIndex((f"r{i}", EventPattern.parse(p)) for i, p in enumerate(patterns))


def test_an_empty_index_matches_nothing() -> None:
    index: RuleIndex[str] = RuleIndex([])
    assert index.matching({"source": "x"}) == []
    assert len(index) == 0


def test_matching_keys_come_in_the_order_the_rules_were_given() -> None:
    index = index_of({"b": ["2"]}, {"a": ["1"]}, {"a": [{"prefix": ""}]}, {"c": ["3"]})
    assert index.matching({"a": "1", "b": "2"}) == ["r0", "r1", "r2"]


def test_a_rule_matching_through_several_branches_is_listed_once() -> None:
    index = index_of({"$or": [{"a": ["1"]}, {"b": ["2"]}]})
    assert index.matching({"a": "1", "b": "2"}) == ["r0"]


def test_patterns_given_under_one_key_are_ored_into_one_rule() -> None:
    rules = [("k", EventPattern.parse({"a": ["1"]})), ("k", EventPattern.parse({"b": ["2"]}))]
    index = RuleIndex(rules)
    assert len(index) == 1
    assert index.matching({"b": "2"}) == ["k"]
    assert index.matching({"a": "1", "b": "2"}) == ["k"]


def test_exact_values_are_found_by_type_as_well_as_value() -> None:
    index = index_of({"v": [5]}, {"v": ["5"]}, {"v": [True]}, {"v": [None]}, {"v": [1]})
    assert index.matching({"v": 5.0}) == ["r0"]
    assert index.matching({"v": "5"}) == ["r1"]
    assert index.matching({"v": True}) == ["r2"]
    assert index.matching({"v": None}) == ["r3"]
    assert index.matching({"v": 1}) == ["r4"]


def test_prefixes_suffixes_and_case_folded_values_are_looked_up() -> None:
    index = index_of(
        {"s": [{"prefix": "ab"}]},
        {"s": [{"prefix": {"equals-ignore-case": "AB"}}]},
        {"s": [{"suffix": "yz"}]},
        {"s": [{"suffix": {"equals-ignore-case": "YZ"}}]},
        {"s": [{"equals-ignore-case": "ABXYZ"}]},
        {"s": [{"suffix": ""}]},
    )
    assert index.matching({"s": "abxyz"}) == ["r0", "r1", "r2", "r3", "r4", "r5"]
    assert index.matching({"s": "ABxYZ"}) == ["r1", "r3", "r4", "r5"]
    assert index.matching({"s": "a"}) == ["r5"]
    assert index.matching({"s": 5}) == []


def test_tested_matchers_run_only_where_their_field_is_present() -> None:
    index = index_of(
        {"n": [{"numeric": [">", 1]}]},
        {"s": [{"anything-but": "x"}]},
        {"ip": [{"cidr": "10.0.0.0/8"}]},
        {"w": [{"wildcard": "a*c"}]},
        {"e": [{"exists": True}]},
    )
    assert index.matching({"n": 2, "s": "y", "ip": "10.1.2.3", "w": "abc", "e": {}}) == [
        "r0",
        "r1",
        "r2",
        "r3",
    ]
    assert index.matching({"e": [None]}) == ["r4"]
    assert index.matching({}) == []


def test_branches_without_a_positive_condition_match_events_lacking_the_field() -> None:
    index = index_of(
        {"gone": [{"exists": False}]},
        {"a": [{"exists": True}, {"exists": False}]},
        {"gone": [{"exists": False}, "x"], "b": ["1"]},
    )
    assert index.matching({"b": "1"}) == ["r0", "r1", "r2"]
    assert index.matching({"gone": "x", "b": "1"}) == ["r1", "r2"]
    assert index.matching({"gone": "y"}) == ["r1"]


def test_a_shared_anchor_value_does_not_hide_the_other_conditions() -> None:
    rules = [{"source": ["shop"], "detail-type": [f"type-{i}"]} for i in range(50)]
    index = index_of(*rules, {"source": ["shop"]})
    assert index.matching({"source": "shop", "detail-type": "type-7"}) == ["r7", "r50"]
    assert index.matching({"source": "shop", "detail-type": "other"}) == ["r50"]
    assert index.matching({"source": "bank", "detail-type": "type-7"}) == []


def test_array_values_and_dotted_fields_are_matched_like_the_pattern_does() -> None:
    index = index_of({"detail": {"tags": ["vip"]}}, {"detail.tags": [{"prefix": "ne"}]})
    assert index.matching({"detail": {"tags": ["new", "vip"]}}) == ["r0", "r1"]
    assert index.matching({"detail.tags": "vip"}) == ["r0"]


# -- equivalence with EventPattern.matches ----------------------------------------------------

words = st.sampled_from(["", "a", "ab", "abc", "B", "Ab", "ba", "10.0.0.7", "x*y"])
numbers = st.sampled_from([0, 1, 1.0, 2.5, -3, 100, 5_000_000_000])
affixes = words.filter(bool)
wildcards = st.sampled_from(["a*", "*b", "a*b", "*", "x\\*y", "ab"])
values = words | numbers | st.just(6e9) | st.booleans() | st.none()


def _bounds(pair: tuple[int, int]) -> list[Any]:
    low, high = sorted(pair)
    return [">=", low, "<", high] if low < high else ["=", low]


anything_but = st.one_of(
    words,
    numbers,
    st.lists(words, min_size=1, max_size=2),
    st.lists(numbers, min_size=1, max_size=2),
    affixes.map(lambda s: {"prefix": s}),
    affixes.map(lambda s: {"suffix": s}),
    words.map(lambda s: {"equals-ignore-case": s}),
    st.lists(words, min_size=1, max_size=2).map(lambda s: {"equals-ignore-case": s}),
    wildcards.map(lambda s: {"wildcard": s}),
)
rules = st.one_of(
    values,
    words.map(lambda s: {"prefix": s}),
    words.map(lambda s: {"prefix": {"equals-ignore-case": s}}),
    words.map(lambda s: {"suffix": s}),
    words.map(lambda s: {"suffix": {"equals-ignore-case": s}}),
    words.map(lambda s: {"equals-ignore-case": s}),
    anything_but.map(lambda v: {"anything-but": v}),
    st.tuples(st.integers(-5, 5), st.integers(-5, 5)).map(lambda p: {"numeric": _bounds(p)}),
    st.sampled_from([">", "<=", "="]).map(lambda op: {"numeric": [op, 1]}),
    st.booleans().map(lambda flag: {"exists": flag}),
    wildcards.map(lambda s: {"wildcard": s}),
    st.just({"cidr": "10.0.0.0/24"}),
)
leaves = st.lists(rules, min_size=1, max_size=3)


def _fields(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(names), leaves, min_size=1, max_size=2)


patterns = st.builds(
    lambda top, nested, alternatives: {
        **top,
        **({"d": nested} if nested else {}),
        **({"$or": alternatives} if alternatives else {}),
    },
    _fields(["a", "b"]),
    st.none() | _fields(["e", "f"]),
    st.none() | st.lists(_fields(["c", "g", "d.x"]), min_size=2, max_size=3),
)
event_values = st.recursive(
    values,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["e", "f", "x"]), inner, max_size=2),
    max_leaves=6,
)
events = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "g", "d.x", "d.e"]), event_values)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(documents=st.lists(patterns, min_size=1, max_size=8), batch=st.lists(events, max_size=6))
def test_index_answers_exactly_what_matching_each_pattern_answers(
    documents: list[dict[str, Any]], batch: list[dict[str, Any]]
) -> None:
    compiled = [(i, EventPattern.parse(document)) for i, document in enumerate(documents)]
    index = RuleIndex(compiled)
    for event in batch:
        expected = [key for key, pattern in compiled if pattern.matches(event)]
        assert index.matching(event) == expected
