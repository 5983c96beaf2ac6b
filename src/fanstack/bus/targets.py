"""How a rule's targets are declared: a queue, topic, function, bus or HTTP endpoint, as is or
wrapped in `Target` for its input, retry policy and dead-letter queue."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fanstack.core.errors import ValidationException
from fanstack.core.rules import (
    API,
    BUS,
    DEFAULT_MAXIMUM_EVENT_AGE,
    DEFAULT_MAXIMUM_RETRY_ATTEMPTS,
    DEFAULT_RATE_LIMIT,
    FUNCTION,
    QUEUE,
    TOPIC,
    WORKFLOW,
    TargetSpec,
)
from fanstack.core.target_input import InputTransformer, TargetInput
from fanstack.resources import Queue, Topic
from fanstack.runtime.functions import Function
from fanstack.workflows import Workflow


class Named(Protocol):
    """A bus (anything with a name and `kind = "bus"`)."""

    name: str
    kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiDestination:
    """An HTTP endpoint as a target: URL, method, headers, invocations per second."""

    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    rate_limit_per_second: int = DEFAULT_RATE_LIMIT


@dataclass(frozen=True, slots=True)
class Target:
    """A target with its options (EventBridge's Input, InputPath, InputTransformer, RetryPolicy,
    DeadLetterConfig and, for a FIFO queue, the message group id)."""

    resource: Any
    id: str | None = None
    input: str | Mapping[str, Any] | list[Any] | None = None
    input_path: str | None = None
    input_transformer: InputTransformer | Mapping[str, Any] | None = None
    maximum_event_age: int = DEFAULT_MAXIMUM_EVENT_AGE
    maximum_retry_attempts: int = DEFAULT_MAXIMUM_RETRY_ATTEMPTS
    dead_letter: Queue | str | None = None
    message_group_id: str | None = None


def target_spec(declared: Any) -> TargetSpec:
    """The spec of a declared target (a resource, an ApiDestination, or a Target)."""
    target = declared if isinstance(declared, Target) else Target(declared)
    kind, resource = _resource(target.resource)
    extra: dict[str, Any] = {}
    if isinstance(target.resource, ApiDestination):
        extra = {
            "http_method": target.resource.method.upper(),
            "headers": dict(target.resource.headers),
            "rate_limit_per_second": target.resource.rate_limit_per_second,
        }
    dead_letter = target.dead_letter
    if isinstance(dead_letter, Queue):
        if dead_letter.spec.fifo:
            raise ValidationException(
                f"target dead-letter queue {dead_letter.name!r} is FIFO; EventBridge takes "
                "standard queues only"
            )
        dead_letter = dead_letter.name
    elif isinstance(dead_letter, str) and dead_letter.endswith(".fifo"):
        raise ValidationException(
            f"target dead-letter queue {dead_letter!r} is FIFO; EventBridge takes standard "
            "queues only"
        )
    if kind == QUEUE and resource.endswith(".fifo") and not target.message_group_id:
        raise ValidationException(
            f"target queue {resource!r} is FIFO: give the target a message_group_id"
        )
    return TargetSpec(
        id=target.id or default_id(kind, resource),
        kind=kind,
        resource=resource,
        input=_input(target),
        maximum_event_age=target.maximum_event_age,
        maximum_retry_attempts=target.maximum_retry_attempts,
        dead_letter=dead_letter,
        message_group_id=target.message_group_id,
        **extra,
    )


def default_id(kind: str, resource: str) -> str:
    """A target id made from what it delivers to (EventBridge requires one; this is stable)."""
    name = resource.split("://", 1)[-1] if kind == API else resource
    return re.sub(r"[^\.\-_A-Za-z0-9]", "-", f"{kind}-{name}")[:64]


def _resource(resource: Any) -> tuple[str, str]:
    if isinstance(resource, Queue):
        return QUEUE, resource.name
    if isinstance(resource, Topic):
        return TOPIC, resource.name
    if isinstance(resource, Function):
        return FUNCTION, resource.name
    if isinstance(resource, ApiDestination):
        return API, resource.url
    if isinstance(resource, Workflow):
        return WORKFLOW, resource.name
    if getattr(resource, "kind", None) == BUS:
        return BUS, str(resource.name)
    raise ValidationException(
        f"a target must be a queue, topic, function, bus, workflow, ApiDestination or Target, "
        "got "
        f"{resource!r}"
    )


def _input(target: Target) -> TargetInput:
    constant = target.input
    if constant is not None and not isinstance(constant, str):
        constant = json.dumps(constant)
    transformer = target.input_transformer
    if isinstance(transformer, Mapping):
        transformer = InputTransformer(
            input_paths=dict(transformer.get("input_paths") or {}),
            input_template=str(transformer.get("input_template", "")),
        )
    return TargetInput(input=constant, input_path=target.input_path, input_transformer=transformer)
