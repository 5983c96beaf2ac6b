"""Members that rest-json carries outside the body: URI labels, query string, headers.

Reading follows botocore's `BaseRestSerializer` in reverse: labels and query values are text
(timestamps ISO 8601 by default), headers are text (timestamps HTTP dates by default, lists
comma-separated with `"`-quoting, `jsonvalue` strings base64-encoded JSON), and a map member
with `location: headers` gathers every header under its prefix.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

from fanstack.aws.protocols.values import ISO8601, RFC822, read_scalar_text, write_scalar_text

_HTTP_DATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")
_QUOTED_OR_PLAIN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^,]*))\s*(?:,|\Z)')


def location_name(name: str, shape: Shape) -> str:
    """The label, query parameter or header name a member is carried under."""
    return str(shape.serialization.get("name", name))


def is_located(shape: Shape) -> bool:
    """Whether a member lives outside the body (uri, querystring, header(s), statusCode)."""
    return "location" in shape.serialization


def split_header_list(shape: ListShape, text: str) -> list[str]:
    """A list header's items: HTTP dates kept whole, `"`-quoted items unescaped."""
    if shape.member.type_name == "timestamp" and _HTTP_DATE.search(text):
        return _HTTP_DATE.findall(text)
    items: list[str] = []
    for found in _QUOTED_OR_PLAIN.finditer(text):
        if found.end() == found.start():
            break
        quoted, plain = found.group(1), found.group(2)
        items.append(re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain.strip())
        if found.end() >= len(text):
            break
    return items


def read_header(shape: Shape, text: str) -> Any:
    """A header member's value."""
    if isinstance(shape, ListShape):
        return [
            read_scalar_text(shape.member, item, RFC822) for item in split_header_list(shape, text)
        ]
    if shape.serialization.get("jsonvalue"):
        return json.loads(base64.b64decode(text))
    return read_scalar_text(shape, text, RFC822)


def read_located(
    shape: StructureShape,
    labels: Mapping[str, str],
    query_pairs: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    reserved_query: set[str],
) -> dict[str, Any]:
    """The input members carried in URI labels, query string and headers."""
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        key = location_name(name, member)
        value: Any = None
        if location == "uri" and key in labels:
            value = read_scalar_text(member, labels[key], ISO8601)
        elif location == "querystring":
            value = _read_query(member, key, query_pairs, reserved_query)
        elif location == "header" and key.lower() in headers:
            value = read_header(member, headers[key.lower()])
        elif location == "headers" and isinstance(member, MapShape):
            prefix = key.lower()
            value = {h[len(prefix) :]: v for h, v in headers.items() if h.startswith(prefix)}
            value = value or None
        if value is not None:
            params[name] = value
    return params


def _read_query(
    shape: Shape, key: str, pairs: Sequence[tuple[str, str]], reserved: set[str]
) -> Any:
    # A map member (`httpQueryParams`) holds every parameter but the URI's literals, named
    # members' included, as Smithy's protocol tests state it.
    if isinstance(shape, MapShape):
        found: dict[str, Any] = {}
        for name, text in pairs:
            if name in reserved:
                continue
            if isinstance(shape.value, ListShape):
                found.setdefault(name, []).append(
                    read_scalar_text(shape.value.member, text, ISO8601)
                )
            elif name not in found:
                found[name] = read_scalar_text(shape.value, text, ISO8601)
        return found or None
    values = [text for name, text in pairs if name == key]
    if not values:
        return None
    if isinstance(shape, ListShape):
        return [read_scalar_text(shape.member, text, ISO8601) for text in values]
    return read_scalar_text(shape, values[0], ISO8601)


def write_headers(shape: StructureShape, value: Mapping[str, Any], headers: dict[str, str]) -> None:
    """Add the output members that rest-json carries in headers."""
    for name, member in shape.members.items():
        item = value.get(name)
        if item is None:
            continue
        location = member.serialization.get("location")
        key = location_name(name, member)
        if location == "header":
            headers[key] = _header_text(member, item)
        elif location == "headers":
            for suffix, text in item.items():
                headers[f"{key}{suffix}"] = str(text)


def _header_text(shape: Shape, value: Any) -> str:
    if isinstance(shape, ListShape):
        return ", ".join(_list_item_text(shape.member, item) for item in value)
    if shape.serialization.get("jsonvalue"):
        document = json.dumps(value, separators=(",", ":"))
        return base64.b64encode(document.encode("utf-8")).decode("ascii")
    return write_scalar_text(shape, value, RFC822)


def _list_item_text(shape: Shape, value: Any) -> str:
    text = write_scalar_text(shape, value, RFC822)
    if shape.type_name == "string" and ('"' in text or "," in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text
