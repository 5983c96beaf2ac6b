"""JSONPath data processing of JSONPath states: Paths, Reference Paths and payload templates, pure.

From the States Language spec (https://states-language.net/spec.html, "Paths", "Reference Paths",
"Payload Template", "Input and Output Processing with JSONPath") and the AWS developer guide:

- a Path begins with `$` (the state's data) or `$$` (the context object, the first `$` dropped)
  and follows Jayway JsonPath, which python-jsonpath reads (`.[` is accepted for `[`);
- a Reference Path identifies one node: `.name` (a backslash escapes any character),
  `['name']`, `["name"]` and `[index]` only; it is walked here directly, never by the library;
- a definite path (no wildcard, slice, union, filter or `..`) gives its value and fails with
  `States.Runtime` when it matches nothing; any other path gives the list of its matches;
- InputPath/OutputPath null give `{}`; ResultPath null keeps the input; ResultPath places the
  result, creating objects on the way, or fails with `States.ResultPathMatchFailure`;
- in a payload template a field named `x.$` becomes `x` with the value of its path or intrinsic.

Paths are checked and compiled once (cached on their text). Payload templates, which use both
paths and intrinsic functions, are in `templates.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from fanstack.core.asl.data import AslError, excerpt

if TYPE_CHECKING:
    import jsonpath

_Step = str | int
_MISSING: Any = object()
_NAME_STOPS = frozenset(".[]'\"@,:?*() \t\r\n")
_INDEX = re.compile(r"-?[0-9]+")
_PLAIN_NAME = re.compile(r"[^\s()@,?:'\"*\\]+")
_EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class _Query:
    """A compiled path: the steps of a Reference Path, or a python-jsonpath query."""

    text: str
    steps: tuple[_Step, ...] | None
    query: jsonpath.JSONPath | jsonpath.CompoundJSONPath | None
    definite: bool

    def select(self, root: Any) -> Any:
        """The value (or `_MISSING`) of a definite path, else the list of matches."""
        if self.steps is not None:
            return _walk(root, self.steps)
        assert self.query is not None
        found = [match.obj for match in self.query.finditer(root)]
        if self.definite:
            return found[0] if found else _MISSING
        return found


def _walk(node: Any, steps: tuple[_Step, ...]) -> Any:
    """Follow `steps` from `node`; `_MISSING` when one of them does not exist."""
    for step in steps:
        if isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                return _MISSING
        elif not isinstance(node, Mapping) or step not in node:
            return _MISSING
        node = node[step]
    return node


def _read_name(text: str, pos: int) -> tuple[str, int]:
    """A dot-notation name from `pos`: up to an unescaped stop character."""
    name: list[str] = []
    while pos < len(text) and text[pos] not in _NAME_STOPS:
        if text[pos] == "\\":
            if pos + 1 == len(text):
                return "", pos
            pos += 1
        name.append(text[pos])
        pos += 1
    return "".join(name), pos


def _read_bracket(text: str, pos: int) -> tuple[_Step | None, int]:
    """`['name']`, `["name"]` or `[index]` from the `[` at `pos`; None if it is anything else."""
    quote = text[pos + 1 : pos + 2]
    if quote in ("'", '"'):
        name: list[str] = []
        pos += 2
        while pos < len(text) and text[pos] != quote:
            pos += 1 if text[pos] == "\\" else 0
            name.append(text[pos : pos + 1])
            pos += 1
        if not text.startswith("]", pos + 1):
            return None, pos
        return "".join(name), pos + 2
    end = text.find("]", pos)
    if end < 0 or not _INDEX.fullmatch(text[pos + 1 : end]):
        return None, pos
    return int(text[pos + 1 : end]), end + 1


def _reference_steps(text: str) -> tuple[_Step, ...] | None:
    """The steps of `text` (after its `$`) if it is a Reference Path, else None."""
    steps: list[_Step] = []
    pos = 1
    while pos < len(text):
        step: _Step | None
        if text.startswith(".[", pos):
            pos += 1
        if text[pos] == ".":
            step, pos = _read_name(text, pos + 1)
            step = step or None
        elif text[pos] == "[":
            step, pos = _read_bracket(text, pos)
        else:
            step = None
        if step is None:
            return None
        steps.append(step)
    return tuple(steps)


@lru_cache(maxsize=4096)
def _compile(text: str) -> _Query:
    """Compile a path (`$...`, on one root); ValueError names what is wrong with it."""
    if not text.startswith("$"):
        raise ValueError("a path must begin with '$'")
    steps = _reference_steps(text)
    if steps is not None:
        return _Query(text, steps, None, True)
    import jsonpath  # here, not at import: building its lexer costs every process ~70 ms

    try:
        query = jsonpath.compile(_bracketed(text))
    except jsonpath.JSONPathError as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc
    definite = isinstance(query, jsonpath.JSONPath) and query.singular_query()
    return _Query(text, None, query, definite)


def _bracketed(text: str) -> str:
    """`text` with its dot-notation names written `['name']`.

    python-jsonpath reads some names after a dot as keywords (`missing`, `true`...); inside
    brackets, filters and quoted names are passed on as they are.
    """
    out, pos = ["$"], 1
    while pos < len(text):
        if text[pos] == "[":
            end = _bracket_end(text, pos)
            out.append(text[pos:end])
        elif text[pos] == ".":
            start = pos + (2 if text.startswith("..", pos) else 1)
            stops = [i for i in (text.find(".", start), text.find("[", start)) if i >= 0]
            end = min(stops, default=len(text))
            name = text[start:end]
            out.append(".." if start == pos + 2 else "")
            if name == "*":
                out.append("[*]")
            elif _PLAIN_NAME.fullmatch(name):
                out.append("['" + re.sub(r"(['\\])", r"\\\1", name) + "']")
            elif name:
                out.append(text[pos:end])  # not a name: python-jsonpath reports it
        else:
            end = pos + 1
            out.append(text[pos])
        pos = end
    return "".join(out)


def _bracket_end(text: str, pos: int) -> int:
    """The position after the `]` closing the `[` at `pos` (nested brackets and quotes skipped)."""
    depth, quote = 0, ""
    while pos < len(text):
        char = text[pos]
        if quote:
            quote = "" if char == quote else quote
            pos += 2 if char == "\\" else 1
            continue
        if char in "'\"":
            quote = char
        depth += {"[": 1, "]": -1}.get(char, 0)
        pos += 1
        if depth == 0:
            return pos
    return pos


def _on_root(path: str) -> tuple[bool, str]:
    """Whether `path` reads the context object (`$$`), and the path on its root (`$...`)."""
    return (True, path[1:]) if path.startswith("$$") else (False, path)


def check_path(text: str, *, field: str, reference: bool = False) -> None:
    """Validate a Path (or a Reference Path) at declaration; ValueError names the problem.

    `$$` paths (the context object) are accepted: a ResultPath must refuse them itself.
    """
    if not isinstance(text, str):
        raise ValueError(f"{field}: a path must be a string, got {text!r}")
    path = _on_root(text)[1]
    try:
        query = _compile(path)
    except ValueError as exc:
        raise ValueError(f"{field}: {text!r} is not a valid JSONPath: {exc}") from None
    if reference and query.steps is None:
        raise ValueError(
            f"{field}: {text!r} is not a Reference Path: use only .name, ['name'] and [index] "
            "(no wildcards, slices, unions, filters or '..')"
        )


def select(document: Any, path: str | None) -> Any:
    """Apply an InputPath/OutputPath/ItemsPath: None gives {}, a definite path its value."""
    return select_with_context(document, _EMPTY, path)


def select_with_context(document: Any, context: Mapping[str, Any], path: str | None) -> Any:
    """Apply a path: `$...` reads `document`, `$$...` reads the context object."""
    if path is None:
        return {}
    on_context, root_path = _on_root(path)
    try:
        query = _compile(root_path)
    except ValueError as exc:
        raise AslError("States.Runtime", f"Invalid JSONPath {path!r}: {exc}") from exc
    root = context if on_context else document
    value = query.select(root)
    if value is _MISSING:
        where = "context object" if on_context else "input"
        raise AslError(
            "States.Runtime",
            f"The JSONPath {path!r} could not be found in the {where} {excerpt(root)}",
        )
    return value


def put_result(document: Any, path: str | None, result: Any) -> Any:
    """Apply a ResultPath: None keeps `document`, `$` gives `result`, else a placed copy."""
    if path is None:
        return document
    steps = _reference_steps(path) if path.startswith("$") and not path.startswith("$$") else None
    if steps is None:
        raise AslError("States.ResultPathMatchFailure", f"{path!r} is not a Reference Path")
    try:
        return _placed(document, steps, result)
    except LookupError as exc:
        raise AslError(
            "States.ResultPathMatchFailure",
            f"Unable to apply ResultPath {path!r} to input {excerpt(document)}: {exc}",
        ) from None


def _placed(node: Any, steps: tuple[_Step, ...], result: Any) -> Any:
    """`node` with `result` at `steps`, copying the containers on the way (LookupError: can't)."""
    if not steps:
        return result
    step, rest = steps[0], steps[1:]
    if isinstance(step, int):
        if not isinstance(node, list) or not -len(node) <= step < len(node):
            raise LookupError(f"there is no array item [{step}] to replace")
        items = list(node)
        items[step] = _placed(node[step], rest, result)
        return items
    if node is _MISSING:
        node = {}
    if not isinstance(node, Mapping):
        raise LookupError(f"cannot add the field {step!r} to {excerpt(node)}, not an object")
    fields = dict(node)
    fields[step] = _placed(node.get(step, _MISSING), rest, result)
    return fields
