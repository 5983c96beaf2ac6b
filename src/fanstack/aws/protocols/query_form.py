"""Query-protocol parameters (`Foo.member.1.Bar=x`) read into values of a botocore shape.

The inverse of botocore's `QuerySerializer`: structure members as `Prefix.Name`, lists as
`Name.member.N` (or `Name.N` when flattened, named by the member's `locationName`), maps as
`Name.entry.N.key` / `.value` (or `Name.N.key` when flattened), an empty list as `Name=`.
Indexes are taken in numeric order, gaps allowed. A malformed scalar raises `ValueError` naming
the parameter, which the protocol reports with its own code.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

from fanstack.aws.protocols.values import ISO8601, read_scalar_text

_INDEX = re.compile(r"[1-9][0-9]*\Z")


class FormParams:
    """A request's query parameters, indexed by dotted path for shape-driven reading."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.values: dict[str, str] = {}
        self.children: defaultdict[str, set[str]] = defaultdict(set)
        for key, value in pairs:
            self.values[key] = value
            parent = ""
            for segment in key.split("."):
                self.children[parent].add(segment)
                parent = f"{parent}.{segment}" if parent else segment

    def has_children(self, path: str) -> bool:
        """Whether any parameter lies below `path`."""
        return path in self.children

    def indexes(self, path: str) -> list[str]:
        """The list/map indexes (`1`, `2`, ...) directly below `path`, in numeric order."""
        found = (segment for segment in self.children.get(path, ()) if _INDEX.match(segment))
        return sorted(found, key=int)

    def read(self, shape: StructureShape) -> dict[str, Any]:
        """The input structure `shape` as read from the top-level parameters."""
        return self._structure(shape, "")

    def _member_keys(self, name: str, shape: Shape) -> list[str]:
        # A flattened list is named by its member's locationName in botocore's models, by the
        # member reference's own name in Smithy's awsQuery spec: accept either.
        own = shape.serialization.get("name")
        if isinstance(shape, ListShape) and shape.serialization.get("flattened"):
            member_name = shape.member.serialization.get("name")
            if member_name:
                return [str(own), str(member_name)] if own else [str(member_name), name]
        return [str(own or name)]

    def _structure(self, shape: StructureShape, prefix: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, member in shape.members.items():
            for key in self._member_keys(name, member):
                value = self._value(member, f"{prefix}.{key}" if prefix else key)
                if value is not None:
                    result[name] = value
                    break
        return result

    def _value(self, shape: Shape, path: str) -> Any:
        if isinstance(shape, StructureShape):
            return self._structure(shape, path) if self.has_children(path) else None
        if isinstance(shape, ListShape):
            return self._list(shape, path)
        if isinstance(shape, MapShape):
            return self._map(shape, path)
        if path not in self.values:
            return None
        text = self.values[path]
        try:
            return read_scalar_text(shape, text, ISO8601)
        except ValueError as exc:
            raise ValueError(f"Value '{text}' for parameter {path} is invalid: {exc}") from exc

    def _list(self, shape: ListShape, path: str) -> list[Any] | None:
        if shape.serialization.get("flattened"):
            items_path = path
        else:
            items_path = f"{path}.{shape.member.serialization.get('name', 'member')}"
        indexes = self.indexes(items_path)
        if not indexes:
            return [] if self.values.get(path) == "" else None
        items = (self._value(shape.member, f"{items_path}.{index}") for index in indexes)
        return [item for item in items if item is not None]

    def _map(self, shape: MapShape, path: str) -> dict[Any, Any] | None:
        entries_path = path if shape.serialization.get("flattened") else f"{path}.entry"
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        indexes = self.indexes(entries_path)
        if not indexes:
            return {} if self.values.get(path) == "" else None
        result: dict[Any, Any] = {}
        for index in indexes:
            key = self._value(shape.key, f"{entries_path}.{index}.{key_name}")
            if key is not None:
                result[key] = self._value(shape.value, f"{entries_path}.{index}.{value_name}")
        return result
