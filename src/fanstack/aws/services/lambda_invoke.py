"""AWS Lambda's `Invoke`, for the app's functions (the one Lambda operation fanstack answers).

`RequestResponse` runs the function in one of its workers and answers with its result, or with
Lambda's error payload and `X-Amz-Function-Error: Unhandled`; `Event` queues an asynchronous
invocation durably (as `function.invoke_async` does) and answers 202; `DryRun` answers 204. A
function is named by its name, `name:qualifier`, or its (partial) ARN; `$LATEST` is the only
version fanstack has.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.protocols.errors import AwsError
from fanstack.core.errors import FunctionDoesNotExist, FunctionError
from fanstack.runtime.functions import Function

Handler = Callable[[CallContext, Mapping[str, Any]], dict[str, Any]]
LATEST = "$LATEST"
REQUEST_RESPONSE, EVENT, DRY_RUN = "RequestResponse", "Event", "DryRun"


def invoke(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Invoke a function: its result (or error payload), a queued invocation, or a dry run."""
    function = _function(call, str(params.get("FunctionName") or ""), params.get("Qualifier"))
    payload = _payload(params.get("Payload"))
    kind = str(params.get("InvocationType") or REQUEST_RESPONSE)
    if kind == DRY_RUN:
        return {"StatusCode": 204}
    if kind == EVENT:
        function.invoke_async(payload)
        return {"StatusCode": 202}
    if kind != REQUEST_RESPONSE:
        raise AwsError(
            "InvalidParameterValueException",
            f"Unsupported invocation type {kind!r}: use RequestResponse, Event or DryRun",
        )
    answer: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": LATEST}
    if params.get("LogType") == "Tail":
        answer["LogResult"] = _log_tail(call.request_id)
    try:
        result = function.invoke(payload)
    except FunctionError as error:
        answer["FunctionError"] = "Unhandled"
        answer["Payload"] = json.dumps(error.to_dict()).encode()
        return answer
    answer["Payload"] = json.dumps(result).encode()
    return answer


def _function(call: CallContext, reference: str, qualifier: Any) -> Function:
    """The app's function a `FunctionName` (and `Qualifier`) names (ResourceNotFound if none)."""
    rest = reference.split(":function:", 1)[1] if ":function:" in reference else reference
    name, _, version = rest.partition(":")
    version = version or str(qualifier or "") or LATEST
    function = call.app.functions.get(name)
    arn = call.arn("lambda", f"function:{name}")
    if function is None:
        raise FunctionDoesNotExist(f"Function not found: {arn}")
    if version != LATEST:
        raise FunctionDoesNotExist(f"Function not found: {arn}:{version}")
    return function


def _payload(body: Any) -> Any:
    """The event: the request's JSON payload (an empty one is `{}`)."""
    if body is None or not bytes(body).strip():
        return {}
    try:
        return json.loads(bytes(body))
    except ValueError as exc:
        raise AwsError(
            "InvalidRequestContentException",
            f"Could not parse request body into json: {exc}",
        ) from None


def _log_tail(request_id: str) -> str:
    """The last lines of the invocation's log, base64 (fanstack's workers log elsewhere)."""
    lines = f"START RequestId: {request_id} Version: {LATEST}\nEND RequestId: {request_id}\n"
    return base64.b64encode(lines.encode()).decode()


OPERATIONS: dict[str, Handler] = {"Invoke": invoke}
