"""Request validation with plain values: coercion, media types, strict JSON, every field named."""

from __future__ import annotations

import math
from typing import Any

import pytest

from fanstack.gateway.media import UnsupportedMediaType
from fanstack.gateway.validation import FieldError, RequestValidator, coerce

NUMBER, INTEGER = {"type": "number"}, {"type": "integer"}


@pytest.mark.parametrize(
    ("raw", "schema", "expected"),
    [
        ("5", INTEGER, 5),
        ("-12", INTEGER, -12),
        ("1_000", INTEGER, "1_000"),
        (" 5", INTEGER, " 5"),
        ("\u0665", INTEGER, "\u0665"),  # an Arabic-Indic five is not a JSON digit
        ("2.5", NUMBER, 2.5),
        ("-1e3", NUMBER, -1000.0),
        ("NaN", NUMBER, "NaN"),
        ("nan", NUMBER, "nan"),
        ("Infinity", NUMBER, "Infinity"),
        ("-inf", NUMBER, "-inf"),
        ("1e999", NUMBER, "1e999"),
        (".5", NUMBER, ".5"),
        ("true", {"type": "boolean"}, True),
        (["1", "x"], {"type": "array", "items": INTEGER}, [1, "x"]),
    ],
)
def test_parameters_coerce_by_json_number_grammar(raw: Any, schema: Any, expected: Any) -> None:
    value = coerce(raw, schema)
    assert value == expected and type(value) is type(expected)
    assert not (isinstance(value, float) and not math.isfinite(value))


def validator(body_schema: dict[str, Any] | None = None) -> RequestValidator:
    parameters = [{"name": "min", "in": "query", "schema": NUMBER}]
    return RequestValidator(parameters, body_schema, body_required=body_schema is not None)


def errors_for(
    body: bytes, content_type: str | None = "application/json", query: str | None = None
) -> list[FieldError]:
    check = validator({"type": "object", "properties": {"n": NUMBER}})
    params = {"min": [query]} if query is not None else {}
    return check.validate({}, params, {}, body, content_type)[2]


def test_nan_anywhere_is_a_field_error() -> None:
    assert errors_for(b'{"n": NaN}') == [
        FieldError("body", "/n", "NaN is not valid JSON (JSON has no NaN or Infinity)")
    ]
    assert [(e.location, e.name) for e in errors_for(b"{}", query="NaN")] == [("query", "min")]


def test_a_body_in_another_media_type_raises_unsupported() -> None:
    with pytest.raises(UnsupportedMediaType):
        errors_for(b"{}", "application/jsonp-evil")
    with pytest.raises(UnsupportedMediaType):
        errors_for(b"{}", "application/json; charset=latin1")
    assert errors_for(b'{"n": 1}', None) == []


def test_an_undecodable_body_is_a_field_error() -> None:
    (error,) = errors_for(b'{"n": "\xff"}', "application/json; charset=utf-8")
    assert (error.location, error.name) == ("body", "")
    assert "utf-8" in error.message


def test_a_body_without_schema_is_json_if_declared_else_text() -> None:
    check = validator()
    assert check.validate({}, {}, {}, b'{"a": 1}', "application/json")[1] == {"a": 1}
    assert check.validate({}, {}, {}, b"plain", None)[1] == "plain"
    assert check.validate({}, {}, {}, "ü".encode("utf-16"), "text/plain; charset=utf-16")[1] == "ü"
    (error,) = check.validate({}, {}, {}, b"[Infinity]", "application/json")[2]
    assert error.name == "/0"
