"""Strict JSON: no NaN or Infinity, finite numbers, bounded nesting, fields named."""

from __future__ import annotations

import math

import pytest

from fanstack.gateway.strict_json import MAX_DEPTH, InvalidJson, check, find_problem, loads


@pytest.mark.parametrize(
    ("text", "pointer"),
    [
        ("NaN", ""),
        ('{"a": NaN}', "/a"),
        ('{"a": [1, {"b": Infinity}]}', "/a/1/b"),
        ("[-Infinity]", "/0"),
        ('{"total": 1e999}', "/total"),
        ('{"x/y": {"~": -1e400}}', "/x~1y/~0"),
    ],
)
def test_tokens_that_are_not_json_are_rejected_with_their_place(text: str, pointer: str) -> None:
    with pytest.raises(InvalidJson) as caught:
        loads(text)
    assert caught.value.pointer == pointer


def test_the_first_bad_value_in_document_order_is_named() -> None:
    with pytest.raises(InvalidJson) as caught:
        loads('{"a": 1, "b": NaN, "c": Infinity}')
    assert (caught.value.pointer, caught.value.reason.split()[0]) == ("/b", "NaN")


def test_syntax_errors_are_invalid_json() -> None:
    with pytest.raises(InvalidJson, match="not valid JSON"):
        loads("{oops")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 999, 1000, 100_000])
def test_nesting_is_bounded(depth: int) -> None:
    with pytest.raises(InvalidJson, match=f"nested more than {MAX_DEPTH} levels"):
        loads("[" * depth + "]" * depth)
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def test_ordinary_json_is_parsed_as_json() -> None:
    assert loads('{"a": [1, 2.5, "x", true, null, {"b": -0.0}]}') == {
        "a": [1, 2.5, "x", True, None, {"b": -0.0}]
    }
    assert loads("1e308") == 1e308


def test_check_refuses_values_that_would_not_serialize_as_json() -> None:
    check({"a": [1, "x", None, {"b": 2.5}]})
    for value, pointer in (
        ({"a": {"b": math.nan}}, "/a/b"),
        ([1, math.inf], "/1"),
        ({"s": {1, 2}}, "/s"),
    ):
        with pytest.raises(InvalidJson) as caught:
            check(value)
        assert caught.value.pointer == pointer


def test_find_problem_is_none_for_json() -> None:
    assert find_problem({"a": [1, "2", 3.0, False, None]}) is None
