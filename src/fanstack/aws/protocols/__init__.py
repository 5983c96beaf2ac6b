"""The AWS wire protocols, driven by botocore's service models.

`identify` tells which service a request is for; `protocol_for` gives the `Protocol` that reads
its operation and params and writes the answer (`query`, `json` 1.0/1.1 or `rest-json`), with
errors as `AwsError`. Nothing here knows an operation by name: the models say it all.
"""

from __future__ import annotations

from functools import cache

from botocore.model import ServiceModel

from fanstack.aws.protocols.base import Params, Protocol
from fanstack.aws.protocols.errors import AwsError
from fanstack.aws.protocols.http import HttpRequest, HttpResponse
from fanstack.aws.protocols.identify import identify
from fanstack.aws.protocols.json_rpc import JsonProtocol
from fanstack.aws.protocols.models import SERVICES, service_model, wire_protocol
from fanstack.aws.protocols.query import QueryProtocol
from fanstack.aws.protocols.rest_json import RestJsonProtocol
from fanstack.aws.protocols.sqs_query import sqs_query_model

__all__ = [
    "SERVICES",
    "AwsError",
    "HttpRequest",
    "HttpResponse",
    "Params",
    "Protocol",
    "identify",
    "is_query_request",
    "protocol_for",
    "service_model",
]

_PROTOCOLS: dict[str, type[Protocol]] = {
    "query": QueryProtocol,
    "json": JsonProtocol,
    "rest-json": RestJsonProtocol,
}


def protocol_for(model: ServiceModel, request: HttpRequest | None = None) -> Protocol:
    """The protocol a current botocore client speaks to `model`'s service.

    Given the `request`, a query-protocol call (`Action=`) to SQS gets SQS's query protocol,
    which SDKs older than its JSON protocol speak.
    """
    if request is not None and model.service_name == "sqs" and is_query_request(request):
        return _protocol(sqs_query_model())
    return _protocol(model)


def is_query_request(request: HttpRequest) -> bool:
    """Whether `request` is a query-protocol call (an `Action=` parameter, no `X-Amz-Target`)."""
    if request.header("x-amz-target"):
        return False
    return any(name == "Action" for name, _ in request.form_pairs())


@cache
def _protocol(model: ServiceModel) -> Protocol:
    name = wire_protocol(model)
    if name not in _PROTOCOLS:
        raise ValueError(f"{model.service_name} speaks {name}, which fanstack does not serve")
    return _PROTOCOLS[name](model)
