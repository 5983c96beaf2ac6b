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

from collections.abc import Callable, Mapping
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

    def with_message(self, message: Mapping[str, Any]) -> RequestContext:
        """This context, reading `message` as `$message` (a response template's)."""
        return RequestContext(
            self.path,
            self.query,
            self.headers,
            self.body,
            self.request_id,
            self.api_key,
            self.claims,
            message,
        )


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


Template = Callable[[RequestContext], Any]


def render(template: Any, context: RequestContext) -> Any:
    """Evaluate every expression in `template` against `context`."""
    return compile_template(template)(context)


def evaluate(expression: str, context: RequestContext) -> Any:
    """The value one expression names, or None."""
    return _compile_expression(expression)(context)


def compile_template(template: Any) -> Template:
    """`template` made once into a function of a request's context: what `render` does, with
    every expression parsed beforehand (a route renders its templates on every request)."""
    if isinstance(template, str):
        if template.startswith(_ROOTS):
            return _compile_expression(template)
        return lambda context: template
    if isinstance(template, Mapping):
        entries = [(key, compile_template(value)) for key, value in template.items()]

        def rendered(context: RequestContext) -> dict[Any, Any]:
            values = {}
            for key, entry in entries:
                value = entry(context)
                if value is not None:
                    values[key] = value
            return values

        return rendered
    if isinstance(template, list):
        items = [compile_template(value) for value in template]
        return lambda context: [item(context) for item in items]
    return lambda context: template


def _compile_expression(expression: str) -> Template:
    """One expression as a function of the context: the value it names, or None."""
    source, _, pointer = expression.partition("#")
    parts = source.split(".", 2)
    part = parts[1] if len(parts) > 1 else ""
    read = _reader(parts[0], part, parts[2] if len(parts) > 2 else None)
    if not pointer:
        return read
    tokens = _tokens(pointer)
    return lambda context: _follow(read(context), tokens)


def _reader(root: str, part: str, name: str | None) -> Template:
    """What `$root.part.name` reads from a context (None for what names nothing)."""
    key = name or ""
    if root == "$request":
        if part == "body":
            return lambda context: context.body
        if part == "path":
            return lambda context: context.path.get(key)
        if part == "query":
            return lambda context: context.query.get(key)
        if part == "header":
            header = key.lower()
            return lambda context: context.headers.get(header)
        return lambda context: None
    if root == "$context":
        if part == "requestId":
            return lambda context: context.request_id
        if part == "apiKey":
            return lambda context: context.api_key
        if part == "claims":
            if name is None:
                return lambda context: context.claims
            return lambda context: context.claims.get(name)
        return lambda context: None
    return lambda context: context.message.get(part)  # $message


def resolve_pointer(document: Any, pointer: str) -> Any:
    """RFC 6901 JSON pointer lookup; None when the path does not exist."""
    if not pointer:
        return document
    return _follow(document, _tokens(pointer))


def _tokens(pointer: str) -> list[str]:
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer.lstrip("/").split("/")]


def _follow(document: Any, tokens: list[str]) -> Any:
    value = document
    for token in tokens:
        if isinstance(value, Mapping):
            value = value.get(token)
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            return None
        if value is None:
            return None
    return value
