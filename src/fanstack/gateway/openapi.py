"""OpenAPI 3 documents: routes read from one, and the document the gateway serves.

Reading: every operation of a 3.x document needs an `x-fanstack-integration` object (its
`Integration`) and may name its auth mode in `x-fanstack-auth` (default `api_key`); local
`$ref`s are followed and path-level parameters merged into each operation's.

Serving (`/openapi.json`): an OpenAPI 3.1 document of every route that says what the gateway
enforces: each operation's security, and every error status the gateway itself may answer.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fanstack.core.errors import InvalidParameterValue
from fanstack.gateway.auth import API_KEY, JWT, OPEN
from fanstack.gateway.integrations import Integration
from fanstack.gateway.operations import METHODS, Operation

INTEGRATION_FIELDS = frozenset(
    {
        "type",
        "target",
        "body",
        "attributes",
        "defaults",
        "group_id",
        "deduplication_id",
        "status",
        "response",
        "source",
        "detail_type",
        "execution_name",
        "task_token",
    }
)
MAX_REF_HOPS = 16

# -- reading a document ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentRoute:
    """One operation read from a document: where it is, what it is, where it goes, its auth."""

    method: str
    path: str
    operation: dict[str, Any]
    integration: Integration
    auth: str


def load_document(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.x document from a YAML/JSON file or a mapping (copied)."""
    if isinstance(source, Mapping):
        document = copy.deepcopy(dict(source))
    else:
        path = Path(source)
        try:
            document = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidParameterValue(f"cannot read OpenAPI document {path}: {exc}") from exc
        if not isinstance(document, dict):
            raise InvalidParameterValue(f"OpenAPI document {path} is not an object")
    version = str(document.get("openapi", ""))
    if not version.startswith("3."):
        raise InvalidParameterValue(f"OpenAPI document version {version!r}: need 3.x")
    return document


def routes_in(document: Mapping[str, Any]) -> Iterator[DocumentRoute]:
    """Every operation of `document`, with `$ref`s followed and shared parameters merged."""
    for path, item in document.get("paths", {}).items():
        shared = [_deref(p, document) for p in item.get("parameters", [])]
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            where = f"{method.upper()} {path}"
            raw = operation.get("x-fanstack-integration")
            if raw is None:
                raise InvalidParameterValue(f"{where}: no x-fanstack-integration")
            merged = {k: v for k, v in operation.items() if not k.startswith("x-fanstack")}
            own = [_deref(p, document) for p in operation.get("parameters", [])]
            merged["parameters"] = _merge_parameters(shared, own)
            if "requestBody" in merged:
                merged["requestBody"] = _deref(merged["requestBody"], document)
            yield DocumentRoute(
                method=method,
                path=path,
                operation=merged,
                integration=integration_from(raw, where),
                auth=operation.get("x-fanstack-auth", API_KEY),
            )


def integration_from(raw: Mapping[str, Any], where: str) -> Integration:
    """The `Integration` an `x-fanstack-integration` object describes."""
    unknown = set(raw) - INTEGRATION_FIELDS
    if unknown:
        raise InvalidParameterValue(f"{where}: unknown integration fields {sorted(unknown)}")
    if "type" not in raw or "target" not in raw:
        raise InvalidParameterValue(f"{where}: an integration needs 'type' and 'target'")
    return Integration(
        kind=raw["type"],
        target=raw["target"],
        body=raw.get("body", "$request.body"),
        attributes=raw.get("attributes", {}),
        defaults=raw.get("defaults", {}),
        group_id=raw.get("group_id"),
        deduplication_id=raw.get("deduplication_id"),
        status=raw.get("status"),
        response=raw.get("response"),
        source=raw.get("source"),
        detail_type=raw.get("detail_type"),
        execution_name=raw.get("execution_name"),
        task_token=raw.get("task_token"),
    )


def _deref(node: Mapping[str, Any], document: Mapping[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (`#/components/...`) to what it names."""
    seen = 0
    while isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if not ref.startswith("#/") or seen > MAX_REF_HOPS:
            raise InvalidParameterValue(f"cannot resolve $ref {ref!r}: only local refs")
        target: Any = document
        for token in ref[2:].split("/"):
            if not isinstance(target, Mapping) or token not in target:
                raise InvalidParameterValue(f"$ref {ref!r} names nothing in the document")
            target = target[token]
        node = target
        seen += 1
    return dict(node)


def _merge_parameters(
    shared: Sequence[Mapping[str, Any]], own: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    merged = {(p["name"], p["in"]): dict(p) for p in shared}
    merged.update({(p["name"], p["in"]): dict(p) for p in own})
    return list(merged.values())


# -- the served document -----------------------------------------------------------------------

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    API_KEY: [{"apiKey": []}],
    JWT: [{"bearer": []}],
}
_SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
}
_ERRORS = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "403": "Forbidden",
    "413": "PayloadTooLarge",
    "415": "UnsupportedMediaType",
    "429": "TooManyRequests",
}
_ERROR_DESCRIPTIONS = {
    "400": "The request is invalid; every invalid field is listed.",
    "401": "The bearer token is missing or invalid.",
    "403": "The API key is missing or invalid.",
    "413": "The body is over 256 KiB.",
    "415": "The body is not application/json (or application/*+json) in a Unicode charset.",
    "429": "The API key's usage plan is throttled or its daily quota is used up.",
}
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "in": {"type": "string"},
                    "name": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}


def served_document(
    *,
    title: str,
    version: str,
    operations: Sequence[Operation],
    components: Mapping[str, Any],
    auth_enforced: bool = True,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations`, saying what the gateway enforces.

    With `auth_enforced` false (open on loopback) no route requires a key or a token, and
    the document says so; every error status the gateway can answer is listed.
    """
    paths: dict[str, Any] = {}
    for op in operations:
        entry = copy.deepcopy(dict(op.operation))
        entry.setdefault("operationId", op.operation_id)
        auth = op.auth if auth_enforced else OPEN
        entry["security"] = _SECURITY.get(auth, [])
        responses = entry.setdefault("responses", {})
        for status in _error_statuses(op, auth):
            responses.setdefault(status, {"$ref": f"#/components/responses/{_ERRORS[status]}"})
        paths.setdefault(op.path, {})[op.method] = entry
    served = copy.deepcopy(dict(components))
    served.setdefault("securitySchemes", {}).update(copy.deepcopy(_SECURITY_SCHEMES))
    shared = served.setdefault("responses", {})
    for status, name in _ERRORS.items():
        shared[name] = {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": _ERROR_SCHEMA}},
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": served,
    }


def _error_statuses(operation: Operation, auth: str) -> list[str]:
    """The error statuses the gateway itself may answer on `operation`."""
    statuses = ["400"]
    if "requestBody" in operation.operation:
        statuses += ["413", "415"]
    if auth == API_KEY:
        statuses += ["403", "429"]
    elif auth == JWT:
        statuses.append("401")
    return statuses
