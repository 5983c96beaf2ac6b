"""The intrinsic functions of JSONPath states (`States.Format(...)` and its 17 siblings), pure.

An intrinsic is the value of a payload-template field whose name ends in `.$` and that does not
begin with `$`: a function name, then arguments in parentheses, each a string in apostrophes
(`\\'`, `\\{`, `\\}` and `\\\\` are its only escapes), a number, `true`, `false`, `null`, a Path
(`$...` on the input, `$$...` on the context object) or another intrinsic; at most 10 calls in
one field. Calls are parsed (and cached) once, when the definition is checked.

Argument rules are AWS's ("Intrinsic functions for JSONPath states", Step Functions developer
guide, and Appendix B of the States Language spec): a non-integer where an integer is wanted is
rounded to the nearest one; ArrayRange makes at most 1000 items; Base64 and Hash take at most
10,000 characters; MathAdd's (and MathRandom's) integers are 32-bit; JsonMerge is shallow only.
Any failure is `States.IntrinsicFailure`, except a path that selects nothing (`States.Runtime`).
`partition`, `integer_range`, `digest` and `new_uuid` are shared with the JSONata functions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fanstack.core.asl import paths
from fanstack.core.asl.data import (
    MAX_PAYLOAD_BYTES,
    AslError,
    is_number,
    json_key,
    json_size,
    round_half_up,
    to_json_text,
)

MAX_CALLS = 10
MAX_RANGE_ITEMS = 1000
MAX_TEXT_CHARS = 10_000
INT32 = (-(2**31), 2**31 - 1)
HASH_ALGORITHMS = {
    "MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512",
}
_NAME = re.compile(r"\s*([A-Za-z0-9._]+)\s*\(")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_WORDS = {"true": True, "false": False, "null": None}
_WORD = re.compile(r"(?:true|false|null)(?![A-Za-z0-9._(])")
_ESCAPABLE = "'{}\\"


@dataclass(frozen=True, slots=True)
class _Literal:
    """A string, number, boolean or null argument; a string keeps its `{}` split for Format."""

    value: Any
    pieces: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class _Path:
    """A Path argument, applied to the input (`$`) or the context object (`$$`)."""

    text: str


@dataclass(frozen=True, slots=True)
class _Call:
    """An intrinsic function call and its arguments."""

    name: str
    args: tuple[_Literal | _Path | _Call, ...]


class _Parser:
    """Recursive descent over one intrinsic invocation."""

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.calls = text, 0, 0

    def fail(self, problem: str) -> ValueError:
        return ValueError(f"{problem} at character {self.pos} of {self.text!r}")

    def skip_blanks(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def call(self) -> _Call:
        name = _NAME.match(self.text, self.pos)
        if name is None:
            raise self.fail("expected an intrinsic function name and '('")
        self.pos, self.calls = name.end(), self.calls + 1
        args: list[_Literal | _Path | _Call] = []
        self.skip_blanks()
        while not self.text.startswith(")", self.pos):
            if args:
                if not self.text.startswith(",", self.pos):
                    raise self.fail("expected ',' or ')'")
                self.pos += 1
            args.append(self.argument())
            self.skip_blanks()
        self.pos += 1
        return _Call(name[1], tuple(args))

    def argument(self) -> _Literal | _Path | _Call:
        self.skip_blanks()
        head = self.text[self.pos : self.pos + 1]
        if head == "'":
            return self.string()
        if head == "$":
            return self.path()
        number = _NUMBER.match(self.text, self.pos)
        if number is not None:
            self.pos = number.end()
            exact = number[1] is None and number[2] is None
            return _Literal(int(number[0]) if exact else float(number[0]))
        word = _WORD.match(self.text, self.pos)
        if word is not None:
            self.pos = word.end()
            return _Literal(_WORDS[word[0]])
        if not head:
            raise self.fail("unexpected end: missing ')'")
        return self.call()

    def string(self) -> _Literal:
        pieces, current, self.pos = [], [], self.pos + 1
        while self.pos < len(self.text) and self.text[self.pos] != "'":
            char = self.text[self.pos]
            if char == "\\":
                escaped = self.text[self.pos + 1 : self.pos + 2]
                if not escaped or escaped not in _ESCAPABLE:
                    raise self.fail("open escape: only \\', \\{, \\} and \\\\ are allowed")
                current.append(escaped)
                self.pos += 2
            elif self.text.startswith("{}", self.pos):
                pieces.append("".join(current))
                current, self.pos = [], self.pos + 2
            else:
                current.append(char)
                self.pos += 1
        if self.pos >= len(self.text):
            raise self.fail("unterminated string literal")
        self.pos += 1
        pieces.append("".join(current))
        return _Literal("{}".join(pieces), tuple(pieces))

    def path(self) -> _Path:
        start, depth, quote = self.pos, 0, ""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if quote:
                quote = "" if char == quote else quote
                self.pos += 2 if char == "\\" else 1
                continue
            if char in "'\"":
                quote = char
            elif char in "[(":
                depth += 1
            elif char in "])":
                if depth == 0:
                    break
                depth -= 1
            elif char == "," and depth == 0:
                break
            self.pos += 1
        text = self.text[start : self.pos].rstrip()
        paths.check_path(text, field="an intrinsic function argument")
        return _Path(text)


def is_intrinsic(text: str) -> bool:
    """Whether `text` looks like an intrinsic invocation (a name, then '(')."""
    return not text.lstrip().startswith("$") and _NAME.match(text) is not None


@lru_cache(maxsize=4096)
def _parse(text: str) -> _Call:
    """The checked call tree of `text`; ValueError names the problem."""
    parser = _Parser(text)
    call = parser.call()
    parser.skip_blanks()
    if parser.pos != len(text):
        raise parser.fail("unexpected text after the closing ')'")
    if parser.calls > MAX_CALLS:
        raise ValueError(f"{text!r} has {parser.calls} intrinsic calls; the limit is {MAX_CALLS}")
    _check_call(call)
    return call


def _check_call(call: _Call) -> None:
    """Raise ValueError for an unknown function, a wrong argument count or Format mismatch."""
    if call.name not in _FUNCTIONS:
        raise ValueError(
            f"{call.name} is not an intrinsic function; known: {', '.join(_FUNCTIONS)}"
        )
    low, high, _ = _FUNCTIONS[call.name]
    if len(call.args) < low or 0 <= high < len(call.args):
        wanted = f"at least {low}" if high < 0 else f"{low}" if low == high else f"{low} to {high}"
        raise ValueError(f"{call.name} takes {wanted} arguments, got {len(call.args)}")
    pieces = _template_pieces(call)
    if pieces is not None and len(pieces) != len(call.args):
        raise ValueError(
            f"States.Format has {len(pieces) - 1} '{{}}' placeholders but "
            f"{len(call.args) - 1} values to fill them"
        )
    for arg in call.args:
        if isinstance(arg, _Call):
            _check_call(arg)


def _template_pieces(call: _Call) -> tuple[str, ...] | None:
    """The text between the `{}` of a States.Format whose template is a string literal."""
    head = call.args[0] if call.args else None
    if call.name == "States.Format" and isinstance(head, _Literal):
        return head.pieces
    return None


def check_intrinsic(text: str) -> None:
    """Parse `text` at declaration; ValueError names the problem (function, arity, syntax)."""
    _parse(text)


def call_intrinsic(
    text: str, document: Any, context: Mapping[str, Any], *, rng: random.Random | None = None
) -> Any:
    """The value of the intrinsic invocation `text` on `document` and the context object."""
    try:
        call = _parse(text)
    except ValueError as exc:
        raise AslError("States.IntrinsicFailure", str(exc)) from exc
    return _evaluate(call, document, context, rng)


def _evaluate(
    call: _Call, document: Any, context: Mapping[str, Any], rng: random.Random | None
) -> Any:
    """Evaluate the arguments, then the function; wrap argument errors as IntrinsicFailure."""
    values: list[Any] = []
    for arg in call.args:
        if isinstance(arg, _Literal):
            values.append(arg.value)
        elif isinstance(arg, _Path):
            values.append(paths.select_with_context(document, context, arg.text))
        else:
            values.append(_evaluate(arg, document, context, rng))
    pieces = _template_pieces(call)
    try:
        if pieces is not None:
            return _format(list(pieces), values[1:])
        return _FUNCTIONS[call.name][2](values, rng)
    except ValueError as exc:
        raise AslError(
            "States.IntrinsicFailure", f"Invalid arguments in {call.name}: {exc}"
        ) from exc


def _array(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected an array, got {to_json_text(value)[:100]}")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {to_json_text(value)[:100]}")
    return value


def _integer(value: Any, bounds: tuple[int, int] | None = None) -> int:
    """A number rounded to the nearest integer (AWS's rule), optionally within `bounds`."""
    if not is_number(value):
        raise ValueError(f"expected a number, got {to_json_text(value)[:100]}")
    number = round_half_up(value)
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        raise ValueError(f"{number} is outside {bounds[0]}..{bounds[1]}")
    return number


def _text_limit(text: str) -> str:
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"the input is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    return text


def _format(pieces: list[str], values: list[Any]) -> str:
    """Fill each `{}` with the natural text of a string, number, boolean or null."""
    if len(pieces) - 1 != len(values):
        raise ValueError(f"{len(pieces) - 1} placeholders but {len(values)} values")
    out = [pieces[0]]
    for value, piece in zip(values, pieces[1:], strict=True):
        if isinstance(value, dict | list):
            raise ValueError("a value to format must not be an array or an object")
        out += [value if isinstance(value, str) else to_json_text(value), piece]
    return "".join(out)


def partition(array: list[Any], size: int) -> list[list[Any]]:
    """`array` cut into chunks of `size` items, the last possibly shorter (size > 0)."""
    if size <= 0:
        raise ValueError(f"the chunk size must be a positive integer, got {size}")
    if json_size(array) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"the array is over the {MAX_PAYLOAD_BYTES}-byte payload limit")
    return [array[start : start + size] for start in range(0, len(array), size)]


