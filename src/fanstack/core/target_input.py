"""What an EventBridge rule target receives for a matched event, rendered as AWS renders it, pure.

By default a target gets the whole event envelope as minified JSON. Instead it may have exactly
one of: `input`, a constant JSON text sent as it is; `input_path`, a JSONPath whose selection is
sent as JSON; or an `input_transformer`, whose `input_paths` name values of the event that fill
the `<name>` placeholders of its `input_template`, beside the predefined `<aws.events.*>` ones.

Rendering, from the EventBridge user guide ("Amazon EventBridge input transformation", its
examples and "Common issues") and the API reference (`InputTransformer`, `Target`):

- a template that is a JSON object or array (`{` or `[` after leading blanks) is a JSON template;
  any other template is a string template, delivered as written with its placeholders filled;
- in a JSON template a placeholder standing as a value renders as the JSON of its value
  (strings quoted and escaped, objects and lists minified); one inside a JSON string, and any in a
  string template, renders a string raw (EventBridge does not escape it), an object or a list as
  its JSON with every `"` removed, and a number, boolean or null as its JSON;
- `<aws.events.event>` (the envelope without `detail`, `detail-type` spelt `detailType`, `time`
  the ingestion time) and `<aws.events.event.json>` (the whole envelope) are JSON inserted
  verbatim wherever they stand; the rule name and ARN and the ingestion time are strings;
- a path that selects nothing renders as an empty string: `""` as a value, nothing in a string;
  a path with a wildcard renders the list of what it selects;
- a JSON template whose result is not valid JSON is a failed delivery (`InputTransformError`).

Paths accept the subset EventBridge documents: `$`, then `.name` (letters, digits, `_`, `-`, `/`),
`.*`, `[index]` and `[*]`; `input_path` also takes bracket notation (`['name']`). Paths are
checked and compiled (python-jsonpath) once, when the input is built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fanstack.core.errors import InputTransformError

if TYPE_CHECKING:
    import jsonpath

MAX_INPUT_LENGTH = 8192
MAX_TEMPLATE_LENGTH = 8192
MAX_INPUT_PATHS = 100
MAX_PATH_LENGTH = 256
MAX_PATH_KEY_LENGTH = 256
RULE_NAME = "aws.events.rule-name"
RULE_ARN = "aws.events.rule-arn"
EVENT = "aws.events.event"
EVENT_JSON = "aws.events.event.json"
INGESTION_TIME = "aws.events.event.ingestion-time"
PREDEFINED = frozenset({RULE_NAME, RULE_ARN, EVENT, EVENT_JSON, INGESTION_TIME})

# The keys of <aws.events.event>, in the order AWS writes them (recorded against AWS by
# LocalStack, tests/aws/services/events/test_events_inputs.snapshot.json, 11-06-2024).
_EVENT_SUMMARY_KEYS = (
    "id", "account", "detail-type", "time", "source", "region", "resources", "version"
)
_PATH_KEY = re.compile(r"[A-Za-z0-9_\-]+")
_PLACEHOLDER = re.compile(r"<([^<>]*)>")
_SEGMENT = re.compile(
    r"\.(?P<name>[A-Za-z0-9_\-/]+)|(?P<star>\.\*|\[\*\])|\[(?P<index>[0-9]+)\]"
    r"|\[(?P<quoted>'[^'\\]*'|\"[^\"\\]*\")\]"
)
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class _Path:
    """A checked path compiled once: what it selects from an event."""

    text: str
    query: jsonpath.JSONPath | jsonpath.CompoundJSONPath
    definite: bool  # no wildcard: selects one value or nothing

    def select(self, event: Mapping[str, Any]) -> Any:
        """The selected value, the list of values for a wildcard path, or `_MISSING`."""
        found = [match.obj for match in self.query.finditer(event)]
        if not self.definite:
            return found
        return found[0] if found else _MISSING


def _compile_path(text: Any, *, what: str, brackets: bool) -> _Path:
    """Check `text` against the JSONPath subset EventBridge accepts and compile it."""
    if not isinstance(text, str):
        raise InputTransformError(f"{what} must be a JSONPath string, got {text!r}")
    if len(text) > MAX_PATH_LENGTH:
        raise InputTransformError(
            f"{what} is {len(text)} characters long; the limit is {MAX_PATH_LENGTH}"
        )
    canonical, definite, position = ["$"], True, 1
    if not text.startswith("$"):
        raise InputTransformError(f"{what} {text!r} is not a JSONPath: it must start with '$'")
    while position < len(text):
        segment = _SEGMENT.match(text, position)
        if segment is None or (segment["quoted"] and not brackets):
            raise InputTransformError(
                f"{what} {text!r} is not a JSONPath EventBridge accepts at character {position}: "
                "use .name, .*, [index] or [*]" + (" or ['name']" if brackets else "")
            )
        canonical.append(_bracketed(segment))
        definite = definite and not segment["star"]
        position = segment.end()
    import jsonpath  # here, not at import: building its lexer costs every process ~70 ms

    return _Path(text, jsonpath.compile("".join(canonical), strict=True), definite)


def _bracketed(segment: re.Match[str]) -> str:
    """One path segment in RFC 9535 bracket notation, which python-jsonpath reads strictly."""
    if segment["star"]:
        return "[*]"
    if segment["index"]:
        return f"[{int(segment['index'])}]"
    name = segment["name"] or segment["quoted"][1:-1]
    return f"[{json.dumps(name)}]"


@dataclass(frozen=True, slots=True)
class _Slot:
    """A placeholder of a template, and whether it stands inside a JSON string."""

    name: str
    in_string: bool


@dataclass(slots=True)
class _JsonScanner:
    """Where a character of a JSON template stands: in a string, and in an object key or not."""

    in_string: bool = False
    in_key: bool = False
    escaped: bool = False
    expect_key: bool = False
    open: list[str] = field(default_factory=list)

    def feed(self, char: str) -> None:
        """Move past one character of the template."""
        if self.in_string:
            if self.escaped:
                self.escaped = False
            elif char == "\\":
                self.escaped = True
            elif char == '"':
                self.in_string = self.in_key = False
        elif char == '"':
            self.in_string, self.in_key, self.expect_key = True, self.expect_key, False
        elif char in "{[":
            self.open.append(char)
            self.expect_key = char == "{"
        elif char in "}]":
            if self.open:
                self.open.pop()
            self.expect_key = False
        elif char in ",:":
            self.expect_key = char == "," and self.open[-1:] == ["{"]

    @property
    def at_key(self) -> bool:
        """Whether the current position is (inside) an object key."""
        return self.in_key if self.in_string else self.expect_key


def _split_template(template: str, json_template: bool) -> tuple[str | _Slot, ...]:
    """The template as literal text and placeholder slots; a placeholder key is an error."""
    parts: list[str | _Slot] = []
    scanner, position, literal = _JsonScanner(), 0, 0
    while position < len(template):
        slot = _PLACEHOLDER.match(template, position)
        if slot is None:
            if json_template:
                scanner.feed(template[position])
            position += 1
            continue
        if json_template and scanner.at_key:
            raise InputTransformError(
                f"input_template: the placeholder <{slot[1]}> cannot be used as an object key"
            )
        in_string = scanner.in_string or not json_template
        parts += [template[literal:position], _Slot(slot[1], in_string)]
        position = literal = slot.end()
    parts.append(template[literal:])
    return tuple(part for part in parts if part != "")


@dataclass(frozen=True, slots=True)
class _Verbatim:
    """JSON text inserted as it is wherever its placeholder stands (the predefined events)."""

    text: str


def _dumps(value: Any) -> str:
    """Minified JSON, non-ASCII kept, as EventBridge writes it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_as_dict)


