"""Intrinsic functions: every documented example, AWS's argument limits, parsing, properties."""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanstack.core.asl.data import AslError
from fanstack.core.asl.intrinsics import call_intrinsic, check_intrinsic, is_intrinsic

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def call(text: str, document: Any = None, **kwargs: Any) -> Any:
    check_intrinsic(text)
    return call_intrinsic(text, {} if document is None else document, {}, **kwargs)


def failure(text: str, document: Any = None) -> AslError:
    with pytest.raises(AslError) as caught:
        call(text, document)
    return caught.value


# https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html
# ("Intrinsics for arrays", the documented examples)
ARRAY = {"inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "lookingFor": 5, "index": 5}


def test_array_of_the_docs() -> None:
    assert call("States.Array($.Id)", {"Id": 123456}) == [123456]


def test_array_partition_of_the_docs() -> None:
    assert call("States.ArrayPartition($.inputArray,4)", ARRAY) == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]


def test_array_contains_of_the_docs() -> None:
    assert call("States.ArrayContains($.inputArray, $.lookingFor)", ARRAY) is True
    assert call("States.ArrayContains($.inputArray, 10)", ARRAY) is False


def test_array_range_of_the_docs() -> None:
    assert call("States.ArrayRange(1, 9, 2)") == [1, 3, 5, 7, 9]


def test_array_get_item_of_the_docs() -> None:
    assert call("States.ArrayGetItem($.inputArray, $.index)", ARRAY) == 6


def test_array_length_of_the_docs() -> None:
    assert call("States.ArrayLength($.inputArray)", ARRAY) == 9


def test_array_unique_of_the_docs() -> None:
    document = {"inputArray": [1, 2, 3, 3, 3, 3, 3, 3, 4]}
    assert call("States.ArrayUnique($.inputArray)", document) == [1, 2, 3, 4]


# ("Intrinsics for data encoding and decoding")
def test_base64_encode_of_the_docs() -> None:
    document = {"input": "Data to encode"}
    assert call("States.Base64Encode($.input)", document) == "RGF0YSB0byBlbmNvZGU="


def test_base64_decode_of_the_docs() -> None:
    # The page prints "Decoded data" as the result, but its input encodes "Data to encode".
    assert call("States.Base64Decode($.base64)", {"base64": "RGF0YSB0byBlbmNvZGU="}) == (
        "Data to encode"
    )


# ("Intrinsic for hash calculation")
def test_hash_of_the_docs() -> None:
    # The page prints a 39-digit SHA-1 (one "4" lost); this is the real digest of "input data".
    document = {"Data": "input data", "Algorithm": "SHA-1"}
    assert call("States.Hash($.Data, $.Algorithm)", document) == (
        "aaff4a450a104cd177d28d18d74485e8cae074b7"
    )


@pytest.mark.parametrize(
    ("algorithm", "name"),
    [("MD5", "md5"), ("SHA-1", "sha1"), ("SHA-256", "sha256"), ("SHA-384", "sha384"),
     ("SHA-512", "sha512")],
)
def test_hash_algorithms(algorithm: str, name: str) -> None:
    expected = hashlib.new(name, "héllo".encode()).hexdigest()
    assert call(f"States.Hash('héllo', '{algorithm}')") == expected


# ("Intrinsics for JSON data manipulation")
def test_json_merge_of_the_docs_is_shallow() -> None:
    document = {
        "json1": {"a": {"a1": 1, "a2": 2}, "b": 2}, "json2": {"a": {"a3": 1, "a4": 2}, "c": 3}
    }
    assert call("States.JsonMerge($.json1, $.json2, false)", document) == {
        "a": {"a3": 1, "a4": 2}, "b": 2, "c": 3
    }


def test_string_to_json_of_the_docs() -> None:
    document = {"escapedJsonString": '{"foo": "bar"}'}
    assert call("States.StringToJson($.escapedJsonString)", document) == {"foo": "bar"}


def test_json_to_string_of_the_docs() -> None:
    assert call("States.JsonToString($.unescapedJson)", {"unescapedJson": {"foo": "bar"}}) == (
        '{"foo":"bar"}'
    )


