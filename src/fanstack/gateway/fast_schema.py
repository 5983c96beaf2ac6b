"""A compiled first pass over request schemas: fastjsonschema says at once that a value is
valid; jsonschema, as before, says why one is not.

jsonschema walks a schema for every request (about 200 us for the marketplace's order and
parameters, the largest share of a request's CPU on the event loop). fastjsonschema turns a
schema into Python code once. It speaks draft-07 and fanstack validates against 2020-12, so a
schema gets a compiled pass only when every keyword in it means the same in both (`SAME`), with
two rewrites that keep fanstack's meaning:

- `pattern` becomes a format answered by the same ECMA-262 matcher jsonschema uses here
  (`patterns.search`), where fastjsonschema would use Python's `re`;
- `format` is dropped: fanstack's validators treat it as an annotation (2020-12's default),
  where fastjsonschema would assert its own idea of "email".

`enum` and `const` qualify only with strings and null (Python's `True == 1` would let a `true`
through an enum of 1), `$ref` only to a non-recursive `#/...` pointer, with the keywords beside
it moved into an `allOf` (draft-07 ignores them). Anything else (`patternProperties`,
`prefixItems`, `unevaluatedProperties`, `multipleOf`, ...) leaves the schema to jsonschema alone.

A pass that says "valid" is trusted. One that says "invalid" (or fails) hands the value to
jsonschema, which lists every error and has the last word where the two differ in the safe
direction (fastjsonschema's `uniqueItems` counts 1 and true as the same).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import fastjsonschema
from jsonschema import ValidationError
from jsonschema.protocols import Validator

from fanstack.gateway.patterns import search

# Keywords that assert nothing here (`format` included: an annotation in 2020-12).
ANNOTATIONS = frozenset(
    {
        "title", "description", "default", "examples", "example", "deprecated", "readOnly",
        "writeOnly", "$comment", "$schema", "format",
    }
)  # fmt: skip
# Keywords that mean the same in draft-07 and 2020-12 (annotations included).
SAME = ANNOTATIONS | frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "minItems",
        "maxItems", "uniqueItems", "minLength", "maxLength", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "minProperties", "maxProperties", "enum",
        "const", "allOf", "anyOf", "oneOf", "not", "$ref", "pattern",
    }
)  # fmt: skip
_SUBSCHEMA = ("items", "additionalProperties", "not")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


class NotCompiled(Exception):
    """The schema uses something whose meaning could differ: jsonschema alone checks it."""


def compile_check(root: Mapping[str, Any]) -> Callable[[Any], bool] | None:
    """A function saying whether a value is valid against `root` (a schema whose `$ref`s point
    into itself), or None if the schema is left to jsonschema."""
    try:
        converter = _Converter(root)
        fast_root = converter.root()
        check = fastjsonschema.compile(
            fast_root,
            formats=converter.formats,
            use_default=False,  # never fill defaults into the request's own value
        )
    except NotCompiled:
        return None
    except Exception:  # a schema the compiler cannot take: jsonschema checks it, as before
        return None

    def valid(value: Any) -> bool:
        try:
            check(value)
        except Exception:  # invalid, or a failure of the compiled code: jsonschema decides
            return False
        return True

    return valid


class CheckedValidator:
    """jsonschema's validator behind a compiled pass: `iter_errors` of a value the pass finds
    valid is empty without jsonschema's walk."""

    def __init__(self, validator: Validator, check: Callable[[Any], bool] | None) -> None:
        self.validator = validator
        self.check = check

    def iter_errors(self, value: Any) -> Iterable[ValidationError]:
        """Every error of `value` (none, at once, when the compiled pass says it is valid)."""
        if self.check is not None and self.check(value):
            return ()
        return self.validator.iter_errors(value)


class _Converter:
    """The draft-07 copy of a schema, and the formats its patterns became."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.source = root
        self.formats: dict[str, Callable[[str], bool]] = {}
        self.targets: dict[str, Any] = {}  # converted `$ref` targets by pointer
        self._converting: set[str] = set()

    def root(self) -> dict[str, Any]:
        converted = self.schema(self.source)
        if not isinstance(converted, dict):
            raise NotCompiled("the root is not an object schema")
        fast = {key: value for key, value in converted.items() if key != "components"}
        for pointer, target in self.targets.items():
            _place(fast, pointer, target)
        return fast

    def schema(self, schema: Any) -> Any:
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, Mapping):
            raise NotCompiled("a subschema is not an object")
        unknown = set(schema) - SAME - {"components"}
        if unknown:
            raise NotCompiled(f"keywords {sorted(unknown)}")
        fast: dict[str, Any] = {}
        applied: list[Any] = []
        for key, value in schema.items():
            if key in ANNOTATIONS or key == "components":
                continue
            if key == "$ref":
                applied.append({"$ref": self.ref(value)})
            elif key == "pattern":
                applied.append({"format": self.pattern(value)})
            elif key in ("enum", "const"):
                values = value if key == "enum" else [value]
                if not isinstance(values, list) or not all(
                    v is None or isinstance(v, str) for v in values
                ):
                    raise NotCompiled(f"{key} of other than strings and null")
                fast[key] = value
            elif key == "properties":
                if not isinstance(value, Mapping):
                    raise NotCompiled("properties is not an object")
                fast[key] = {name: self.schema(sub) for name, sub in value.items()}
            elif key in _SUBSCHEMA:
                fast[key] = self.schema(value)
            elif key in _SUBSCHEMA_LISTS:
                if not isinstance(value, list):
                    raise NotCompiled(f"{key} is not a list")
                fast[key] = [self.schema(sub) for sub in value]
            else:
                fast[key] = value
        if applied:
            fast["allOf"] = [*fast.get("allOf", []), *applied]
        return fast

    def ref(self, pointer: Any) -> str:
        if not isinstance(pointer, str) or not pointer.startswith("#/"):
            raise NotCompiled(f"$ref {pointer!r}")
        if pointer in self._converting:
            raise NotCompiled(f"recursive $ref {pointer!r}")
        if pointer not in self.targets:
            node: Any = self.source
            for token in pointer[2:].split("/"):
                token = token.replace("~1", "/").replace("~0", "~")
                if not isinstance(node, Mapping) or token not in node:
                    raise NotCompiled(f"$ref {pointer!r} points nowhere")
                node = node[token]
            self._converting.add(pointer)
            self.targets[pointer] = self.schema(node)
            self._converting.discard(pointer)
        return pointer

    def pattern(self, pattern: Any) -> str:
        if not isinstance(pattern, str):
            raise NotCompiled("pattern is not a string")
        # A plain name: fastjsonschema writes it into the code it generates.
        name = f"fanstack-pattern-{len(self.formats)}"
        self.formats[name] = functools.partial(search, pattern)
        return name


def _place(root: dict[str, Any], pointer: str, target: Any) -> None:
    """Put `target` at `pointer` (`#/a/b`) inside `root`, making the objects on the way."""
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer[2:].split("/")]
    node = root
    for token in tokens[:-1]:
        node = node.setdefault(token, {})
    node[tokens[-1]] = target
