"""The `rest-json` protocol: EventBridge Scheduler, Lambda's Invoke.

The operation is found by method and path against each operation's `requestUri`; members come
from URI labels, the query string, headers and a JSON body (or a raw `payload` member).
Responses use the operation's `responseCode`, header members and a JSON body (or the raw
payload); errors carry `x-amzn-ErrorType: {code}` and `{"message": ...}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.model import OperationModel, ServiceModel, Shape, StructureShape

from fanstack.aws.protocols.base import Params, Protocol
from fanstack.aws.protocols.errors import AwsError
from fanstack.aws.protocols.http import HttpRequest, HttpResponse
from fanstack.aws.protocols.json_rpc import dump_json, error_document, load_json_body
from fanstack.aws.protocols.json_shapes import read_json, write_json, write_json_members
from fanstack.aws.protocols.rest_locations import is_located, read_located, write_headers
from fanstack.aws.protocols.uri_template import UriTemplate

JSON_CONTENT_TYPE = "application/json"


def operation_routes(model: ServiceModel) -> list[tuple[UriTemplate, OperationModel]]:
    """Every operation of `model` with its compiled request URI, most specific first."""
    routes = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        http = operation.http
        template = UriTemplate.compile(http.get("method", "POST"), http.get("requestUri", "/"))
        routes.append((template, operation))
    routes.sort(key=lambda route: route[0].specificity, reverse=True)
    return routes


def match_route(
    routes: list[tuple[UriTemplate, OperationModel]], request: HttpRequest
) -> tuple[OperationModel, dict[str, str], UriTemplate] | None:
    """The operation `request` calls, with its label values, if any route matches."""
    pairs = request.query_pairs()
    for template, operation in routes:
        labels = template.match(request.method, request.path, pairs)
        if labels is not None:
            return operation, labels, template
    return None


class RestJsonProtocol(Protocol):
    """A service whose model says `rest-json`."""

    name = "rest-json"
    unknown_operation_status = 404

    def __init__(self, model: ServiceModel) -> None:
        super().__init__(model)
        self.routes = operation_routes(model)

    def parse(self, request: HttpRequest) -> tuple[OperationModel, Params]:
        """The operation matching the request's method and path, and its input params."""
        found = match_route(self.routes, request)
        if found is None:
            raise AwsError(
                self.unknown_operation_code,
                f"No operation matches {request.method} {request.path}.",
                status=self.unknown_operation_status,
            )
        operation, labels, template = found
        shape = operation.input_shape
        if shape is None:
            return operation, {}
        reserved = {name for name, _ in template.query_literals}
        try:
            params = read_located(shape, labels, request.query_pairs(), request.headers, reserved)
        except ValueError as exc:
            raise AwsError("SerializationException", f"Invalid request parameter: {exc}") from exc
        params.update(self._read_body(shape, request.body))
        self.check_required(shape, params)
        return operation, params

    def _read_body(self, shape: StructureShape, body: bytes) -> dict[str, Any]:
        payload = shape.serialization.get("payload")
        if payload is None:
            document = read_json(shape, load_json_body(body))
            return {k: v for k, v in document.items() if not is_located(shape.members[k])}
        member = shape.members[payload]
        if member.type_name == "blob":
            return {payload: body} if body else {}
        if member.type_name == "string":
            return {payload: body.decode("utf-8")} if body else {}
        if not body.strip():
            return {}
        if isinstance(member, StructureShape) and member.is_document_type:
            return {payload: load_json_body(body)}
        value = read_json(member, load_json_body(body), payload)
        return {payload: value} if value else {}

    def serialize(
        self, operation: OperationModel, output: Mapping[str, Any], *, request_id: str
    ) -> HttpResponse:
        """The output with the operation's status code, header members and JSON (or raw) body."""
        status = int(operation.http.get("responseCode", 200))
        headers = {"x-amzn-RequestId": request_id}
        shape = operation.output_shape
        if shape is None:
            return HttpResponse(status, headers, b"")
        for name, member in shape.members.items():
            if member.serialization.get("location") == "statusCode" and output.get(name):
                status = int(output[name])
        write_headers(shape, output, headers)
        payload = shape.serialization.get("payload")
        if payload is None:
            headers.setdefault("Content-Type", JSON_CONTENT_TYPE)
            body = dump_json(write_json_members(shape, output, skip_located=True))
        else:
            body = _payload_body(shape.members[payload], output.get(payload), headers)
        return HttpResponse(status, headers, body)

    def serialize_error(
        self, error: AwsError, *, operation: OperationModel | None, request_id: str
    ) -> HttpResponse:
        """`x-amzn-ErrorType` naming the code, and the message (and modeled fields) as JSON."""
        headers = {
            "Content-Type": JSON_CONTENT_TYPE,
            "x-amzn-RequestId": request_id,
            "x-amzn-ErrorType": self.type_code(error),
        }
        shape = self.error_shape(error)
        if shape is not None and error.fields:
            write_headers(shape, error.fields, headers)
        body = dump_json(error_document(error, self))
        return HttpResponse(self.wire_status(error), headers, body)


def _payload_body(member: Shape, value: Any, headers: dict[str, str]) -> bytes:
    if value is None:
        return b""
    if member.type_name == "blob":
        headers.setdefault("Content-Type", "application/octet-stream")
        return bytes(value) if not isinstance(value, str) else value.encode("utf-8")
    if member.type_name == "string":
        headers.setdefault("Content-Type", "text/plain")
        return str(value).encode("utf-8")
    headers.setdefault("Content-Type", JSON_CONTENT_TYPE)
    return json.dumps(write_json(member, value)).encode("utf-8")
