"""The compiled first pass over request schemas never lets through what jsonschema refuses."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanstack.gateway.fast_schema import compile_check
from fanstack.gateway.patterns import SchemaValidator
from fanstack.gateway.validation import upgrade_schema

MARKETPLACE = yaml.safe_load(
    (Path(__file__).parents[3] / "examples/marketplace/openapi.yaml").read_text()
)
COMPONENTS = upgrade_schema(MARKETPLACE["components"])


def _root(schema: dict[str, Any]) -> dict[str, Any]:
    return {**upgrade_schema(schema), "components": COMPONENTS}


SCHEMAS = {
    "order": _root({"$ref": "#/components/schemas/Order"}),
    "shop_id": _root(COMPONENTS["parameters"]["shop_id"]["schema"]),
    "keywords": _root(
        {
            "type": "object",
            "required": ["name"],
            "minProperties": 1,
            "maxProperties": 4,
            "properties": {
                "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^\\d+$"},
                "n": {"type": ["integer", "null"], "minimum": 0, "exclusiveMaximum": 10},
                "x": {"type": "number", "exclusiveMinimum": -1.5, "maximum": 2},
                "tags": {"type": "array", "items": {"enum": ["a", "b", None]}, "uniqueItems": True},
                "kind": {"const": "k"},
                "any": {"anyOf": [{"type": "string"}, {"type": "boolean"}]},
                "one": {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 5}]},
                "no": {"not": {"type": "string"}},
                "ref": {"$ref": "#/components/schemas/Order/properties/shipping", "title": "t"},
            },
            "additionalProperties": {"type": "string", "format": "email"},
        }
    ),
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-20, 20)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.sampled_from(["", "a", "ab", "12", "123\n", "١٢", "DE", "DE\n", "e@x", "k", "b"])
    | st.text(max_size=6),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            ["name", "n", "x", "tags", "kind", "any", "one", "no", "ref", "other", "country"]
        ),
        children,
        max_size=5,
    ),
    max_leaves=12,
)


def _order_variants() -> st.SearchStrategy[Any]:
    example = MARKETPLACE["paths"]["/market/{market}/shops/{shop_id}/orders"]["post"][
        "requestBody"
    ]["content"]["application/json"]["example"]

    def mutate(value: Any, path: list[str], replacement: Any) -> Any:
        mutated = copy.deepcopy(value)
        node = mutated
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = replacement
        return mutated

    paths = st.sampled_from(
        [
            ["order_id"],
            ["customer", "email"],
            ["customer", "id"],
            ["items"],
            ["currency"],
            ["shipping", "country"],
            ["shipping", "extra"],
        ]
    )
    return st.builds(mutate, st.just(example), paths, json_values)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_what_the_compiled_pass_accepts_jsonschema_accepts(name: str, value: Any) -> None:
    check = compile_check(SCHEMAS[name])
    assert check is not None
    before = copy.deepcopy(value)
    fast = check(value)
    errors = list(SchemaValidator(SCHEMAS[name]).iter_errors(value))
    if fast:
        assert errors == [], f"the compiled pass let through {value!r}"
    assert value == before  # nothing filled in


@settings(max_examples=400, deadline=None)
@given(order=_order_variants())
def test_orders_a_field_off_are_judged_as_jsonschema_judges_them(order: Any) -> None:
    check = compile_check(SCHEMAS["order"])
    assert check is not None
    errors = list(SchemaValidator(SCHEMAS["order"]).iter_errors(order))
    assert check(order) == (errors == [])


def test_patterns_are_ecma_262() -> None:
    check = compile_check(SCHEMAS["shop_id"])
    assert check is not None
    assert check("shop_1")
    assert not check("shop_1\n")  # Python's `$` would match before the newline
    digits = compile_check(_root({"type": "string", "pattern": "^\\d+$"}))
    assert digits is not None
    assert digits("12") and not digits("١٢")  # ECMA's \d is ASCII
    space = compile_check(_root({"type": "string", "pattern": "^\\s$"}))
    assert space is not None
    assert space("\ufeff") and not space("\x1c")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "patternProperties": {"^a": {"type": "string"}}},
        {"type": "array", "prefixItems": [{"type": "string"}]},
        {"type": "object", "unevaluatedProperties": False},
        {"type": "number", "multipleOf": 0.1},
        {"enum": [1, "a"]},
        {"const": True},
        {"$ref": "https://example.com/schema"},
        {"$ref": "#/components/schemas/Missing"},
    ],
)
def test_schemas_whose_meaning_could_differ_are_left_to_jsonschema(
    schema: dict[str, Any],
) -> None:
    assert compile_check(_root(schema)) is None


def test_a_recursive_schema_is_left_to_jsonschema() -> None:
    root = {
        "$ref": "#/components/schemas/Node",
        "components": {
            "schemas": {
                "Node": {
                    "type": "object",
                    "properties": {"next": {"$ref": "#/components/schemas/Node"}},
                }
            }
        },
    }
    assert compile_check(root) is None
