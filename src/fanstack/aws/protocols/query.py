"""The `query` protocol: SNS, STS, and SQS for SDKs older than its JSON protocol.

Requests are form-encoded (`Action=Publish&Version=2010-03-31&TopicArn=...`) in the body of a
POST, or in the query string of a GET. Responses are XML:
`<{Op}Response xmlns=...><{Op}Result>...</{Op}Result><ResponseMetadata><RequestId>`; errors are
`<ErrorResponse><Error><Type>Sender</Type><Code>..</Code><Message>..</Message></Error>
<RequestId>..</RequestId></ErrorResponse>`, with the query code of a query-compatible error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

from fanstack.aws.protocols.base import Params, Protocol
from fanstack.aws.protocols.errors import AwsError
from fanstack.aws.protocols.http import HttpRequest, HttpResponse
from fanstack.aws.protocols.query_form import FormParams
from fanstack.aws.protocols.values import ISO8601, write_scalar_text

XML_CONTENT_TYPE = "text/xml"


class QueryProtocol(Protocol):
    """A service spoken in the query protocol (its own model's, or SQS's query view)."""

    name = "query"
    unknown_operation_code = "InvalidAction"
    validation_code = "ValidationError"

    @property
    def namespace(self) -> str:
        """The XML namespace of responses, as the service's model (or its convention) gives it."""
        metadata = self.model.metadata
        if "xmlNamespace" in metadata:
            return str(metadata["xmlNamespace"])
        return (
            f"http://{metadata.get('endpointPrefix')}.amazonaws.com/doc/{metadata['apiVersion']}/"
        )

    def parse(self, request: HttpRequest) -> tuple[OperationModel, Params]:
        """The operation named by `Action` and its input read from the form parameters."""
        form = FormParams(request.form_pairs())
        action = form.values.get("Action")
        if not action:
            raise AwsError("MissingAction", "The request must contain the parameter Action.")
        operation = self.operation(action)
        shape = operation.input_shape
        if shape is None:
            return operation, {}
        try:
            params = form.read(shape)
        except ValueError as exc:
            code = "InvalidParameterValue" if self.query_compatible else self.validation_code
            query_code = code if self.query_compatible else None
            raise AwsError(code, str(exc), query_code=query_code) from exc
        self.check_required(shape, params)
        return operation, params

    def serialize(
        self, operation: OperationModel, output: Mapping[str, Any], *, request_id: str
    ) -> HttpResponse:
        """`<{Op}Response>` with the output under `<{Op}Result>` and the request id."""
        root = Element(f"{operation.name}Response", xmlns=self.namespace)
        shape = operation.output_shape
        if shape is not None:
            wrapper = shape.serialization.get("resultWrapper") or f"{operation.name}Result"
            result = SubElement(root, str(wrapper))
            _write_members(result, shape, output)
        metadata = SubElement(root, "ResponseMetadata")
        SubElement(metadata, "RequestId").text = request_id
        return _xml_response(200, root)

    def serialize_error(
        self, error: AwsError, *, operation: OperationModel | None, request_id: str
    ) -> HttpResponse:
        """`<ErrorResponse>` with the error's type, code (its query code if any) and message."""
        root = Element("ErrorResponse", xmlns=self.namespace)
        detail = SubElement(root, "Error")
        SubElement(detail, "Type").text = error.fault
        SubElement(detail, "Code").text = self.query_code(error)
        SubElement(detail, "Message").text = error.message
        shape = self.error_shape(error)
        if shape is not None and error.fields:
            fields = {k: v for k, v in error.fields.items() if k.lower() != "message"}
            _write_members(detail, shape, fields)
        SubElement(root, "RequestId").text = request_id
        return _xml_response(self.wire_status(error), root)


def _xml_response(status: int, root: Element) -> HttpResponse:
    body = tostring(root, encoding="utf-8", xml_declaration=False)
    return HttpResponse(status, {"Content-Type": XML_CONTENT_TYPE}, body)


def _xml_name(name: str, shape: Shape) -> str:
    # botocore reads a flattened list by its member's locationName when it has one.
    if isinstance(shape, ListShape) and shape.serialization.get("flattened"):
        member_name = shape.member.serialization.get("name")
        if member_name:
            return str(member_name)
    return str(shape.serialization.get("name", name))


def _write_members(parent: Element, shape: StructureShape, value: Mapping[str, Any]) -> None:
    for name, member in shape.members.items():
        if value.get(name) is not None:
            _write(parent, _xml_name(name, member), member, value[name])


def _write(parent: Element, name: str, shape: Shape, value: Any) -> None:
    if isinstance(shape, StructureShape):
        _write_members(SubElement(parent, name), shape, value)
    elif isinstance(shape, ListShape):
        if shape.serialization.get("flattened"):
            container, item_name = parent, name
        else:
            container = SubElement(parent, name)
            item_name = str(shape.member.serialization.get("name", "member"))
        for item in value:
            _write(container, item_name, shape.member, item)
    elif isinstance(shape, MapShape):
        _write_map(parent, name, shape, value)
    else:
        SubElement(parent, name).text = write_scalar_text(shape, value, ISO8601)


def _write_map(parent: Element, name: str, shape: MapShape, value: Mapping[Any, Any]) -> None:
    key_name = str(shape.key.serialization.get("name", "key"))
    value_name = str(shape.value.serialization.get("name", "value"))
    flattened = shape.serialization.get("flattened")
    container = parent if flattened else SubElement(parent, name)
    for key, item in value.items():
        entry = SubElement(container, name if flattened else "entry")
        _write(entry, key_name, shape.key, key)
        _write(entry, value_name, shape.value, item)
