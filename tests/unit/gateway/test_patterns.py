"""Schema patterns are ECMA-262 regular expressions, not Python's."""

from __future__ import annotations

from typing import Any

import pytest

from fanstack.core.errors import InvalidParameterValue
from fanstack.gateway.patterns import SchemaValidator, check_schema, search
from fanstack.gateway.validation import RequestValidator

EMAIL = r"^[^@\s]+@[^@\s]+$"


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        (EMAIL, "ada@example.com", True),
        (EMAIL, "ada@example.com\n", False),  # Python's `$` matches before a final newline
        (EMAIL, "ada\ufeff@example.com", False),  # U+FEFF is white space in ECMA-262 only
        (EMAIL, "ada\x1c@example.com", True),  # U+001C is white space in Python only
        (EMAIL, "ada\x85@example.com", True),  # U+0085 likewise
        (r"^\d+$", "\u0663", False),  # \d is ASCII in ECMA-262
        (r"^\w+$", "é", False),
        (r"^(?<year>[0-9]{4})$", "2026", True),  # a named group, ECMA-262 spelling
        (r"^.$", "\U0001f600", True),  # one code point with the u flag
    ],
)
def test_search_follows_ecma_262(pattern: str, text: str, matches: bool) -> None:
    assert search(pattern, text) is matches


def test_schema_keywords_use_ecma_262() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"email": {"type": "string", "pattern": EMAIL}},
        "patternProperties": {r"^x-\d+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    check_schema(schema)
    validator = SchemaValidator(schema)

    def errors(instance: dict[str, Any]) -> list[str]:
        return [error.message for error in validator.iter_errors(instance)]

    assert errors({"email": "a@b", "x-1": 1}) == []
    assert errors({"email": "a@b\n"}) == [f"'a@b\\n' does not match {EMAIL!r}"]
    assert errors({"x-1": "one"}) == ["'one' is not of type 'integer'"]
    assert "does not match any of the regexes" in errors({"x-\u0663": 1})[0]


def test_a_pattern_that_is_not_ecma_262_is_rejected_when_declared() -> None:
    with pytest.raises(InvalidParameterValue, match="pattern"):
        RequestValidator([], {"type": "string", "pattern": "(?P<x>a)"}, body_required=True)
    with pytest.raises(InvalidParameterValue, match="shop"):
        RequestValidator(
            [{"name": "shop", "in": "path", "schema": {"type": "string", "pattern": "a{"}}],
            None,
            body_required=False,
        )
