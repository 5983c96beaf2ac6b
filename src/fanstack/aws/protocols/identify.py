"""Which AWS service an HTTP request is for, told by its protocol markers alone.

In order: `X-Amz-Target` (its prefix is a model's `targetPrefix`); a query-protocol `Action=`
(the SigV4 credential scope's service if present, else `Version=` against the models'
`apiVersion`); the credential scope's service for rest-json; and last the method and path
against the rest-json models' request URIs. None means the request is not an AWS call to a
service fanstack speaks, so the server can route it elsewhere.
"""

from __future__ import annotations

import re
from functools import cache

from botocore.model import OperationModel, ServiceModel

from fanstack.aws.protocols.http import HttpRequest
from fanstack.aws.protocols.models import SERVICES, service_model, wire_protocol
from fanstack.aws.protocols.rest_json import match_route, operation_routes
from fanstack.aws.protocols.uri_template import UriTemplate

_CREDENTIAL = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/([^/,\s]+)/aws4_request")
# Lambda is matched by URI for Invoke only: its other routes are not fanstack's to answer.
_URI_OPERATIONS: dict[str, tuple[str, ...] | None] = {"scheduler": None, "lambda": ("Invoke",)}


def identify(request: HttpRequest) -> str | None:
    """The botocore name of the service `request` calls (`sqs`, `events`, ...), or None."""
    target = request.header("x-amz-target")
    if target:
        return _by_target_prefix().get(target.rpartition(".")[0])
    scoped = _by_signing_name().get(credential_scope_service(request) or "")
    form = dict(request.form_pairs()) if request.method in ("GET", "POST") else {}
    if "Action" in form:
        return (
            scoped if scoped in _QUERY_SERVICES else _by_api_version().get(form.get("Version", ""))
        )
    if scoped is not None and wire_protocol(service_model(scoped)) == "rest-json":
        return scoped
    return _by_request_uri(request)


def credential_scope_service(request: HttpRequest) -> str | None:
    """The service named in the SigV4 credential scope (Authorization header or presigned URL)."""
    authorization = request.header("authorization") or ""
    found = _CREDENTIAL.search(authorization)
    if found is None:
        credential = dict(request.query_pairs()).get("X-Amz-Credential", "")
        found = _CREDENTIAL.search(f"Credential={credential}")
    return found.group(1) if found else None


_QUERY_SERVICES = ("sqs", "sns", "sts")  # SQS still answers the query protocol to old SDKs


@cache
def _by_target_prefix() -> dict[str, str]:
    models = (service_model(name) for name in SERVICES)
    return {
        m.metadata["targetPrefix"]: m.service_name for m in models if "targetPrefix" in m.metadata
    }


@cache
def _by_signing_name() -> dict[str, str]:
    return {str(service_model(name).signing_name): name for name in SERVICES}


@cache
def _by_api_version() -> dict[str, str]:
    return {str(service_model(name).api_version): name for name in _QUERY_SERVICES}


@cache
def _uri_routes() -> list[tuple[str, list[tuple[UriTemplate, OperationModel]]]]:
    routes = []
    for name, operations in _URI_OPERATIONS.items():
        model: ServiceModel = service_model(name)
        found = operation_routes(model)
        if operations is not None:
            found = [route for route in found if route[1].name in operations]
        routes.append((name, found))
    return routes


def _by_request_uri(request: HttpRequest) -> str | None:
    for name, routes in _uri_routes():
        if match_route(routes, request) is not None:
            return name
    return None
