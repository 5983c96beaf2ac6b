"""Query-protocol parameters (`Foo.member.1.Bar=x`) read into values of a botocore shape.

The inverse of botocore's `QuerySerializer`: structure members as `Prefix.Name`, lists as
`Name.member.N` (or `Name.N` when flattened, named by the member's `locationName`), maps as
`Name.entry.N.key` / `.value` (or `Name.N.key` when flattened), an empty list as `Name=`.
Indexes are taken in numeric order, gaps allowed. A malformed scalar raises `ValueError` naming
the parameter, which the protocol reports with its own code.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

from fanstack.aws.protocols.values import ISO8601, read_scalar_text

_INDEX = re.compile(r"[1-9][0-9]*\Z")


class _Node:
    """One dotted path: its value if a parameter names it, and the segments below it."""

    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.value: str | None = None
        self.children: dict[str, _Node] = {}


class FormParams:
    """A request's query parameters as a tree of dotted paths, read along a botocore shape."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.values: dict[str, str] = {}
        self._root = _Node()
        for key, value in pairs:
            self.values[key] = value
            node = self._root
            for segment in key.split("."):
                child = node.children.get(segment)
                if child is None:
                    child = node.children[segment] = _Node()
                node = child
            node.value = value

    def read(self, shape: StructureShape) -> dict[str, Any]:
        """The input structure `shape` as read from the top-level parameters."""
        return _structure(shape, self._root, "")


def _indexes(node: _Node) -> list[str]:
    return sorted((s for s in node.children if _INDEX.match(s)), key=int)


def _member_keys(name: str, shape: Shape) -> list[str]:
    # A flattened list is named by its member's locationName in botocore's models, by the
    # member reference's own name in Smithy's awsQuery spec: accept either.
    own = shape.serialization.get("name")
    if isinstance(shape, ListShape) and shape.serialization.get("flattened"):
        member_name = shape.member.serialization.get("name")
        if member_name:
            return [str(own), str(member_name)] if own else [str(member_name), name]
    return [str(own or name)]


def _join(path: str, segment: str) -> str:
    return f"{path}.{segment}" if path else segment


def _structure(shape: StructureShape, node: _Node, path: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    children = node.children
    for name, member in shape.members.items():
        for key in _member_keys(name, member):
            child = children.get(key)
            if child is None:
                continue
            value = _value(member, child, _join(path, key))
            if value is not None:
                result[name] = value
                break
    return result


def _value(shape: Shape, node: _Node, path: str) -> Any:
    if isinstance(shape, StructureShape):
        return _structure(shape, node, path) if node.children else None
    if isinstance(shape, ListShape):
        return _list(shape, node, path)
    if isinstance(shape, MapShape):
        return _map(shape, node, path)
    text = node.value
    if text is None:
        return None
    try:
        return read_scalar_text(shape, text, ISO8601)
    except ValueError as exc:
        raise ValueError(f"Value '{text}' for parameter {path} is invalid: {exc}") from exc


def _list(shape: ListShape, node: _Node, path: str) -> list[Any] | None:
    items: _Node | None
    if shape.serialization.get("flattened"):
        items, items_path = node, path
    else:
        name = shape.member.serialization.get("name", "member")
        items, items_path = node.children.get(name), f"{path}.{name}"
    indexes = _indexes(items) if items is not None else []
    if not indexes or items is None:
        return [] if node.value == "" else None
    found = (
        _value(shape.member, items.children[index], f"{items_path}.{index}")
        for index in indexes
    )
    return [item for item in found if item is not None]


def _map(shape: MapShape, node: _Node, path: str) -> dict[Any, Any] | None:
    entries: _Node | None
    if shape.serialization.get("flattened"):
        entries, entries_path = node, path
    else:
        entries, entries_path = node.children.get("entry"), f"{path}.entry"
    key_name = shape.key.serialization.get("name", "key")
    value_name = shape.value.serialization.get("name", "value")
    indexes = _indexes(entries) if entries is not None else []
    if not indexes or entries is None:
        return {} if node.value == "" else None
    result: dict[Any, Any] = {}
    for index in indexes:
        entry = entries.children[index]
        key_node = entry.children.get(key_name)
        if key_node is None:
            continue
        key = _value(shape.key, key_node, f"{entries_path}.{index}.{key_name}")
        if key is None:
            continue
        value_node = entry.children.get(value_name)
        result[key] = (
            None
            if value_node is None
            else _value(shape.value, value_node, f"{entries_path}.{index}.{value_name}")
        )
    return result
