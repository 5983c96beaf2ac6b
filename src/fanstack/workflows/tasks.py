"""What a Task state's `Resource` runs: a fanstack function, or a service integration.

- a function: its name, or a Lambda-shaped ARN ending `function:<name>`; the payload is the
  event, the result the task's result. `arn:aws:states:::lambda:invoke` takes
  `{"FunctionName", "Payload"}` and answers `{"Payload", "StatusCode", "ExecutedVersion"}`.
- `arn:aws:states:::sqs:sendMessage` (`QueueUrl` or a queue name, `MessageBody`),
  `...:sns:publish` (`TopicArn` or a topic name, `Message`, `Subject`),
  `...:events:putEvents` (`Entries` with `EventBusName`, `Source`, `DetailType`, `Detail`),
  `...:states:startExecution` (`StateMachineArn`, `Input`, `Name`); its `.sync` and `.sync:2`
  forms wait for the child and are the engine's (`Engine.start_child`).

A function's error fails the task with the error's type as its name and Lambda's error object
as its cause, as Step Functions reports it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.errors import FanstackError
from fanstack.core.events import EntryError, EventEntry, check_request, ingress_queue, make_event
from fanstack.core.message import OutgoingMessage
from fanstack.core.outcome import Outcome
from fanstack.core.records import PublishRequest
from fanstack.workflows.starts import start_stored
from fanstack.workflows.store import Store
from fanstack.workflows.task_states import TaskFailed

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SQS_SEND = "arn:aws:states:::sqs:sendMessage"
SNS_PUBLISH = "arn:aws:states:::sns:publish"
EVENTS_PUT = "arn:aws:states:::events:putEvents"
SFN_START = "arn:aws:states:::states:startExecution"
WAIT_FOR_TOKEN = ".waitForTaskToken"

RunFunction = Callable[[str, Any], Outcome]


class Tasks:
    """Runs task resources against one backend and the app's functions."""

    def __init__(self, backend: Callable[[], Backend], run_function: RunFunction) -> None:
        self._backend = backend
        self.run_function = run_function

    def __call__(self, resource: str, payload: Any, context: Mapping[str, Any]) -> Any:
        """The task's result; raises TaskFailed."""
        base = resource.removesuffix(WAIT_FOR_TOKEN)
        try:
            if base == LAMBDA_INVOKE:
                return self.lambda_invoke(payload)
            if base == SQS_SEND:
                return self.send_message(payload)
            if base == SNS_PUBLISH:
                return self.publish(payload)
            if base == EVENTS_PUT:
                return self.put_events(payload)
            if base == SFN_START:
                return self.start_execution(payload)
            if base.startswith("arn:aws:states:::"):
                raise TaskFailed("States.Runtime", f"resource {resource!r} is not supported")
            return self.function(function_name(base), payload)
        except FanstackError as error:
            raise TaskFailed(_service_error(base, error), str(error)) from error

    def function(self, name: str, payload: Any) -> Any:
        """Invoke a function and wait for its result."""
        outcome = self.run_function(name, payload)
        if outcome.ok:
            return outcome.result
        error = dict(outcome.error or {})
        name_of_error = str(error.get("errorType") or "Lambda.Unknown")
        if outcome.signal is not None:
            name_of_error = "Lambda.TooManyRequestsException"
        raise TaskFailed(name_of_error, json.dumps(error))

    def lambda_invoke(self, payload: Any) -> dict[str, Any]:
        """`lambda:invoke`: the function's result wrapped as Lambda's Invoke API answers."""
        if not isinstance(payload, Mapping) or "FunctionName" not in payload:
            raise TaskFailed("States.Runtime", "lambda:invoke needs Parameters.FunctionName")
        result = self.function(function_name(str(payload["FunctionName"])), payload.get("Payload"))
        return {"ExecutedVersion": "$LATEST", "Payload": result, "StatusCode": 200}

    def send_message(self, payload: Any) -> dict[str, Any]:
        """`sqs:sendMessage`."""
        queue = _last_part(_required(payload, "QueueUrl"))
        body = payload.get("MessageBody")
        text = body if isinstance(body, str) else json.dumps(body)
        message = OutgoingMessage(
            id=str(uuid.uuid4()),
            body=text,
            group_id=payload.get("MessageGroupId"),
            deduplication_id=payload.get("MessageDeduplicationId"),
        )
        [outcome] = self._backend().send(queue, [message])
        if isinstance(outcome, FanstackError):
            raise outcome
        return {"MessageId": outcome, "MD5OfMessageBody": _md5(text)}

    def publish(self, payload: Any) -> dict[str, Any]:
        """`sns:publish`."""
        topic = _last_part(_required(payload, "TopicArn"))
        body = payload.get("Message")
        text = body if isinstance(body, str) else json.dumps(body)
        request = PublishRequest(body=text, subject=payload.get("Subject"))
        [outcome] = self._backend().publish(topic, [request])
        if isinstance(outcome, FanstackError):
            raise outcome
        return {"MessageId": outcome}

    def put_events(self, payload: Any) -> dict[str, Any]:
        """`events:putEvents`: to each entry's bus (default: `default`)."""
        raw = _required(payload, "Entries")
        if not isinstance(raw, list):
            raise TaskFailed("States.Runtime", "events:putEvents needs a list of Entries")
        backend = self._backend()
        entries = [EventEntry.from_dict(entry) for entry in raw]
        check_request(entries)
        results: list[dict[str, Any]] = []
        failed = 0
        for entry, raw_entry in zip(entries, raw, strict=True):
            bus = _last_part(str(raw_entry.get("EventBusName") or "default"))
            try:
                event = make_event(entry, event_id=str(uuid.uuid4()), now=backend.clock())
            except EntryError as error:
                results.append({"ErrorCode": error.code, "ErrorMessage": str(error)})
                failed += 1
                continue
            body = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
            [outcome] = backend.send(
                ingress_queue(bus), [OutgoingMessage(id=event["id"], body=body)]
            )
            if isinstance(outcome, FanstackError):
                raise outcome
            results.append({"EventId": event["id"]})
        return {"Entries": results, "FailedEntryCount": failed}

    def start_execution(self, payload: Any) -> dict[str, Any]:
        """`states:startExecution` (without `.sync`): start it and go on."""
        workflow = str(_required(payload, "StateMachineArn")).rsplit(":", 1)[-1]
        child_input = payload.get("Input", {})
        if isinstance(child_input, str):
            child_input = json.loads(child_input)
        backend = self._backend()
        key = start_stored(backend, workflow, child_input, payload.get("Name"))
        record = Store(backend).execution(key)
        return {"ExecutionArn": record.arn, "StartDate": record.start}


def function_name(resource: str) -> str:
    """A function's name from its name or a Lambda-shaped ARN (`...:function:<name>[:alias]`)."""
    if ":function:" in resource:
        return resource.split(":function:", 1)[1].split(":", 1)[0]
    return resource


def _required(payload: Any, name: str) -> Any:
    if not isinstance(payload, Mapping) or name not in payload:
        raise TaskFailed("States.Runtime", f"the task's Parameters need {name}")
    return payload[name]


def _last_part(reference: str) -> str:
    """A queue's or topic's name from its URL, ARN or name."""
    return reference.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()


def _service_error(resource: str, error: FanstackError) -> str:
    services = {SQS_SEND: "SQS", SNS_PUBLISH: "SNS", EVENTS_PUT: "EventBridge", SFN_START: "SFN"}
    service = services.get(resource)
    name = error.code if error.code.endswith("Exception") else f"{error.code}Exception"
    return f"{service}.{name}" if service else "States.TaskFailed"
