"""What evaluating a state's fields needs besides its data: the context object (`$$`), the
workflow variables and the random source, with the ways fields are read in either query
language (JSONPath paths and payload templates, JSONata expressions, `Assign`, number fields)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from fanstack.core.asl import choice, jsonata, templates
from fanstack.core.asl.data import AslError, check_size, is_number

RUNTIME_ERROR, QUERY_ERROR = "States.Runtime", "States.QueryEvaluationError"


class Scope:
    """What evaluating a state's fields needs besides the data: context, variables, rng."""

    def __init__(
        self, context: Mapping[str, Any], variables: Mapping[str, Any], rng: random.Random | None
    ) -> None:
        self.context, self.variables, self.rng = context, variables, rng

    def states(self, input: Any, **more: Any) -> dict[str, Any]:
        """JSONata's `$states`."""
        return {"input": input, "context": self.context, **more}

    def query(self, value: Any, states: Mapping[str, Any]) -> Any:
        """A JSONata field's value."""
        return jsonata.evaluate(value, states, self.variables, rng=self.rng)

    def path(self, path: str, document: Any) -> Any:
        """A JSONPath Path's value (data, `$$` context, or a variable)."""
        return choice.read_path(path, document, self.context, self.variables)

    def render(self, template: Any, document: Any) -> Any:
        """A JSONPath payload template; a `.$` field may also read a variable."""
        if isinstance(template, list):
            return [self.render(item, document) for item in template]
        if not isinstance(template, Mapping):
            return template
        payload: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str) and choice.variable_reference(value):
                payload[key[:-2]] = self.path(value, document)
            elif key.endswith(".$"):
                payload.update(templates.render_template({key: value}, document, self.context,
                                                     rng=self.rng))
            else:
                payload[key] = self.render(value, document)
        return payload

    def assign(self, value: Any, states: Mapping[str, Any] | None,
               *blocks: Mapping[str, Any] | None) -> Mapping[str, Any]:
        """The variables after `Assign` blocks (JSONPath: `$` is `value`; JSONata: `states`)."""
        assigned: dict[str, Any] = {}
        for block in blocks:
            if block is not None:
                assigned.update(self.query(block, states) if states is not None
                                else self.render(block, value))
        if not assigned:
            return self.variables
        check_size(assigned, "the variables assigned")
        return {**self.variables, **assigned}

    def number(self, value: int | float | str | None, path: str | None, name: str, input: Any,
               effective: Any, *, low: int, integer: bool = True) -> Any:
        """A number field given as is, as a JSONata expression, or by a `...Path`."""
        found: Any
        if isinstance(value, str):
            found, error = self.query(value, self.states(input)), QUERY_ERROR
        elif path is not None:
            found, error = self.path(path, effective), RUNTIME_ERROR
        else:
            return value
        if not is_number(found) or found < low or (integer and not float(found).is_integer()):
            kind = "an integer" if integer else "a number"
            raise AslError(error, f"{name} must be {kind} of at least {low}, not {found!r}")
        return int(found) if integer else float(found)
