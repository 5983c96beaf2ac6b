"""The `json` protocol (awsJson 1.0 and 1.1): SQS, EventBridge, Step Functions.

Requests are `POST /` with `X-Amz-Target: {targetPrefix}.{Operation}` and a JSON body of the input
shape. Responses are the output shape as JSON, `Content-Type: application/x-amz-json-{version}`.
Errors are `{"__type": code, "message": ...}`; a service with the `awsQueryCompatible` trait (SQS)
also sends `x-amzn-query-error: {query code};{Sender|Receiver}`, which SDKs prefer to the body's
code, so their callers see the codes of the former query API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.model import OperationModel

from fanstack.aws.protocols.base import Params, Protocol
from fanstack.aws.protocols.errors import AwsError, serialization_error
from fanstack.aws.protocols.http import HttpRequest, HttpResponse
from fanstack.aws.protocols.json_shapes import read_json, write_json_members


def load_json_body(body: bytes) -> Any:
    """A request body as JSON (empty means `{}`), or `SerializationException`."""
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise serialization_error(f"The request body is not valid JSON: {exc}") from exc


def dump_json(document: Any) -> bytes:
    """A JSON document as compact UTF-8 bytes."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def error_document(error: AwsError, protocol: Protocol) -> dict[str, Any]:
    """An error's JSON body members: message (under the name its shape uses) and modeled fields."""
    shape = protocol.error_shape(error)
    message_key = "message"
    if shape is not None:
        message_key = next((name for name in shape.members if name.lower() == "message"), "message")
    document: dict[str, Any] = {}
    if shape is not None and error.fields:
        document.update(write_json_members(shape, error.fields, skip_located=True))
    document[message_key] = error.message
    return document


class JsonProtocol(Protocol):
    """A service whose model says `json` (jsonVersion 1.0 or 1.1)."""

    name = "json"

    @property
    def content_type(self) -> str:
        """The `Content-Type` of this service's requests and responses."""
        return f"application/x-amz-json-{self.model.metadata.get('jsonVersion', '1.0')}"

    def parse(self, request: HttpRequest) -> tuple[OperationModel, Params]:
        """The operation named by `X-Amz-Target` and its input read from the JSON body."""
        target = request.header("x-amz-target") or ""
        prefix, _, name = target.rpartition(".")
        if not target or prefix != self.model.metadata.get("targetPrefix"):
            raise AwsError(
                self.unknown_operation_code,
                f"No operation for X-Amz-Target '{target}'.",
                query_code="InvalidAction" if self.query_compatible else None,
            )
        operation = self.operation(name)
        document = load_json_body(request.body)
        shape = operation.input_shape
        if shape is None:
            return operation, {}
        params = read_json(shape, document)
        self.check_required(shape, params)
        return operation, dict(params)

    def serialize(
        self, operation: OperationModel, output: Mapping[str, Any], *, request_id: str
    ) -> HttpResponse:
        """The output shape as a JSON document."""
        shape = operation.output_shape
        document = write_json_members(shape, output) if shape is not None else {}
        return HttpResponse(200, self._headers(request_id), dump_json(document))

    def serialize_error(
        self, error: AwsError, *, operation: OperationModel | None, request_id: str
    ) -> HttpResponse:
        """`{"__type": code, "message": ...}`, plus `x-amzn-query-error` if query compatible."""
        headers = self._headers(request_id)
        if self.query_compatible:
            headers["x-amzn-query-error"] = f"{self.query_code(error)};{error.fault}"
        document = {"__type": self.type_code(error), **error_document(error, self)}
        return HttpResponse(self.wire_status(error), headers, dump_json(document))

    def _headers(self, request_id: str) -> dict[str, str]:
        return {"Content-Type": self.content_type, "x-amzn-RequestId": request_id}
