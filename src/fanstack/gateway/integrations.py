"""Integrations: where a route's requests go (`publish`, `send`, `invoke`, `invoke_async`,
`put_events`, `start_workflow`).

An `Integration` is declared with its route: the target, and templates (`expressions`) mapping
the request to the message (body, defaults, attributes, group and deduplication ids; for an
event, `source` and `detail_type`, the body becoming its `detail`) and to the response.
`integrate` renders the message, hands it to the target among the app's `Targets`, and answers:
2xx only once the target has it, 502 with a function's error, 429/413/400 for what the target
refused, 503 when it could not be stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.responses import Response

from fanstack.core.errors import (
    BackendUnavailable,
    FanstackError,
    FunctionError,
    InvalidParameterValue,
    MessageTooLarge,
    TooManyRequests,
)
from fanstack.core.fanout import iso_timestamp
from fanstack.gateway import strict_json
from fanstack.gateway.expressions import RequestContext, Template, check_template, compile_template
from fanstack.gateway.responses import JsonResponse, error_response

log = logging.getLogger("fanstack.gateway")

KINDS = (
    "publish",
    "send",
    "invoke",
    "invoke_async",
    "put_events",
    "start_workflow",
    "task_callback",
)
CALLBACKS = ("success", "failure", "heartbeat")  # the targets of a task_callback route
DEFAULT_STATUS = {
    "publish": 202,
    "send": 202,
    "invoke": 200,
    "invoke_async": 202,
    "put_events": 202,
    "start_workflow": 202,
    "task_callback": 200,
}
EXPRESS_WAIT = 29.0  # API Gateway's integration timeout: how long a route waits for an express run
ANSWER_KEYS = {"invoke_async": "request_id", "put_events": "event_id"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Integration:
    """Where a request goes and how it becomes a message."""

    kind: str
    target: str
    body: Any = "$request.body"
    attributes: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    group_id: str | None = None
    deduplication_id: str | None = None
    status: int | None = None
    response: Any = None
    source: Any = None
    detail_type: Any = None
    execution_name: Any = None  # start_workflow: the execution's name (one start per name)
    task_token: Any = None  # task_callback: where the request carries the task token
    templates: _Templates = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidParameterValue(
                f"integration type {self.kind!r}: use one of {', '.join(KINDS)}"
            )
        event_fields = self.source is not None and self.detail_type is not None
        if (self.kind == "put_events") != event_fields:
            raise InvalidParameterValue(
                "a put_events integration needs source and detail_type (and only it takes them)"
            )
        if self.execution_name is not None and self.kind != "start_workflow":
            raise InvalidParameterValue("only a start_workflow integration takes execution_name")
        if (self.kind == "task_callback") != (self.task_token is not None):
            raise InvalidParameterValue(
                "a task_callback integration needs task_token (and only it takes one)"
            )
        if self.kind == "task_callback" and self.target not in CALLBACKS:
            raise InvalidParameterValue(f"task_callback is one of {', '.join(CALLBACKS)}")
        for name, template in (
            ("task_token", self.task_token),
            ("execution_name", self.execution_name),
            ("source", self.source),
            ("detail_type", self.detail_type),
            ("body", self.body),
            ("attributes", self.attributes),
            ("defaults", self.defaults),
            ("response", self.response),
        ):
            check_template(template, f"integration {name}")
        object.__setattr__(self, "templates", _Templates.of(self))

    @property
    def success_status(self) -> int:
        """The status of a successful response."""
        return self.status or DEFAULT_STATUS[self.kind]


@dataclass(frozen=True, slots=True)
class _Templates:
    """An integration's templates, each made once into a function of a request's context."""

    body: Template
    defaults: tuple[tuple[str, Template], ...]
    attributes: Template
    group_id: Template | None
    deduplication_id: Template | None
    source: Template | None
    detail_type: Template | None
    execution_name: Template | None
    task_token: Template | None
    response: Template | None

    @classmethod
    def of(cls, integration: Integration) -> _Templates:
        def given(template: Any) -> Template | None:
            return compile_template(template) if template else None

        def declared(template: Any) -> Template | None:
            return None if template is None else compile_template(template)

        return cls(
            body=compile_template(integration.body),
            defaults=tuple(  # an OpenAPI document's empty key is None: no defaults
                (key, compile_template(template))
                for key, template in (integration.defaults or {}).items()
            ),
            attributes=compile_template(dict(integration.attributes or {})),
            group_id=given(integration.group_id),
            deduplication_id=given(integration.deduplication_id),
            source=declared(integration.source),
            detail_type=declared(integration.detail_type),
            execution_name=given(integration.execution_name),
            task_token=given(integration.task_token),
            response=declared(integration.response),
        )


class Deliver(Protocol):
    """Publishing to a topic or sending to a queue: the message id, once the message is stored."""

    def __call__(
        self,
        body: Any,
        attributes: Mapping[str, Any] | None = None,
        *,
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> str:
        """Store the message; its id."""
        ...


class DeliverAsync(Protocol):
    """`Deliver` on an event loop, which goes on serving while the message is stored."""

    async def __call__(
        self,
        body: Any,
        attributes: Mapping[str, Any] | None = None,
        *,
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> str:
        """Store the message; its id."""
        ...


class Publisher(Protocol):
    """A topic, as an integration publishes to it."""

    @property
    def publish(self) -> Deliver:
        """Publish; returns the message id."""
        ...

    @property
    def publish_async(self) -> DeliverAsync:
        """Publish from an event loop; returns the message id."""
        ...


class Sender(Protocol):
    """A queue, as an integration sends to it."""

    @property
    def send(self) -> Deliver:
        """Send; returns the message id."""
        ...

    @property
    def send_async(self) -> DeliverAsync:
        """Send from an event loop; returns the message id."""
        ...


class Invocable(Protocol):
    """A function, as an integration invokes it."""

    def invoke(self, payload: Any) -> Any:
        """Run now; the result."""
        ...

    def invoke_async(self, payload: Any) -> str:
        """Queue an invocation; its request id."""
        ...


class Startable(Protocol):
    """A workflow, as an integration starts it."""

    type: str

    def start(self, input: Any, *, name: str | None = None) -> Any:
        """Start an execution; it has `arn`, `describe()` and `wait(timeout)`."""
        ...


class Callbacks(Protocol):
    """What answers tasks waiting for a token (the app's workflows)."""

    def send_task_success(self, token: str, output: Any) -> None:
        """The task succeeded."""
        ...

    def send_task_failure(
        self, token: str, error: str | None = None, cause: str | None = None
    ) -> None:
        """The task failed."""
        ...

    def send_task_heartbeat(self, token: str) -> None:
        """The task is still at work."""
        ...


class EventPutter(Protocol):
    """A bus, as an integration puts an event on it."""

    def put_event(self, source: str, detail_type: str, detail: Any) -> str:
        """Store the event; its id."""
        ...


@dataclass(frozen=True, slots=True)
class Targets:
    """What routes may integrate with: the app's declared topics, queues, functions and buses."""

    topics: Mapping[str, Publisher]
    queues: Mapping[str, Sender]
    functions: Mapping[str, Invocable]
    buses: Mapping[str, EventPutter] = field(default_factory=dict)
    workflows: Mapping[str, Startable] = field(default_factory=dict)
    callbacks: Callbacks | None = None

    def declares(self, integration: Integration) -> bool:
        """Whether the target `integration` names is declared, of the kind it needs."""
        declared: dict[str, Mapping[str, object]] = {
            "publish": self.topics,
            "send": self.queues,
            "invoke": self.functions,
            "invoke_async": self.functions,
            "put_events": self.buses,
            "start_workflow": self.workflows,
            "task_callback": {},
        }
        if integration.kind == "task_callback":
            return self.callbacks is not None
        return integration.target in declared[integration.kind]


@dataclass(frozen=True, slots=True)
class _Message:
    body: Any
    attributes: dict[str, Any]
    group_id: str | None
    deduplication_id: str | None
    source: Any = None
    detail_type: Any = None
    name: Any = None
    token: Any = None


# Integrations whose target stores a message without blocking an event loop (`integrate_async`).
STORING = frozenset({"publish", "send"})


def integrate(integration: Integration, targets: Targets, context: RequestContext) -> Response:
    """Map the request to a message, hand it to its target, and answer (blocking: a thread)."""
    message = _render_message(integration, context)
    refusal = _refusal(message, context)
    if refusal is not None:
        return refusal
    try:
        outcome = _deliver(integration, targets, message)
    except Exception as exc:
        return _failure(exc, context.request_id)
    return _answer(integration, targets, context, message, outcome)


async def integrate_async(
    integration: Integration, targets: Targets, context: RequestContext
) -> Response:
    """`integrate` for the `STORING` kinds, on the event loop: it serves other requests while
    the message is stored, and answers once it is."""
    message = _render_message(integration, context)
    body = _stored_body(message, context)
    if isinstance(body, Response):
        return body
    deliver = (
        targets.topics[integration.target].publish_async
        if integration.kind == "publish"
        else targets.queues[integration.target].send_async
    )
    try:
        outcome = await deliver(
            body,
            attributes=message.attributes,
            group_id=message.group_id,
            deduplication_id=message.deduplication_id,
        )
    except Exception as exc:
        return _failure(exc, context.request_id)
    return _answer(integration, targets, context, message, outcome)


def _refusal(message: _Message, context: RequestContext) -> Response | None:
    """A 400 if the message's body is not strict JSON: never store a body other readers
    cannot parse."""
    try:
        strict_json.check(message.body)
    except strict_json.InvalidJson as exc:
        return _not_json(exc, context)
    return None


def _stored_body(message: _Message, context: RequestContext) -> Any:
    """The body a publish or send stores: a dict or list as the compact JSON text the topic
    or queue would make of it (checked and written in one pass), anything else as it is
    once checked; or `_refusal`'s 400."""
    if not isinstance(message.body, dict | list):
        refusal = _refusal(message, context)
        return message.body if refusal is None else refusal
    try:
        return strict_json.dumps(message.body)
    except strict_json.InvalidJson as exc:
        return _not_json(exc, context)


def _not_json(exc: strict_json.InvalidJson, context: RequestContext) -> Response:
    problem = {"in": "message", "name": exc.pointer, "message": exc.reason}
    return error_response(
        400, "The message would not be JSON", context.request_id, errors=[problem]
    )


def _failure(exc: Exception, request_id: str) -> Response:
    """The answer to a target that failed: what the caller can do about it."""
    if isinstance(exc, FunctionError):
        return JsonResponse(exc.to_dict(), status_code=502)
    if isinstance(exc, TooManyRequests):
        return error_response(429, str(exc), request_id, headers={"Retry-After": "1"})
    if isinstance(exc, MessageTooLarge):
        return error_response(413, str(exc), request_id)
    if isinstance(exc, BackendUnavailable):
        return error_response(503, f"Service Unavailable: {exc}", request_id)
    if isinstance(exc, FanstackError) and exc.sender_fault:
        return error_response(400, str(exc), request_id, code=exc.code)
    log.error("integration failed", exc_info=exc)
    return error_response(503, "Service Unavailable: the message was not stored", request_id)


def _answer(
    integration: Integration,
    targets: Targets,
    context: RequestContext,
    message: _Message,
    outcome: Any,
) -> Response:
    """The response to a delivered message (the integration's template, if it has one)."""
    if integration.kind == "invoke":
        return _function_response(outcome, integration.success_status)
    if integration.kind == "start_workflow":
        return _execution_response(targets.workflows[integration.target], outcome, integration)
    if integration.kind == "task_callback" and integration.response is None:
        return JsonResponse({}, status_code=integration.success_status)
    key = ANSWER_KEYS.get(integration.kind, "message_id")
    response = integration.templates.response
    if response is None:
        payload: Any = {key: outcome}
    else:
        payload = response(context.with_message({"id": outcome, "body": message.body}))
    return JsonResponse(payload, status_code=integration.success_status)


def _render_message(integration: Integration, context: RequestContext) -> _Message:
    """The message the integration's templates make of the request."""
    templates = integration.templates
    body = templates.body(context)
    if isinstance(body, dict):
        for key, template in templates.defaults:
            if body.get(key) is None:
                body[key] = template(context)
    attributes = {
        name: value
        for name, value in templates.attributes(context).items()
        if value not in (None, "")
    }
    return _Message(
        body,
        attributes,
        _optional(templates.group_id, context),
        _optional(templates.deduplication_id, context),
        _optional(templates.source, context),
        _optional(templates.detail_type, context),
        _optional(templates.execution_name, context),
        _optional(templates.task_token, context),
    )


def _optional(template: Template | None, context: RequestContext) -> Any:
    return None if template is None else template(context)


def _deliver(integration: Integration, targets: Targets, message: _Message) -> Any:
    """Hand `message` to the integration's target: a message id, request id or result."""
    target = integration.target
    if integration.kind == "invoke":
        return targets.functions[target].invoke(message.body)
    if integration.kind == "invoke_async":
        return targets.functions[target].invoke_async(message.body)
    if integration.kind == "put_events":
        return targets.buses[target].put_event(message.source, message.detail_type, message.body)
    if integration.kind == "start_workflow":
        return targets.workflows[target].start(
            message.body, name=None if message.name is None else str(message.name)
        )
    if integration.kind == "task_callback":
        return _answer_task(targets, target, message)
    deliver = (
        targets.topics[target].publish
        if integration.kind == "publish"
        else targets.queues[target].send
    )
    return deliver(
        message.body,
        attributes=message.attributes,
        group_id=message.group_id,
        deduplication_id=message.deduplication_id,
    )


def _answer_task(targets: Targets, callback: str, message: _Message) -> str:
    """SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat with the request's token."""
    callbacks = targets.callbacks
    if callbacks is None or not isinstance(message.token, str) or not message.token:
        raise InvalidParameterValue("the request carries no task token")
    if callback == "success":
        callbacks.send_task_success(message.token, message.body)
    elif callback == "failure":
        body = message.body if isinstance(message.body, dict) else {}
        callbacks.send_task_failure(message.token, body.get("error"), body.get("cause"))
    else:
        callbacks.send_task_heartbeat(message.token)
    return message.token


def _execution_response(workflow: Startable, execution: Any, integration: Integration) -> Response:
    """202 with the execution's ARN (StartExecution); an express workflow's result, waited for
    up to 29 seconds (StartSyncExecution)."""
    record = execution.describe()
    if workflow.type != "EXPRESS":
        body = {"execution_arn": record.arn, "start_date": iso_timestamp(record.start)}
        return JsonResponse(body, status_code=integration.success_status)
    try:
        record = execution.wait(timeout=EXPRESS_WAIT)
    except TimeoutError:
        body = {"execution_arn": record.arn, "status": "RUNNING"}
        return JsonResponse(body, status_code=202)
    answer = {
        "execution_arn": record.arn,
        "status": record.status,
        "output": record.output,
        "error": record.error,
        "cause": record.cause,
        "start_date": iso_timestamp(record.start),
        "stop_date": iso_timestamp(record.stop) if record.stop is not None else None,
    }
    return JsonResponse(answer, status_code=200 if record.status == "SUCCEEDED" else 502)


def _function_response(result: Any, status: int) -> Response:
    """A function's result as the response; API Gateway's proxy shape is honoured."""
    if isinstance(result, dict) and isinstance(result.get("statusCode"), int):
        body = result.get("body", "")
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        if not isinstance(body, str):
            body = json.dumps(body)
            headers.setdefault("content-type", "application/json")
        return Response(body, status_code=result["statusCode"], headers=headers)
    return JsonResponse(result, status_code=status)