def _as_dict(value: Any) -> dict[str, Any]:
    """A mapping that is not a dict (a frozen event), for json.dumps."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _fill(value: Any, in_string: bool) -> str:
    """The text a placeholder's value renders as, in a JSON value or inside a string."""
    if isinstance(value, _Verbatim):
        return value.text
    if value is _MISSING:
        return "" if in_string else '""'
    if not in_string:
        return _dumps(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return _dumps(value).replace('"', "")
    return _dumps(value)


def _event_summary(event: Mapping[str, Any], ingestion_time: str) -> dict[str, Any]:
    """<aws.events.event>: the envelope without `detail`, as AWS writes it."""
    summary = {
        "detailType" if key == "detail-type" else key: event[key]
        for key in _EVENT_SUMMARY_KEYS
        if key in event
    }
    if "time" in summary:
        summary["time"] = ingestion_time
    rest = (k for k in event if k not in _EVENT_SUMMARY_KEYS and k != "detail")
    return summary | {key: event[key] for key in rest}


def _predefined(
    name: str, event: Mapping[str, Any], rule_name: str, rule_arn: str, ingestion_time: str
) -> Any:
    """The value of a predefined <aws.events.*> variable."""
    if name == EVENT:
        return _Verbatim(_dumps(_event_summary(event, ingestion_time)))
    if name == EVENT_JSON:
        return _Verbatim(_dumps(event))
    return {RULE_NAME: rule_name, RULE_ARN: rule_arn, INGESTION_TIME: ingestion_time}[name]


@dataclass(frozen=True, slots=True)
class InputTransformer:
    """Named paths into the event and the template their values fill (`<name>` placeholders)."""

    input_paths: Mapping[str, str]
    input_template: str
    _paths: Mapping[str, _Path] = field(init=False, repr=False, compare=False)
    _parts: tuple[str | _Slot, ...] = field(init=False, repr=False, compare=False)
    _json_template: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        template = self.input_template
        if not isinstance(template, str) or not 1 <= len(template) <= MAX_TEMPLATE_LENGTH:
            raise InputTransformError(
                f"input_template must be 1-{MAX_TEMPLATE_LENGTH} characters long"
            )
        paths = _compile_paths(self.input_paths)
        json_template = template.lstrip().startswith(("{", "["))
        parts = _split_template(template, json_template)
        for part in parts:
            if isinstance(part, _Slot) and part.name not in paths and part.name not in PREDEFINED:
                raise InputTransformError(
                    f"input_template contains invalid placeholder {part.name}: it is neither "
                    "in input_paths nor one of " + ", ".join(sorted(PREDEFINED))
                )
        object.__setattr__(self, "input_paths", {key: p.text for key, p in paths.items()})
        object.__setattr__(self, "_paths", paths)
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(self, "_json_template", json_template)

    def render(
        self, event: Mapping[str, Any], *, rule_name: str, rule_arn: str, ingestion_time: str
    ) -> str:
        """The template filled from `event`; raises InputTransformError for invalid JSON."""
        values = {name: path.select(event) for name, path in self._paths.items()}
        context = (event, rule_name, rule_arn, ingestion_time)
        for part in self._parts:
            if isinstance(part, _Slot) and part.name not in values:
                values[part.name] = _predefined(part.name, *context)
        text = "".join(
            part if isinstance(part, str) else _fill(values[part.name], part.in_string)
            for part in self._parts
        )
        if self._json_template:
            _check_json(text, "the input_template rendered")
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, as stored with the rule."""
        return {"input_paths": dict(self.input_paths), "input_template": self.input_template}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputTransformer:
        """The transformer from its stored form (unknown fields ignored)."""
        return cls(
            input_paths=data.get("input_paths") or {}, input_template=data.get("input_template", "")
        )


def _compile_paths(input_paths: Any) -> dict[str, _Path]:
    """Check the names and paths of `input_paths` against EventBridge's limits; compile them."""
    if not isinstance(input_paths, Mapping):
        raise InputTransformError("input_paths must map names to JSONPaths")
    if len(input_paths) > MAX_INPUT_PATHS:
        raise InputTransformError(
            f"input_paths has {len(input_paths)} entries; the limit is {MAX_INPUT_PATHS}"
        )
    compiled = {}
    for key, path in input_paths.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_PATH_KEY_LENGTH:
            raise InputTransformError(
                f"input_paths key {key!r} must be 1-{MAX_PATH_KEY_LENGTH} characters long"
            )
        if key.lower().startswith("aws."):
            raise InputTransformError(f"input_paths key {key!r} is reserved (starts with aws.)")
        if not _PATH_KEY.fullmatch(key):
            raise InputTransformError(
                f"input_paths key {key!r} must match [A-Za-z0-9_-]+ (letters, digits, _ and -)"
            )
        compiled[key] = _compile_path(path, what=f"input_paths[{key!r}]", brackets=False)
    return compiled


def _check_json(text: str, what: str) -> None:
    """Raise InputTransformError unless `text` is one valid JSON text (no NaN, no Infinity)."""

    def reject(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        json.loads(text, parse_constant=reject)
    except ValueError as exc:
        raise InputTransformError(f"{what} is not valid JSON: {exc}") from exc


@dataclass(frozen=True, slots=True)
class TargetInput:
    """How a target's input is made: whole event (all None), constant, path, or transformer."""

    input: str | None = None
    input_path: str | None = None
    input_transformer: InputTransformer | None = None
    _path: _Path | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        given = [self.input, self.input_path, self.input_transformer]
        if len(given) - given.count(None) > 1:
            raise InputTransformError(
                "Only one of input, input_path or input_transformer may be given for a target"
            )
        if self.input is not None:
            if not isinstance(self.input, str):
                raise InputTransformError(f"input must be a JSON text, got {self.input!r}")
            if len(self.input) > MAX_INPUT_LENGTH:
                raise InputTransformError(
                    f"input is {len(self.input)} characters long; the limit is {MAX_INPUT_LENGTH}"
                )
            _check_json(self.input, "input")
        if self.input_path is not None:
            path = _compile_path(self.input_path, what="input_path", brackets=True)
            object.__setattr__(self, "_path", path)
        if self.input_transformer is not None and not isinstance(
            self.input_transformer, InputTransformer
        ):
            raise InputTransformError("input_transformer must be an InputTransformer")

    @property
    def whole_event(self) -> bool:
        """Whether the target gets the event as it is (the same text for every such target)."""
        return self.input is None and self.input_path is None and self.input_transformer is None

    def render(
        self, event: Mapping[str, Any], *, rule_name: str, rule_arn: str, ingestion_time: str
    ) -> str:
        """The text delivered to the target; InputTransformError if it cannot be made (failed)."""
        if self.input is not None:
            return self.input
        if self.input_transformer is not None:
            return self.input_transformer.render(
                event, rule_name=rule_name, rule_arn=rule_arn, ingestion_time=ingestion_time
            )
        if self._path is None:
            return _dumps(event)
        selected = self._path.select(event)
        if selected is _MISSING:
            raise InputTransformError(f"input_path {self._path.text!r} selects nothing")
        return _dumps(selected)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, as stored with the rule (only the field that is set)."""
        data: dict[str, Any] = {}
        if self.input is not None:
            data["input"] = self.input
        if self.input_path is not None:
            data["input_path"] = self.input_path
        if self.input_transformer is not None:
            data["input_transformer"] = self.input_transformer.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetInput:
        """The target input from its stored form (unknown fields ignored)."""
        transformer = data.get("input_transformer")
        return cls(
            input=data.get("input"),
            input_path=data.get("input_path"),
            input_transformer=(
                None if transformer is None else InputTransformer.from_dict(transformer)
            ),
        )
