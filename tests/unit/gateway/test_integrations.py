"""Integrations with targets in memory: the message a route's templates make, where it goes,
and how each outcome (stored, a function's result or error, a refusal) is answered."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.responses import Response

from fanstack.core.errors import (
    BackendUnavailable,
    FunctionError,
    InvalidParameterValue,
    MessageTooLarge,
    QueueDoesNotExist,
    TooManyRequests,
)
from fanstack.gateway.expressions import RequestContext
from fanstack.gateway.integrations import Integration, Targets, integrate

CONTEXT = RequestContext(
    path={"kind": "a"},
    headers={"x-tenant": "t-9"},
    body={"order": {"id": "o-1"}},
    request_id="req-1",
    claims={"sub": "u-42"},
)


@dataclass
class Destination:
    """A topic, queue and function in one, recording what it was given."""

    received: list[dict[str, Any]] = field(default_factory=list)
    result: Any = None
    error: Exception | None = None

    def _take(self, **given: Any) -> Any:
        if self.error is not None:
            raise self.error
        self.received.append(given)
        return f"id-{len(self.received)}"

    def publish(self, body: Any, attributes: Mapping[str, Any] | None = None, **ids: Any) -> str:
        return str(self._take(body=body, attributes=attributes, **ids))

    def send(self, body: Any, attributes: Mapping[str, Any] | None = None, **ids: Any) -> str:
        return str(self._take(body=body, attributes=attributes, **ids))

    def put_event(self, source: str, detail_type: str, detail: Any) -> str:
        return str(self._take(source=source, detail_type=detail_type, detail=detail))

    def invoke(self, payload: Any) -> Any:
        self._take(body=payload)
        return self.result

    def invoke_async(self, payload: Any) -> str:
        return str(self._take(body=payload))


def targets(destination: Destination) -> Targets:
    return Targets(
        topics={"events": destination},
        queues={"inbox": destination},
        functions={"echo": destination},
        buses={"shop": destination},
    )


def run(integration: Integration, destination: Destination) -> tuple[Response, Any]:
    response = integrate(integration, targets(destination), CONTEXT)
    return response, json.loads(bytes(response.body)) if response.body else None


def test_a_publish_renders_the_message_and_answers_its_id() -> None:
    destination = Destination()
    integration = Integration(
        kind="publish",
        target="events",
        body={"order": "$request.body#/order/id", "market": None},
        defaults={"market": "eu", "order": "never"},
        attributes={"kind": "$request.path.kind", "user": "$context.claims.sub", "x": ""},
        group_id="$request.header.x-tenant",
        deduplication_id="$request.body#/order/id",
    )
    response, payload = run(integration, destination)
    assert (response.status_code, payload) == (202, {"message_id": "id-1"})
    assert destination.received == [
        {
            "body": {"order": "o-1", "market": "eu"},  # a default fills what is missing only
            "attributes": {"kind": "a", "user": "u-42"},  # empty attributes are left out
            "group_id": "t-9",
            "deduplication_id": "o-1",
        }
    ]


def test_a_send_answers_the_response_template_with_the_stored_message() -> None:
    integration = Integration(
        kind="send",
        target="inbox",
        status=201,
        response={
            "id": "$message.id",
            "order": "$message.body#/order/id",
            "by": "$context.claims.sub",
        },
    )
    response, payload = run(integration, Destination())
    assert response.status_code == 201
    assert payload == {"id": "id-1", "order": "o-1", "by": "u-42"}


def test_invoke_answers_the_result_or_the_proxy_response_it_describes() -> None:
    plain = Destination(result={"echo": 1})
    response, payload = run(Integration(kind="invoke", target="echo"), plain)
    assert (response.status_code, payload) == (200, {"echo": 1})
    assert plain.received == [{"body": {"order": {"id": "o-1"}}}]
    proxy = Destination(result={"statusCode": 201, "headers": {"x-made": 1}, "body": {"a": 1}})
    response, payload = run(Integration(kind="invoke", target="echo"), proxy)
    assert (response.status_code, payload) == (201, {"a": 1})
    assert response.headers["x-made"] == "1"
    assert response.headers["content-type"] == "application/json"
    text = Destination(result={"statusCode": 204, "body": ""})
    assert run(Integration(kind="invoke", target="echo"), text)[0].status_code == 204


def test_invoke_async_answers_202_with_the_request_id() -> None:
    response, payload = run(Integration(kind="invoke_async", target="echo"), Destination())
    assert (response.status_code, payload) == (202, {"request_id": "id-1"})


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (TooManyRequests("echo is at its concurrency limit"), 429, "concurrency limit"),
        (MessageTooLarge("the message is 300000 bytes"), 413, "300000 bytes"),
        (BackendUnavailable("database is locked"), 503, "Service Unavailable: database is locked"),
        (QueueDoesNotExist("inbox"), 400, "inbox"),
        (RuntimeError("a bug"), 503, "Service Unavailable: the message was not stored"),
    ],
)
def test_a_refusal_is_answered_in_the_error_shape(
    error: Exception, status: int, message: str
) -> None:
    response, payload = run(Integration(kind="send", target="inbox"), Destination(error=error))
    assert response.status_code == status
    assert payload["request_id"] == "req-1"
    assert message in payload["message"]
    assert "a bug" not in payload["message"]
    if status == 429:
        assert response.headers["retry-after"] == "1"
    if status == 400:
        assert payload["code"] == "AWS.SimpleQueueService.NonExistentQueue"


def test_a_function_error_is_a_502_in_lambdas_shape() -> None:
    failing = Destination(error=FunctionError("ValueError", "asked to fail", ["line 1"]))
    response, payload = run(Integration(kind="invoke", target="echo"), failing)
    assert response.status_code == 502
    assert payload == {
        "errorType": "ValueError",
        "errorMessage": "asked to fail",
        "stackTrace": ["line 1"],
    }


def test_a_message_that_would_not_be_json_is_not_handed_on() -> None:
    destination = Destination()
    nan_claims = RequestContext(request_id="req-1", claims={"score": math.nan})
    integration = Integration(kind="send", target="inbox", body={"claims": "$context.claims"})
    response = integrate(integration, targets(destination), nan_claims)
    assert response.status_code == 400
    (error,) = json.loads(bytes(response.body))["errors"]
    assert (error["in"], error["name"]) == ("message", "/claims/score")
    assert destination.received == []


def test_an_integration_is_checked_when_declared() -> None:
    with pytest.raises(InvalidParameterValue, match="integration type 'email'"):
        Integration(kind="email", target="inbox")
    with pytest.raises(InvalidParameterValue, match=r"integration attributes\.user"):
        Integration(kind="send", target="inbox", attributes={"user": "$ctx.sub"})
    assert Integration(kind="send", target="inbox").success_status == 202
    assert Integration(kind="invoke", target="echo").success_status == 200


def test_targets_say_which_integrations_they_declare() -> None:
    declared = targets(Destination())
    assert declared.declares(Integration(kind="publish", target="events"))
    assert declared.declares(Integration(kind="invoke_async", target="echo"))
    assert not declared.declares(Integration(kind="send", target="events"))  # a topic, not a queue


def test_put_events_maps_the_request_to_an_event_and_answers_its_id() -> None:
    destination = Destination()
    integration = Integration(
        kind="put_events",
        target="shop",
        source="$request.header.x-tenant",
        detail_type="OrderPlaced",
        body={"order": "$request.body#/order/id", "by": "$context.claims.sub"},
    )
    response, payload = run(integration, destination)
    assert (response.status_code, payload) == (202, {"event_id": "id-1"})
    assert destination.received == [
        {
            "source": "t-9",
            "detail_type": "OrderPlaced",
            "detail": {"order": "o-1", "by": "u-42"},
        }
    ]


def test_put_events_needs_source_and_detail_type_and_only_it_takes_them() -> None:
    with pytest.raises(InvalidParameterValue, match="source and detail_type"):
        Integration(kind="put_events", target="shop", source="s")
    with pytest.raises(InvalidParameterValue, match="source and detail_type"):
        Integration(kind="publish", target="events", source="s", detail_type="d")


def test_a_task_callback_needs_a_token_and_one_of_success_failure_heartbeat() -> None:
    Integration(kind="task_callback", target="success", task_token="$request.path.token")
    with pytest.raises(InvalidParameterValue, match="needs task_token"):
        Integration(kind="task_callback", target="success")
    with pytest.raises(InvalidParameterValue, match="success, failure, heartbeat"):
        Integration(kind="task_callback", target="done", task_token="$request.path.token")
    with pytest.raises(InvalidParameterValue, match="needs task_token"):
        Integration(kind="send", target="inbox", task_token="$request.path.token")
