"""Strict JSON: no NaN or Infinity, finite numbers, bounded nesting, fields named."""

from __future__ import annotations

import json
import math

import pytest

from fanstack.gateway.strict_json import MAX_DEPTH, InvalidJson, check, dumps, find_problem, loads


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


@pytest.mark.parametrize(
    "text",
    [
        '"\\ud800"',  # a lone surrogate escape: json takes it, and so does fanstack
        "123456789012345678901234567890",  # beyond 64 bits: an exact int
        '{"a": 1, "a": 2}',  # a repeated key: the last one stands
        "-0",
        "1e-400",  # below the smallest double: 0.0
        '  {"x": [1.5, 2.25e10, "\\u00e9", true, null]}\n',
        '{"s": "tab\\tnew\\nline"}',
    ],
)
def test_what_json_reads_is_read_the_same(text: str) -> None:
    assert loads(text) == json.loads(text)
    assert type(loads(text)) is type(json.loads(text))


@pytest.mark.parametrize(
    "text", ['"raw\tcontrol"', "\ufeff{}", "", "[1,]", "{'a': 1}", "1e999", "[NaN]"]
)
def test_what_strict_json_refuses_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(InvalidJson) as refused:
        loads(text)
    assert refused.value.reason


def test_dumps_is_the_compact_text_a_message_body_is_stored_as() -> None:
    value = {"b": [1, 2.5, "é"], "a": None}
    assert dumps(value) == json.dumps(value, separators=(",", ":"))
    with pytest.raises(InvalidJson) as refused:
        dumps({"x": [float("nan")]})
    assert refused.value.pointer == "/x/0"