# ("Intrinsics for Math operations")
def test_math_random_of_the_docs_is_in_start_inclusive_end_exclusive() -> None:
    rng = random.Random(7)
    document = {"start": 1, "end": 3}
    draws = {call("States.MathRandom($.start, $.end)", document, rng=rng) for _ in range(200)}
    assert draws == {1, 2}
    assert 1 <= call("States.MathRandom($.start, $.end)", {"start": 1, "end": 999}) < 999


def test_math_random_with_a_seed_repeats() -> None:
    first = call("States.MathRandom(0, 999, 3)")
    assert all(call("States.MathRandom(0, 999, 3)") == first for _ in range(5))


def test_math_add_of_the_docs() -> None:
    assert call("States.MathAdd($.value1, $.step)", {"value1": 111, "step": -1}) == 110


# Non-integers are rounded as Java's Math.round does: LocalStack's test_math_add, recorded
# against AWS (tests/aws/services/stepfunctions/v2/intrinsic_functions/test_math_operations.py).
@pytest.mark.parametrize(
    ("first", "second", "total"),
    [(-9, 3, -6), (1.49, 1.50, 3), (-1.49, -1.50, -2), (1.50, 0, 2), (-1.50, 0, -1),
     (-1.51, 0, -2), (0.5, 0, 1), (2.5, 0, 3), (-0.5, 0.5, 1), (-2.5, 0, -2), (-3.5, 0, -3)],
)
def test_math_add_rounds_half_up(first: float, second: float, total: int) -> None:
    assert call("States.MathAdd($.a, $.b)", {"a": first, "b": second}) == total


# ("Intrinsic for String operation")
def test_string_split_of_the_docs() -> None:
    document = {"inputString": "1,2,3,4,5", "splitter": ","}
    assert call("States.StringSplit($.inputString, $.splitter)", document) == [
        "1", "2", "3", "4", "5"
    ]
    document = {"inputString": "This.is+a,test=string", "splitter": ".+,="}
    assert call("States.StringSplit($.inputString, $.splitter)", document) == [
        "This", "is", "a", "test", "string"
    ]


# ("Intrinsic for unique identifier generation")
def test_uuid_is_a_version_4_uuid() -> None:
    value = call("States.UUID()")
    assert UUID4.fullmatch(value)
    seeded = call("States.UUID()", rng=random.Random(1))
    assert call("States.UUID()", rng=random.Random(1)) == seeded


# ("Intrinsic for generic operation") and https://states-language.net/spec.html (Appendix B)
def test_format_of_the_docs() -> None:
    document = {"name": "Arnav", "template": "Hello, my name is {}."}
    text = "States.Format('Hello, my name is {}.', $.name)"
    assert call(text, document) == "Hello, my name is Arnav."
    assert call("States.Format($.template, $.name)", document) == "Hello, my name is Arnav."


def test_format_of_the_spec() -> None:
    text = "States.Format('Your name is {}, we are in the year {}', $.name, 2020)"
    assert call(text, {"name": "Foo"}) == "Your name is Foo, we are in the year 2020"
    text = "States.Format('Welcome to {} {}\\'s playlist.', $.firstName, $.lastName)"
    assert call(text, {"firstName": "John", "lastName": "Doe"}) == "Welcome to John Doe's playlist."


def test_format_renders_natural_text_and_keeps_escaped_braces() -> None:
    assert call("States.Format('{} {} {} {}', true, null, 1.5, 'x')") == "true null 1.5 x"
    assert call("States.Format('\\{\\} {} \\\\', 1)") == "{} 1 \\"


def test_array_of_the_spec() -> None:
    document = {"someJson": {"random": "abcdefg"}, "zebra": "stripe"}
    assert call("States.Array('Foo', 2020, $.someJson, null)", document) == [
        "Foo", 2020, {"random": "abcdefg"}, None
    ]


def test_string_to_json_and_json_to_string_of_the_spec() -> None:
    document = {"someString": '{"number": 20}'}
    assert call("States.StringToJson($.someString)", document) == {"number": 20}
    assert call("States.JsonToString($.someJson)", {"someJson": {"name": "Foo", "year": 2020}}) == (
        '{"name":"Foo","year":2020}'
    )