def integer_range(start: int, end: int, step: int) -> list[int]:
    """`start`, `start + step`... up to and including `end`; at most 1000 items."""
    if step == 0:
        raise ValueError("the step must not be zero")
    count = max(0, (end - start) // step + 1)
    if count > MAX_RANGE_ITEMS:
        raise ValueError(f"the range has {count} items; the limit is {MAX_RANGE_ITEMS}")
    return [start + index * step for index in range(count)]


def digest(text: str, algorithm: str) -> str:
    """The hex digest of `text` (UTF-8) with MD5, SHA-1, SHA-256, SHA-384 or SHA-512."""
    if algorithm not in HASH_ALGORITHMS:
        raise ValueError(
            f"unknown algorithm {algorithm!r}; use one of {', '.join(HASH_ALGORITHMS)}"
        )
    return hashlib.new(HASH_ALGORITHMS[algorithm], _text_limit(text).encode()).hexdigest()


def new_uuid(rng: random.Random | None) -> str:
    """A version 4 UUID, from `rng` when given (reproducible) or the system's randomness."""
    if rng is None:
        return str(uuid.uuid4())
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _base64_decode(text: str) -> str:
    """MIME Base64 (padding optional, line breaks ignored) to UTF-8 text."""
    compact = "".join(_text_limit(text).split())
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"not Base64 of UTF-8 text: {exc}") from exc


