"""Schema patterns as ECMA-262 regular expressions, which is what OpenAPI says they are.

jsonschema matches `pattern` with Python's `re`, which differs from ECMA-262 where it matters
for validation: Python's `$` also matches before a trailing newline, its `\\s` takes U+001C-U+001F
and U+0085 but not U+FEFF, its `\\d` and `\\w` take non-ASCII digits and letters. Here
`pattern`, `patternProperties` (and so `additionalProperties`) and the `regex` format of a
declared schema run on `regress`, a Rust implementation of ECMA-262 regular expressions, with
the `u` flag as JSON Schema 2020-12 recommends.

`unevaluatedProperties` still matches `patternProperties` keys with `re`: jsonschema offers no
hook there, and that combination is rare; it is noted, not hidden.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any, cast

import regress
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

FLAGS = "u"


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> regress.Regex:
    """The compiled ECMA-262 expression; raises regress.RegressError if it is not one."""
    return regress.Regex(pattern, FLAGS)


def search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text`, as JavaScript's `RegExp.test` says."""
    return compile_pattern(pattern).find(text) is not None


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if search(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _additional_properties(
    validator: Any, allowed: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = sorted(
        name
        for name in instance
        if name not in properties and not any(search(p, name) for p in patterns)
    )
    if validator.is_type(allowed, "object"):
        for name in extras:
            yield from validator.descend(instance[name], allowed, path=name)
    elif allowed is False and extras:
        listed = ", ".join(repr(name) for name in extras)
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            regexes = ", ".join(repr(p) for p in sorted(patterns))
            yield ValidationError(f"{listed} {verb} not match any of the regexes: {regexes}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({listed} {verb} unexpected)"
            )


def _is_ecma_regex(instance: object) -> bool:
    if isinstance(instance, str):
        compile_pattern(instance)
    return True


FORMAT_CHECKER = FormatChecker(formats=())
FORMAT_CHECKER.checks("regex", raises=regress.RegressError)(_is_ecma_regex)

SchemaValidator = cast(
    type[Draft202012Validator],
    validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator,
        {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
        },
    ),
)
"""JSON Schema 2020-12 validation whose patterns are ECMA-262."""


def check_schema(schema: Mapping[str, Any]) -> None:
    """Raise jsonschema's SchemaError if `schema` is invalid, its patterns read as ECMA-262."""
    SchemaValidator.check_schema(dict(schema), format_checker=FORMAT_CHECKER)
