"""Message attributes: conversion from plain values, the SNS form, and every validation rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanstack.core.errors import (
    InvalidAttributeName,
    InvalidAttributeValue,
    InvalidMessageContents,
    InvalidParameterValue,
    MessageTooLarge,
    MissingParameter,
)
from fanstack.core.message import (
    TRACE_CONTEXT_ATTRIBUTE,
    MessageAttribute,
    check_message,
    check_ordering_id,
    decode_attributes,
    decode_trace_context,
    encode_attributes,
    message_size,
    to_attribute,
    to_attributes,
)


@pytest.mark.parametrize(
    ("value", "data_type", "text"),
    [
        ("red", "String", "red"),
        (7, "Number", "7"),
        (7.0, "Number", "7"),
        (2.5, "Number", "2.5"),
        (True, "String", "true"),
        (["a", 1, None], "String.Array", '["a", 1, null]'),
    ],
)
def test_plain_values_map_to_sns_data_types(value: object, data_type: str, text: str) -> None:
    attribute = to_attribute("k", value)
    assert (attribute.data_type, attribute.string_value) == (data_type, text)


def test_bytes_become_binary() -> None:
    assert to_attribute("k", b"\x00\xff") == MessageAttribute("Binary", binary_value=b"\x00\xff")


def test_explicit_sns_form_is_accepted_with_custom_subtypes() -> None:
    attribute = to_attribute("price", {"DataType": "Number.float", "StringValue": "1.50"})
    assert attribute.base_type == "Number"
    assert attribute.value == 1.5
    binary = to_attribute("blob", {"DataType": "Binary", "BinaryValue": "AAE="})
    assert binary.value == b"\x00\x01"


@pytest.mark.parametrize(
    "name", ["", "has space", ".lead", "trail.", "a..b", "AWS.thing", "amazon.x", "x" * 257, "é"]
)
def test_invalid_attribute_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidAttributeName):
        to_attribute(name, "v")


@pytest.mark.parametrize(
    "raw",
    [
        {"DataType": "Number", "StringValue": "abc"},
        {"DataType": "Number", "StringValue": "1e200"},
        {"DataType": "Number", "StringValue": "NaN"},
        {"DataType": "Boolean", "StringValue": "true"},
        {"DataType": "String", "StringValue": ""},
        {"DataType": "String.Array", "StringValue": "not json"},
        {"DataType": "String.Array", "StringValue": '[{"nested": 1}]'},
        {"DataType": "Binary"},
        {"DataType": "Binary", "BinaryValue": ""},
        b"",
        {"DataType": "Number", "StringValue": "1" * 39},
        {"DataType": "Number", "StringValue": "1." + "2" * 38},
        {"DataType": "Number", "StringValue": " 5"},
        {"DataType": "Number", "StringValue": "5 "},
        {"DataType": "Number", "StringValue": "\t5"},
        {"StringValue": "no type"},
        float("inf"),
        {"a": "dict without DataType"},
    ],
)
def test_invalid_attribute_values_are_rejected(raw: object) -> None:
    with pytest.raises(InvalidAttributeValue):
        to_attribute("k", raw)


@pytest.mark.parametrize(
    "text", ["1" * 38, "-0.000" + "7" * 38, "1" + "0" * 40, "1." + "2" * 37 + "000", "1E+100"]
)
def test_numbers_of_up_to_38_significant_digits_are_accepted(text: str) -> None:
    to_attribute("k", {"DataType": "Number", "StringValue": text})


def test_a_number_over_38_significant_digits_names_the_limit() -> None:
    with pytest.raises(InvalidAttributeValue, match="39 significant digits; the limit is 38"):
        to_attribute("k", {"DataType": "Number", "StringValue": "9" * 39})


def test_more_than_ten_attributes_is_rejected_naming_the_limit() -> None:
    with pytest.raises(InvalidParameterValue, match="limit is 10"):
        to_attributes({f"a{i}": "v" for i in range(11)})


def test_message_size_counts_body_names_types_and_values() -> None:
    attributes = to_attributes({"ab": "xyz"})
    assert message_size("body", attributes) == 4 + 2 + len("String") + 3


def test_check_message_enforces_size_and_characters() -> None:
    check_message("x" * 10, {}, max_bytes=10, where="q")
    with pytest.raises(MessageTooLarge, match="limit is 10"):
        check_message("x" * 11, {}, max_bytes=10, where="q")
    with pytest.raises(InvalidMessageContents, match="U\\+FFFE"):
        check_message("\ufffe", {}, max_bytes=10, where="q")
    with pytest.raises(MissingParameter, match="empty") as empty:
        check_message("", {}, max_bytes=10, where="q")
    assert empty.value.code == "MissingParameter"


def test_a_message_too_long_has_sqs_error_code() -> None:
    with pytest.raises(MessageTooLarge) as caught:
        check_message("x" * 11, {}, max_bytes=10, where="q")
    assert caught.value.code == "InvalidParameterValue"


@pytest.mark.parametrize(
    "value", ["a", "x" * 128, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "Order-1:eu/42"]
)
def test_ordering_ids_of_letters_digits_and_punctuation_are_accepted(value: str) -> None:
    check_ordering_id("group_id", value)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("group 123", "holds ' '"),
        ("x" * 129, "1-128 characters, got 129"),
        ("", "1-128 characters, got 0"),
        ("caf\u00e9", "holds '\u00e9'"),
        (123, "got 123"),
    ],
)
def test_ordering_ids_outside_the_rule_are_rejected_naming_it(value: object, fragment: str) -> None:
    with pytest.raises(InvalidParameterValue, match="group_id") as caught:
        check_ordering_id("group_id", value)
    assert fragment in str(caught.value)


values = st.one_of(
    st.text(min_size=1).filter(
        lambda s: (
            "\x00" not in s
            and all(
                c in "\t\n\r"
                or 0x20 <= ord(c) <= 0xD7FF
                or 0xE000 <= ord(c) <= 0xFFFD
                or ord(c) >= 0x10000
                for c in s
            )
        )
    ),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.binary(min_size=1),
    st.lists(st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none()), max_size=4),
)


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,10}", fullmatch=True), values, max_size=10
    )
)
def test_attributes_survive_the_storage_round_trip(raw: dict[str, object]) -> None:
    attributes = to_attributes(raw)
    decoded = decode_attributes(encode_attributes(attributes))
    assert decoded == attributes
    assert {name: a.value for name, a in decoded.items()} == {
        name: list(v) if isinstance(v, list) else v for name, v in raw.items()
    }


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,10}", fullmatch=True), values, max_size=9
    ),
    st.text(min_size=1, max_size=40),
)
def test_the_trace_context_is_stored_beside_the_attributes_and_read_apart(
    raw: dict[str, object], carried: str
) -> None:
    import json

    from fanstack.core.message import with_trace_context

    attributes = to_attributes(raw)
    text = encode_attributes(with_trace_context(attributes, carried))
    assert text is not None
    # The stored form is one JSON object, the trace context its last entry.
    whole = json.loads(text)
    assert list(whole)[-1] == TRACE_CONTEXT_ATTRIBUTE
    assert whole[TRACE_CONTEXT_ATTRIBUTE] == {"DataType": "String", "StringValue": carried}
    assert decode_attributes(text) == attributes
    assert decode_trace_context(text) == carried


def test_a_trace_context_stored_before_other_attributes_is_read_too() -> None:
    import json

    entry = {"DataType": "String", "StringValue": "ctx"}
    market = {"DataType": "String", "StringValue": "eu"}
    for order in ((TRACE_CONTEXT_ATTRIBUTE, "market"), ("a", TRACE_CONTEXT_ATTRIBUTE, "market")):
        stored = {name: entry if name == TRACE_CONTEXT_ATTRIBUTE else market for name in order}
        text = json.dumps(stored)
        assert decode_trace_context(text) == "ctx"
        assert set(decode_attributes(text)) == set(order) - {TRACE_CONTEXT_ATTRIBUTE}
    # A value that spells the entry out is a value: quotes inside it are escaped.
    lookalike = {"x": MessageAttribute("String", f', "{TRACE_CONTEXT_ATTRIBUTE}": {{"a": 1}}}}')}
    text = encode_attributes(lookalike)
    assert decode_trace_context(text) is None
    assert decode_attributes(text) == lookalike


def test_a_body_with_nan_is_refused_rather_than_stored_as_non_json() -> None:
    from fanstack.core.message import body_text

    with pytest.raises(InvalidParameterValue, match="not valid JSON"):
        body_text({"total": float("nan")})
    assert body_text({"total": 1.5}) == '{"total":1.5}'