def test_nested_calls_and_context_paths() -> None:
    # The docs' nine-call example, with a template of two placeholders for its two values
    # (the page shows '{}.{}.{}' with two, which the spec's Format rule forbids).
    arn = "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/my-recipe/1.0.7"
    text = (
        "States.Format('{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem("
        "States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 0), States.ArrayGetItem("
        "States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), "
        "'.'), 1))"
    )
    assert call(text, {"ImageRecipe": {"Arn": arn}}) == "1.0"
    text = "States.Format('Today is {}', $$.DayOfWeek)"
    assert call_intrinsic(text, {}, {"DayOfWeek": "TUESDAY"}) == "Today is TUESDAY"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("States.Nope(1)", "not an intrinsic function"),
        ("States.ArrayLength()", "takes 1 arguments"),
        ("States.MathRandom(1)", "takes 2 to 3 arguments"),
        ("States.UUID(1)", "takes 0 arguments"),
        ("States.Format()", "at least 1"),
        ("States.Format('{} {}', 1)", "placeholders"),
        ("States.Array('a\\x')", "open escape"),
        ("States.Array('abc)", "unterminated"),
        ("States.Array(1) extra", "after the closing"),
        ("States.Array(1 2)", "expected ','"),
        ("States.Array($.[)", "not a valid JSONPath"),
        ("States.Array(" + ", ".join(["States.Array(1)"] * 10) + ")", "11 intrinsic calls"),
    ],
)
def test_check_intrinsic_names_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        check_intrinsic(text)


def test_ten_calls_are_allowed() -> None:
    check_intrinsic("States.Array(" + ", ".join(["States.Array(1)"] * 9) + ")")


@pytest.mark.parametrize(
    ("text", "document"),
    [
        ("States.ArrayPartition($.a, 0)", {"a": [1]}),
        ("States.ArrayPartition($.a, -1)", {"a": [1]}),
        ("States.ArrayPartition($.a, 2)", {"a": "abc"}),
        ("States.ArrayContains($.a, 1)", {"a": {"x": 1}}),
        ("States.ArrayRange(1, 9, 0)", {}),
        ("States.ArrayRange(1, 1001, 1)", {}),
        ("States.ArrayRange('1', 9, 1)", {}),
        ("States.ArrayGetItem($.a, 3)", {"a": [1, 2, 3]}),
        ("States.ArrayGetItem($.a, -1)", {"a": [1, 2, 3]}),
        ("States.ArrayGetItem($.a, 0.5)", {"a": [1, 2, 3]}),
        ("States.ArrayLength($.a)", {"a": "abc"}),
        ("States.ArrayUnique($.a)", {"a": 1}),
        ("States.Base64Encode($.a)", {"a": "x" * 10_001}),
        ("States.Base64Encode($.a)", {"a": 1}),
        ("States.Base64Decode('***')", {}),
        ("States.Base64Decode($.a)", {"a": "A" * 10_004}),
        ("States.Hash('x', 'SHA-3')", {}),
        ("States.Hash('x', 'sha-1')", {}),
        ("States.Hash($.a, 'MD5')", {"a": "x" * 10_001}),
        ("States.Hash($.a, 'MD5')", {"a": {"b": 1}}),
        ("States.JsonMerge($.a, $.b, true)", {"a": {}, "b": {}}),
        ("States.JsonMerge($.a, $.b, false)", {"a": {}, "b": [1]}),
        ("States.JsonMerge($.a, $.b, 'false')", {"a": {}, "b": {}}),
        ("States.MathAdd(2147483648, 1)", {}),
        ("States.MathAdd('1', 1)", {}),
        ("States.MathAdd(true, 1)", {}),
        ("States.MathRandom(5, 5)", {}),
        ("States.MathRandom(-2147483649, 5)", {}),
        ("States.StringSplit($.a, ',')", {"a": ["x"]}),
        ("States.StringToJson($.a)", {"a": "{not json"}),
        ("States.StringToJson($.a)", {"a": {"b": 1}}),
        ("States.Format($.t, $.o)", {"t": "{}", "o": {"b": 1}}),
        ("States.Format($.t, 1)", {"t": "no placeholder"}),
    ],
)
def test_invalid_arguments_are_an_intrinsic_failure(text: str, document: Any) -> None:
    error = failure(text, document)
    assert error.error == "States.IntrinsicFailure"
    assert text.split("(")[0] in error.cause


