"""Mapping requests to messages with OpenAPI runtime expressions (what VTL templates do on AWS).

A template is any JSON value; strings that start with `$` are expressions and are replaced by
what they name:

- `$request.path.NAME`, `$request.query.NAME`, `$request.header.NAME`
- `$request.body` (the JSON body) and `$request.body#/json/pointer`
- `$context.requestId`, `$context.apiKey`, `$context.claims.NAME`, `$context.claims`
- `$message.id`, `$message.body`, `$message.body#/pointer` (in response templates)

A missing value evaluates to None; a key whose value is None is left out of an object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fanstack.core.errors import InvalidParameterValue

_ROOTS = ("$request.", "$context.", "$message.")


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What expressions can read: the validated request and the caller's identity."""

    path: Mapping[str, Any] = field(default_factory=dict)
    query: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: Any = None
    request_id: str = ""
    api_key: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    message: Mapping[str, Any] = field(default_factory=dict)


def check_template(template: Any, where: str) -> None:
    """Raise at declaration time if a template holds an expression that cannot be evaluated."""
    if isinstance(template, str):
        if template.startswith("$") and not template.startswith(_ROOTS):
            raise InvalidParameterValue(
                f"{where}: unknown expression {template!r}; expressions start with "
                "$request., $context. or $message."
            )
        if template.startswith("$request.") and template.split("#")[0].split(".")[1] not in (
            "path",
            "query",
            "header",
            "body",
        ):
            raise InvalidParameterValue(f"{where}: unknown request part in {template!r}")
    elif isinstance(template, Mapping):
        for key, value in template.items():
            check_template(value, f"{where}.{key}")
    elif isinstance(template, list):
        for index, value in enumerate(template):
            check_template(value, f"{where}[{index}]")


def render(template: Any, context: RequestContext) -> Any:
    """Evaluate every expression in `template` against `context`."""
    if isinstance(template, str):
        return evaluate(template, context) if template.startswith(_ROOTS) else template
    if isinstance(template, Mapping):
        rendered = {key: render(value, context) for key, value in template.items()}
        return {key: value for key, value in rendered.items() if value is not None}
    if isinstance(template, list):
        return [render(value, context) for value in template]
    return template


def evaluate(expression: str, context: RequestContext) -> Any:
    """The value one expression names, or None."""
    source, _, pointer = expression.partition("#")
    parts = source.split(".", 2)
    root, part = parts[0], parts[1] if len(parts) > 1 else ""
    name = parts[2] if len(parts) > 2 else None
    value: Any
    if root == "$request":
        if part == "body":
            value = context.body
        elif part == "path":
            value = context.path.get(name or "")
        elif part == "query":
            value = context.query.get(name or "")
        elif part == "header":
            value = context.headers.get((name or "").lower())
        else:
            return None
    elif root == "$context":
        if part == "requestId":
            value = context.request_id
        elif part == "apiKey":
            value = context.api_key
        elif part == "claims":
            value = context.claims if name is None else context.claims.get(name)
        else:
            return None
    else:  # $message
        value = context.message.get(part)
    return resolve_pointer(value, pointer) if pointer else value


def resolve_pointer(document: Any, pointer: str) -> Any:
    """RFC 6901 JSON pointer lookup; None when the path does not exist."""
    if not pointer:
        return document
    value = document
    for token in pointer.lstrip("/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, Mapping):
            value = value.get(token)
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            return None
        if value is None:
            return None
    return value
