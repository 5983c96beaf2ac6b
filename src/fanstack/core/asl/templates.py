"""Payload templates (Parameters, ResultSelector, ItemSelector, a task's Payload): fields
whose names end in `.$` take the value of a path or of an intrinsic function call.

Apart from `paths` and `intrinsics` because templates use both, and intrinsics read paths.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from fanstack.core.asl import intrinsics
from fanstack.core.asl.data import AslError
from fanstack.core.asl.paths import check_path, select_with_context


def check_template(template: Any, *, field: str) -> None:
    """Validate a payload template: `x.$` fields hold paths or intrinsics; names the key."""
    if isinstance(template, list):
        for index, item in enumerate(template):
            check_template(item, field=f"{field}[{index}]")
        return
    if not isinstance(template, Mapping):
        return
    renamed: dict[str, str] = {}
    for key, value in template.items():
        name = key[:-2] if key.endswith(".$") else key
        if name in renamed:
            raise ValueError(
                f"{field}: the fields {renamed[name]!r} and {key!r} both give the field {name!r}"
            )
        renamed[name] = key
        if key.endswith(".$"):
            _check_dynamic(value, field=f"{field}.{key}")
        else:
            check_template(value, field=f"{field}.{key}")


def _check_dynamic(value: Any, *, field: str) -> None:
    """The value of a `.$` field must be a Path or an intrinsic function call."""
    if not isinstance(value, str):
        raise ValueError(f"{field}: must hold a path or an intrinsic function, got {value!r}")
    if value.startswith("$"):
        check_path(value, field=field)
    elif intrinsics.is_intrinsic(value):
        try:
            intrinsics.check_intrinsic(value)
        except ValueError as exc:
            raise ValueError(f"{field}: invalid intrinsic function: {exc}") from None
    else:
        raise ValueError(f"{field}: {value!r} is neither a path ('$...') nor an intrinsic function")


def render_template(
    template: Any,
    document: Any,
    context: Mapping[str, Any],
    *,
    rng: random.Random | None = None,
) -> Any:
    """Evaluate a payload template: `x.$` fields become `x` with their path's or call's value."""
    if isinstance(template, list):
        return [render_template(item, document, context, rng=rng) for item in template]
    if not isinstance(template, Mapping):
        return template
    payload: dict[str, Any] = {}
    for key, value in template.items():
        if not key.endswith(".$"):
            payload[key] = render_template(value, document, context, rng=rng)
        elif not isinstance(value, str):
            raise AslError("States.Runtime", f"The field {key!r} must hold a path, got {value!r}")
        elif value.startswith("$"):
            payload[key[:-2]] = select_with_context(document, context, value)
        else:
            payload[key[:-2]] = intrinsics.call_intrinsic(value, document, context, rng=rng)
    return payload
