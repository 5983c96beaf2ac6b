"""Reading one state's raw fields: which fields each state type has in each query language,
and `StateReader`, which reads and checks them (paths, templates, expressions, numbers)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fanstack.core.asl import choice, intrinsics, jsonata, paths, templates
from fanstack.core.asl.data import is_number
from fanstack.core.asl.retry import Catcher
from fanstack.core.asl.states import JSONATA, JSONPATH

MAX_TIMEOUT_SECONDS = 99_999_999
MAX_VARIABLE_NAME = 80


_FLOW, _IO = frozenset({"Next", "End"}), frozenset({"InputPath", "OutputPath"})
_WORK = frozenset({"Retry", "Catch", "Assign"})
# type -> (fields of both languages, JSONPath-only fields, JSONata-only fields)
_FIELDS: dict[str, tuple[frozenset[str], frozenset[str], frozenset[str]]] = {
    "Pass": (_FLOW | {"Assign"}, _IO | {"Parameters", "Result", "ResultPath"},
             frozenset({"Output"})),
    "Task": (
        _FLOW | _WORK | {"Resource", "TimeoutSeconds", "HeartbeatSeconds", "Credentials"},
        _IO | {"Parameters", "ResultSelector", "ResultPath", "TimeoutSecondsPath",
               "HeartbeatSecondsPath"},
        frozenset({"Arguments", "Output"}),
    ),
    "Choice": (frozenset({"Choices", "Default", "Assign"}), _IO, frozenset({"Output"})),
    "Wait": (_FLOW | {"Seconds", "Timestamp", "Assign"}, _IO | {"SecondsPath", "TimestampPath"},
             frozenset({"Output"})),
    "Succeed": (frozenset(), _IO, frozenset({"Output"})),
    "Fail": (frozenset({"Error", "Cause"}), frozenset({"ErrorPath", "CausePath"}), frozenset()),
    "Parallel": (_FLOW | _WORK | {"Branches"}, _IO | {"Parameters", "ResultSelector", "ResultPath"},
                 frozenset({"Arguments", "Output"})),
    "Map": (
        _FLOW | _WORK | {"ItemProcessor", "Iterator", "ItemSelector", "ItemReader", "ItemBatcher",
                         "ResultWriter", "MaxConcurrency", "ToleratedFailurePercentage",
                         "ToleratedFailureCount", "Label"},
        _IO | {"ItemsPath", "Parameters", "ResultSelector", "ResultPath", "MaxConcurrencyPath",
               "ToleratedFailurePercentagePath", "ToleratedFailureCountPath"},
        frozenset({"Items", "Output"}),
    ),
}
_ALWAYS = frozenset({"Type", "Comment", "QueryLanguage"})
_TERMINAL = frozenset({"Choice", "Succeed", "Fail"})  # no Next, no End
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_payload(template: Any, *, field: str) -> None:
    """`templates.check_template`, where a `.$` field may also read a variable (`$name...`)."""
    templates.check_template(_without_variables(template, field), field=field)


def _without_variables(template: Any, field: str) -> Any:
    """`template` with each variable path checked, then replaced by `$`."""
    if isinstance(template, list):
        return [_without_variables(item, f"{field}[{i}]") for i, item in enumerate(template)]
    if not isinstance(template, Mapping):
        return template
    copy: dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$") and isinstance(value, str) and choice.variable_reference(value):
            choice.check_path(value, field=f"{field}.{key}")
            value = "$"
        copy[key] = _without_variables(value, f"{field}.{key}")
    return copy


def check_int(value: Any, where: str, low: int, high: int) -> int:
    """`value` if it is an integer from `low` to `high` (ValueError naming `where` if not)."""
    if not is_number(value) or not float(value).is_integer() or not low <= value <= high:
        raise ValueError(f"field {where!r} must be an integer from {low} to {high}, not {value!r}")
    return int(value)


class StateReader:
    """One state's raw fields, read and checked for its query language."""

    def __init__(self, name: str, raw: Mapping[str, Any], language: str) -> None:
        self.name, self.raw, self.language = name, raw, language
        self.jsonata = language == JSONATA

    def check_fields(self, kind: str) -> None:
        """Reject fields the state type (in this query language) does not have."""
        both, jsonpath_only, jsonata_only = _FIELDS[kind]
        own, other = jsonpath_only, jsonata_only
        if self.jsonata:
            own, other = other, own
        for name in self.raw:
            if name in other:
                only = JSONPATH if self.jsonata else JSONATA
                raise ValueError(f"field {name!r} is {only}-only; this state's QueryLanguage is "
                                 f"{self.language}")
            if name not in both and name not in own and name not in _ALWAYS:
                raise ValueError(f"field {name!r} is not a field of a {kind} state")

    def common(self, kind: str) -> dict[str, Any]:
        """The fields every state type shares, as State's constructor takes them."""
        comment = self.raw.get("Comment")
        if comment is not None and not isinstance(comment, str):
            raise ValueError("field 'Comment' must be a string")
        assign = self.raw.get("Assign")
        self.check_assign(assign, "Assign")
        self.check_expressions(self.raw.get("Output"), "Output")
        flow = {} if kind in _TERMINAL else self._flow()
        return {
            "name": self.name, "type": kind, "query_language": self.language, "raw": self.raw,
            "comment": comment, "assign": assign, "output": self.raw.get("Output"),
            "has_output": "Output" in self.raw, "input_path": self.io_path("InputPath"),
            "output_path": self.io_path("OutputPath"), **flow,
        }

    def _flow(self) -> dict[str, Any]:
        target, end = self.raw.get("Next"), self.raw.get("End", False)
        if not isinstance(end, bool):
            raise ValueError("field 'End' must be a boolean")
        if target is not None and (not isinstance(target, str) or not target):
            raise ValueError("field 'Next' must name a state")
        if (target is None) == (not end):
            raise ValueError("exactly one of fields 'Next' and 'End: true' is needed")
        return {"next": target, "end": end}

    def io_path(self, name: str, *, reference: bool = False) -> str | None:
        """InputPath/OutputPath/ResultPath/ItemsPath: "$" when absent, None when null."""
        if name not in self.raw:
            return "$"
        value = self.raw[name]
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} must be a path or null")
        if name == "ResultPath" and value.startswith("$$"):
            raise ValueError("field 'ResultPath' cannot write into the context object ($$)")
        if name == "ItemsPath":  # the only one of these that may read a variable
            choice.check_path(value, field=name, reference=reference)
        else:
            paths.check_path(value, field=name, reference=reference)
        return value

    def ref_path(self, name: str) -> str | None:
        """An optional Reference Path field."""
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} must be a path")
        choice.check_path(value, field=name, reference=True)
        return value

    def exclusive_path(self, name: str) -> str | None:
        """`<name>Path`, which may not stand beside `<name>`."""
        if name in self.raw and f"{name}Path" in self.raw:
            raise ValueError(f"fields {name!r} and '{name}Path' are mutually exclusive")
        return self.ref_path(f"{name}Path")

    def path_or_intrinsic(self, name: str) -> str | None:
        """ErrorPath/CausePath: a Reference Path or an intrinsic function call."""
        value = self.raw.get(name)
        if isinstance(value, str) and intrinsics.is_intrinsic(value):
            intrinsics.check_intrinsic(value)
            return value
        return self.ref_path(name)

    def template(self, name: str) -> dict[str, Any] | None:
        """A JSONPath payload template (`.$` keys are paths or intrinsics)."""
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError(f"field {name!r} must be an object")
        check_payload(value, field=name)
        return value

    def payload(self, name: str) -> Any:
        """Parameters-like fields: a JSONPath template, or any JSONata value."""
        if not self.jsonata:
            return self.template(name)
        value = self.raw.get(name)
        self.check_expressions(value, name)
        return value

    def seconds(self, name: str, *, low: int) -> int | str | None:
        """An integer field (`low` to 99999999), or its JSONata expression."""
        value = self.raw.get(name)
        if value is None:
            return None
        if self.is_expression(value):
            jsonata.check_expression(value, field=name)
            return str(value)
        return check_int(value, name, low, MAX_TIMEOUT_SECONDS)

    def number(self, name: str, low: float, high: float) -> float | str | None:
        """A number field from `low` to `high`, or its JSONata expression."""
        value = self.raw.get(name)
        if value is None or self.is_expression(value):
            return self.seconds(name, low=0)
        if not is_number(value) or not low <= value <= high:
            raise ValueError(f"field {name!r} must be a number from {low:g} to {high:g}")
        return float(value)

    def is_expression(self, value: Any) -> bool:
        """Whether `value` is a JSONata expression of a JSONata state."""
        return self.jsonata and isinstance(value, str) and jsonata.is_expression(value)

    def check_expressions(self, value: Any, where: str) -> None:
        """Check every `{% %}` string inside a JSONata state's value."""
        if not self.jsonata:
            return
        if isinstance(value, str) and jsonata.is_expression(value):
            jsonata.check_expression(value, field=where)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.check_expressions(item, f"{where}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.check_expressions(item, f"{where}[{index}]")

    def check_assign(self, assign: Any, where: str) -> None:
        """An `Assign` object: variable names, then paths (JSONPath) or expressions (JSONata)."""
        if assign is None:
            return
        if not isinstance(assign, dict):
            raise ValueError(f"field {where!r} must be an object")
        for key in assign:
            variable = key.removesuffix(".$") if not self.jsonata else key
            if (not _VARIABLE_NAME.fullmatch(variable) or variable == "states"
                    or len(variable) > MAX_VARIABLE_NAME):
                raise ValueError(f"field '{where}.{key}' is not a valid variable name")
        if self.jsonata:
            self.check_expressions(assign, where)
        else:
            check_payload(assign, field=where)

    def check_catcher(self, catcher: Catcher, where: str) -> None:
        """A catcher's ResultPath, Assign and Output."""
        if catcher.result_path is not None and "ResultPath" in catcher.raw:
            if catcher.result_path.startswith("$$"):
                raise ValueError(f"field '{where}.ResultPath' cannot write into the context "
                                 "object ($$)")
            paths.check_path(catcher.result_path, field=f"{where}.ResultPath", reference=True)
        self.check_assign(catcher.assign, f"{where}.Assign")
        self.check_expressions(catcher.output, f"{where}.Output")
