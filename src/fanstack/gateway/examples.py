"""Example request bodies for the OpenAPI document: kept when given, derived from the schema
otherwise, so every operation that takes a body shows one that validates."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def add_examples(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of `document` where every JSON request body has an `example`."""
    document = copy.deepcopy(document)
    components = document.get("components", {})
    for item in document.get("paths", {}).values():
        for operation in item.values():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content is not None and "example" not in content and "examples" not in content:
                content["example"] = example_for(content.get("schema", {}), components)
    return document


def example_for(schema: Mapping[str, Any], components: Mapping[str, Any], depth: int = 0) -> Any:
    """A value that satisfies a (simple) JSON schema."""
    if depth > 8:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/"):
        node: Any = {"components": components}
        for token in ref[2:].split("/"):
            node = node.get(token, {})
        return example_for(node, components, depth + 1)
    for key in ("example", "default", "const"):
        if key in schema:
            return copy.deepcopy(schema[key])
    if schema.get("examples"):
        return copy.deepcopy(schema["examples"][0])
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("allOf", "oneOf", "anyOf"):
        if schema.get(combinator):
            return example_for(schema[combinator][0], components, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = schema.get("required", list(properties))
        return {
            name: example_for(properties[name], components, depth + 1)
            for name in required
            if name in properties
        }
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [example_for(schema.get("items", {}), components, depth + 1)] * count
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    if kind == "string":
        return "x" * max(1, int(schema.get("minLength", 1)))
    return None