def test_array_range_limits_and_rounding() -> None:
    assert len(call("States.ArrayRange(1, 1000, 1)")) == 1000
    assert call("States.ArrayRange(1.5, 9.4, 2)") == [2, 4, 6, 8]
    assert call("States.ArrayRange(9, 1, -4)") == [9, 5, 1]
    assert call("States.ArrayRange(5, 1, 1)") == []


def test_array_partition_rounds_the_chunk_size() -> None:
    assert call("States.ArrayPartition($.a, 1.5)", {"a": [1, 2, 3]}) == [[1, 2], [3]]


def test_array_contains_and_unique_use_json_equality() -> None:
    assert call("States.ArrayContains($.a, 1)", {"a": [True]}) is False
    document = {"a": [{"x": [1, 2]}], "b": {"x": [1, 2]}}
    assert call("States.ArrayContains($.a, $.b)", document) is True
    document = {"a": [1, True, 1.0, {"a": 1}, {"a": 1}, None, None]}
    assert call("States.ArrayUnique($.a)", document) == [1, True, {"a": 1}, None]


def test_base64_decode_accepts_missing_padding() -> None:
    assert call("States.Base64Decode('YQ')") == "a"


def test_a_path_argument_that_selects_nothing_is_a_runtime_error() -> None:
    assert failure("States.Array($.missing)").error == "States.Runtime"


def test_call_without_check_reports_a_parse_error_as_intrinsic_failure() -> None:
    with pytest.raises(AslError) as caught:
        call_intrinsic("States.Nope()", {}, {})
    assert caught.value.error == "States.IntrinsicFailure"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("States.Array(1)", True), ("  States.UUID()", True), ("$.a", False), ("hello", False),
     ("States.Array", False), ("$States.Array(1)", False)],
)
def test_is_intrinsic(text: str, expected: bool) -> None:
    assert is_intrinsic(text) is expected


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@given(value=JSON)
def test_json_to_string_then_string_to_json_is_identity(value: Any) -> None:
    text = call("States.JsonToString($.v)", {"v": value})
    assert json.loads(text) == value
    assert call("States.StringToJson($.t)", {"t": text}) == value


@given(items=st.lists(st.integers(), max_size=40), size=st.integers(1, 12))
def test_array_partition_then_concatenation_is_identity(items: list[int], size: int) -> None:
    chunks = call("States.ArrayPartition($.a, $.n)", {"a": items, "n": size})
    assert [item for chunk in chunks for item in chunk] == items
    assert all(len(chunk) == size for chunk in chunks[:-1])
    assert all(0 < len(chunk) <= size for chunk in chunks)


@given(
    start=st.integers(-500, 500), end=st.integers(-500, 500), step=st.integers(-50, 50).filter(bool)
)
def test_array_range_is_an_inclusive_range(start: int, end: int, step: int) -> None:
    expected = list(range(start, end + (1 if step > 0 else -1), step))
    assert call("States.ArrayRange($.s, $.e, $.t)", {"s": start, "e": end, "t": step}) == expected


@given(text=st.text(max_size=200))
def test_base64_encode_then_decode_is_identity(text: str) -> None:
    encoded = call("States.Base64Encode($.t)", {"t": text})
    assert call("States.Base64Decode($.e)", {"e": encoded}) == text


@given(items=st.lists(st.integers(0, 5) | st.text(max_size=1), max_size=20))
def test_array_unique_keeps_first_occurrences_in_order(items: list[Any]) -> None:
    unique = call("States.ArrayUnique($.a)", {"a": items})
    assert unique == list(dict.fromkeys(items))
    assert call("States.ArrayUnique($.a)", {"a": unique}) == unique


@given(text=st.text(alphabet="ab,;", max_size=30))
def test_string_split_drops_empty_parts(text: str) -> None:
    assert call("States.StringSplit($.t, ',;')", {"t": text}) == [
        part for part in re.split("[,;]", text) if part
    ]