def _string_to_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a JSON text: {exc}") from exc


def _array_get_item(array: list[Any], index: Any) -> Any:
    if not is_number(index) or index != int(index) or not 0 <= index < len(array):
        raise ValueError(f"index {index!r} is not an integer in 0..{len(array) - 1}")
    return array[int(index)]


def _array_unique(array: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    unique = []
    for item in array:
        if json_key(item) not in seen:
            seen.add(json_key(item))
            unique.append(item)
    return unique


def _json_merge(first: Any, second: Any, deep: Any) -> dict[str, Any]:
    if not isinstance(first, dict) or not isinstance(second, dict):
        raise ValueError("both values to merge must be JSON objects")
    if deep is not False:
        raise ValueError("the third argument must be false: only shallow merging is supported")
    return {**first, **second}


def _math_random(values: list[Any], rng: random.Random | None) -> int:
    start, end = _integer(values[0], INT32), _integer(values[1], INT32)
    if start >= end:
        raise ValueError(f"the start ({start}) must be less than the end ({end})")
    if len(values) == 3:
        rng = random.Random(_integer(values[2]))
    return (rng or random.Random()).randrange(start, end)


def _string_split(text: str, delimiters: str) -> list[str]:
    """Split on any character of `delimiters`, dropping empty parts (Java's StringTokenizer)."""
    if not delimiters:
        return [text] if text else []
    return [part for part in re.split(f"[{re.escape(delimiters)}]", text) if part]


_Impl = Callable[[list[Any], "random.Random | None"], Any]
_FUNCTIONS: dict[str, tuple[int, int, _Impl]] = {  # name: (min args, max args or -1, function)
    "States.Format": (1, -1, lambda v, _: _format(_string(v[0]).split("{}"), v[1:])),
    "States.StringToJson": (1, 1, lambda v, _: _string_to_json(_string(v[0]))),
    "States.JsonToString": (1, 1, lambda v, _: to_json_text(v[0])),
    "States.Array": (0, -1, lambda v, _: list(v)),
    "States.ArrayPartition": (2, 2, lambda v, _: partition(_array(v[0]), _integer(v[1]))),
    "States.ArrayContains": (
        2, 2, lambda v, _: json_key(v[1]) in {json_key(item) for item in _array(v[0])}
    ),
    "States.ArrayRange": (3, 3, lambda v, _: integer_range(*(_integer(x) for x in v))),
    "States.ArrayGetItem": (2, 2, lambda v, _: _array_get_item(_array(v[0]), v[1])),
    "States.ArrayLength": (1, 1, lambda v, _: len(_array(v[0]))),
    "States.ArrayUnique": (1, 1, lambda v, _: _array_unique(_array(v[0]))),
    "States.Base64Encode": (
        1, 1, lambda v, _: base64.b64encode(_text_limit(_string(v[0])).encode()).decode()
    ),
    "States.Base64Decode": (1, 1, lambda v, _: _base64_decode(_string(v[0]))),
    "States.Hash": (2, 2, lambda v, _: digest(_string(v[0]), _string(v[1]))),
    "States.JsonMerge": (3, 3, lambda v, _: _json_merge(*v)),
    "States.MathRandom": (2, 3, _math_random),
    "States.MathAdd": (2, 2, lambda v, _: _integer(v[0], INT32) + _integer(v[1], INT32)),
    "States.StringSplit": (2, 2, lambda v, _: _string_split(_string(v[0]), _string(v[1]))),
    "States.UUID": (0, 0, lambda _, rng: new_uuid(rng)),
}
