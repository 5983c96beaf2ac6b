"""`Protocol`: the one interface every wire protocol implements, and the policy they share.

A protocol reads a request into an operation and its input params, shaped as botocore's client
built them, and writes an operation's output or an `AwsError` back as the service would answer.
Which code names a missing parameter or an unknown operation differs between protocols, so each
states it as class attributes; the walk that finds a missing member lives here once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from botocore.model import (
    ListShape,
    MapShape,
    OperationModel,
    ServiceModel,
    Shape,
    StructureShape,
)

from fanstack.aws.protocols.errors import AwsError
from fanstack.aws.protocols.http import HttpRequest, HttpResponse
from fanstack.aws.protocols.models import is_query_compatible

Params = dict[str, Any]


class Protocol(ABC):
    """One service model spoken in one wire protocol (`query`, `json` or `rest-json`)."""

    name: str = ""
    unknown_operation_code = "UnknownOperationException"
    unknown_operation_status = 400
    validation_code = "ValidationException"

    def __init__(self, model: ServiceModel) -> None:
        self.model = model
        self.query_compatible = is_query_compatible(model)
        # Operation models by name, made once (botocore builds them on first use anyway).
        self._operations: dict[str, OperationModel] = {}

    @abstractmethod
    def parse(self, request: HttpRequest) -> tuple[OperationModel, Params]:
        """The operation `request` calls and its input params; raises `AwsError` if malformed."""

    @abstractmethod
    def serialize(
        self, operation: OperationModel, output: Mapping[str, Any], *, request_id: str
    ) -> HttpResponse:
        """The response to `operation` carrying `output` (a dict of its output shape)."""

    @abstractmethod
    def serialize_error(
        self, error: AwsError, *, operation: OperationModel | None, request_id: str
    ) -> HttpResponse:
        """The error response for `error`, in this protocol's exact shape."""

    def operation(self, name: str) -> OperationModel:
        """The operation called `name`, or the protocol's unknown-operation error."""
        known = self._operations.get(name)
        if known is not None:
            return known
        if name not in self.model.operation_names:
            raise AwsError(
                self.unknown_operation_code,
                f"The action {name} is not valid for this web service.",
                status=self.unknown_operation_status,
                query_code="InvalidAction" if self.query_compatible else None,
            )
        known = self._operations[name] = self.model.operation_model(name)
        return known

    def check_required(self, shape: Shape | None, value: Any, path: str = "") -> None:
        """Raise the protocol's validation error for the first required member `value` lacks."""
        if shape is None or value is None:
            return
        if isinstance(shape, StructureShape) and isinstance(value, Mapping):
            for member in shape.required_members:
                if value.get(member) is None:
                    raise self.missing_parameter(f"{path}.{member}" if path else member)
            for member, member_shape in shape.members.items():
                if member in value:
                    nested = f"{path}.{member}" if path else member
                    self.check_required(member_shape, value[member], nested)
        elif isinstance(shape, ListShape) and isinstance(value, list):
            for index, item in enumerate(value, 1):
                self.check_required(shape.member, item, f"{path}.{index}")
        elif isinstance(shape, MapShape) and isinstance(value, Mapping):
            for key, item in value.items():
                self.check_required(shape.value, item, f"{path}.{key}")

    def missing_parameter(self, path: str) -> AwsError:
        """The error for a required member that is absent, as this service reports it."""
        if self.query_compatible or self.validation_code == "MissingParameter":
            return AwsError(
                "MissingParameter",
                f"The request must contain the parameter {path}.",
                query_code="MissingParameter" if self.query_compatible else None,
            )
        coral_path = ".".join(part[:1].lower() + part[1:] for part in path.split("."))
        return AwsError(
            self.validation_code,
            f"1 validation error detected: Value null at '{coral_path}' failed to satisfy "
            "constraint: Member must not be null",
        )

    def error_shape(self, error: AwsError) -> StructureShape | None:
        """The model's shape for `error` (by wire code or shape name), if the service models it."""
        # botocore-stubs declares the code an int; botocore looks it up as the string it is.
        shape = self.model.shape_for_error_code(error.code)  # type: ignore[arg-type]
        if shape is None and error.code in self.model.shape_names:
            shape = self.model.shape_for(error.code)
        if isinstance(shape, StructureShape) and shape.metadata.get("exception"):
            return shape
        return None

    def type_code(self, error: AwsError) -> str:
        """The code JSON protocols send as the error's type: its modeled shape's name if any."""
        shape = self.error_shape(error)
        return shape.name if shape is not None else error.code

    def query_code(self, error: AwsError) -> str:
        """The query code: as given, else the modeled `awsQueryError` code, else `code`."""
        if error.query_code:
            return error.query_code
        shape = self.error_shape(error)
        if shape is not None:
            return str(shape.metadata.get("error", {}).get("code", error.code))
        return error.code

    def wire_status(self, error: AwsError) -> int:
        """The HTTP status of `error`: as given, else the modeled shape's, else 400."""
        shape = self.error_shape(error)
        if error.status_given or shape is None:
            return error.status
        return int(shape.metadata.get("error", {}).get("httpStatusCode", error.status))
