"""Routes of an app's HTTP API: declared in Python or imported from an OpenAPI 3 document.

Each operation has an integration (`publish` to a topic, `send` to a queue, `invoke` or
`invoke_async` a function), a mapping from the request to the message (body, attributes, group
and deduplication ids, as runtime-expression templates), a response template and an auth mode.
In an OpenAPI document the integration is the operation's `x-fanstack-integration` object and
the auth mode its `x-fanstack-auth`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from fanstack.core.errors import InvalidParameterValue
from fanstack.gateway.auth import API_KEY, AUTH_MODES, JWT, OPEN, ApiKeys, JwtAuth, UsagePlan
from fanstack.gateway.expressions import check_template
from fanstack.gateway.validation import RequestValidator

KINDS = ("publish", "send", "invoke", "invoke_async")
METHODS = ("get", "post", "put", "patch", "delete")
DEFAULT_STATUS = {"publish": 202, "send": 202, "invoke": 200, "invoke_async": 202}
_PATH_PARAMETER = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Integration:
    """Where a request goes and how it becomes a message."""

    kind: str
    target: str
    body: Any = "$request.body"
    attributes: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    group_id: str | None = None
    deduplication_id: str | None = None
    status: int | None = None
    response: Any = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidParameterValue(
                f"integration type {self.kind!r}: use one of {', '.join(KINDS)}"
            )
        for name, template in (
            ("body", self.body),
            ("attributes", self.attributes),
            ("defaults", self.defaults),
            ("response", self.response),
        ):
            check_template(template, f"integration {name}")

    @classmethod
    def from_openapi(cls, raw: Mapping[str, Any], where: str) -> Integration:
        """Read an `x-fanstack-integration` object."""
        known = {
            "type",
            "target",
            "body",
            "attributes",
            "defaults",
            "group_id",
            "deduplication_id",
            "status",
            "response",
        }
        unknown = set(raw) - known
        if unknown:
            raise InvalidParameterValue(f"{where}: unknown integration fields {sorted(unknown)}")
        if "type" not in raw or "target" not in raw:
            raise InvalidParameterValue(f"{where}: an integration needs 'type' and 'target'")
        return cls(
            kind=raw["type"],
            target=raw["target"],
            body=raw.get("body", "$request.body"),
            attributes=raw.get("attributes", {}),
            defaults=raw.get("defaults", {}),
            group_id=raw.get("group_id"),
            deduplication_id=raw.get("deduplication_id"),
            status=raw.get("status"),
            response=raw.get("response"),
        )

    @property
    def success_status(self) -> int:
        """The status of a successful response."""
        return self.status or DEFAULT_STATUS[self.kind]


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """One route: method, path, its OpenAPI operation, integration, auth and validator."""

    method: str
    path: str
    operation: Mapping[str, Any]
    integration: Integration
    auth: str
    validator: RequestValidator

    @property
    def operation_id(self) -> str:
        """The OpenAPI operationId (generated from method and path when absent)."""
        generated = self.method + re.sub(r"[^A-Za-z0-9]+", "_", self.path).rstrip("_")
        return str(self.operation.get("operationId", generated))


class Publisher(Protocol):
    """A topic, as an integration publishes to it."""

    def publish(
        self,
        body: Any,
        attributes: Mapping[str, Any] | None = None,
        *,
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> str:
        """Publish; returns the message id."""
        ...


class Sender(Protocol):
    """A queue, as an integration sends to it."""

    def send(
        self,
        body: Any,
        attributes: Mapping[str, Any] | None = None,
        *,
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> str:
        """Send; returns the message id."""
        ...


class Invocable(Protocol):
    """A function, as an integration invokes it."""

    def invoke(self, payload: Any) -> Any:
        """Run now; the result."""
        ...

    def invoke_async(self, payload: Any) -> str:
        """Queue an invocation; its request id."""
        ...


@dataclass(frozen=True, slots=True)
class Targets:
    """What routes may integrate with: the app's declared topics, queues and functions (live)."""

    topics: Mapping[str, Publisher]
    queues: Mapping[str, Sender]
    functions: Mapping[str, Invocable]


class Api:
    """The HTTP API of an app: its operations, security settings and OpenAPI document."""

    def __init__(self, title: str, targets: Targets) -> None:
        self.targets = targets
        self.title = title
        self.version = "1.0.0"
        self.operations: list[Operation] = []
        self.components: dict[str, Any] = {}
        self.api_keys = ApiKeys()
        self.jwt: JwtAuth | None = None
        self.cors_origins: list[str] = []
        self.open_on_loopback = False
        self.admin_token: str | None = None

    # -- security ------------------------------------------------------------------------

    def usage_plan(
        self, name: str, *, rate: float, burst: int, quota_per_day: int | None = None
    ) -> None:
        """Declare a usage plan for API keys (API Gateway's throttling and quota)."""
        self.api_keys.add_plan(
            UsagePlan(name=name, rate=rate, burst=burst, quota_per_day=quota_per_day)
        )

    def api_key(self, key: str, *, plan: str) -> None:
        """Accept `key` in the `x-api-key` header, throttled by `plan`."""
        self.api_keys.add_key(key, plan)

    def use_jwt(
        self,
        *,
        secret: str | None = None,
        jwks_file: str | None = None,
        algorithms: Sequence[str] = ("HS256",),
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        """Verify `Authorization: Bearer` tokens on routes with auth='jwt'."""
        self.jwt = JwtAuth(
            secret=secret,
            jwks_file=jwks_file,
            algorithms=tuple(algorithms),
            audience=audience,
            issuer=issuer,
        )

    def cors(self, *origins: str) -> None:
        """Allow browsers on these origins (`*` for any) to call the API."""
        self.cors_origins = list(origins)

    # -- routes declared in Python -------------------------------------------------------

    def route(
        self,
        method: str,
        path: str,
        *,
        publish: Any = None,
        send: Any = None,
        invoke: Any = None,
        invoke_async: Any = None,
        body: Any = "$request.body",
        attributes: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        status: int | None = None,
        response: Any = None,
        auth: str = API_KEY,
        parameters: Sequence[Mapping[str, Any]] | None = None,
        request_schema: Mapping[str, Any] | None = None,
        example: Any = None,
        summary: str | None = None,
    ) -> Operation:
        """Declare a route and its integration (exactly one of publish/send/invoke/...)."""
        targets = {
            "publish": publish,
            "send": send,
            "invoke": invoke,
            "invoke_async": invoke_async,
        }
        chosen = [(kind, target) for kind, target in targets.items() if target is not None]
        if len(chosen) != 1:
            raise InvalidParameterValue(
                f"{method.upper()} {path}: give exactly one of publish, send, invoke, invoke_async"
            )
        kind, target = chosen[0]
        integration = Integration(
            kind=kind,
            target=getattr(target, "name", target),
            body=body,
            attributes=attributes or {},
            defaults=defaults or {},
            group_id=group_id,
            deduplication_id=deduplication_id,
            status=status,
            response=response,
        )
        operation: dict[str, Any] = {
            "summary": summary or f"{kind} to {integration.target}",
            "parameters": list(parameters or _implied_path_parameters(path)),
            "responses": _default_responses(integration),
        }
        if request_schema is not None:
            content: dict[str, Any] = {"schema": dict(request_schema)}
            if example is not None:
                content["example"] = example
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": content},
            }
        return self._add(method, path, operation, integration, auth)

    def get(self, path: str, **options: Any) -> Operation:
        """Declare a GET route."""
        return self.route("get", path, **options)

    def post(self, path: str, **options: Any) -> Operation:
        """Declare a POST route."""
        return self.route("post", path, **options)

    def put(self, path: str, **options: Any) -> Operation:
        """Declare a PUT route."""
        return self.route("put", path, **options)

    def delete(self, path: str, **options: Any) -> Operation:
        """Declare a DELETE route."""
        return self.route("delete", path, **options)

    # -- routes imported from OpenAPI ----------------------------------------------------

    def openapi(self, source: str | Path | Mapping[str, Any]) -> None:
        """Import every operation of an OpenAPI 3 document that has `x-fanstack-integration`."""
        document = _load_document(source)
        version = str(document.get("openapi", ""))
        if not version.startswith("3."):
            raise InvalidParameterValue(f"OpenAPI document version {version!r}: need 3.x")
        info = document.get("info", {})
        self.title = info.get("title", self.title)
        self.version = info.get("version", self.version)
        for section, values in document.get("components", {}).items():
            self.components.setdefault(section, {}).update(values)
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
                integration = Integration.from_openapi(raw, where)
                merged = {k: v for k, v in operation.items() if not k.startswith("x-fanstack")}
                own = [_deref(p, document) for p in operation.get("parameters", [])]
                merged["parameters"] = _merge_parameters(shared, own)
                if "requestBody" in merged:
                    merged["requestBody"] = _deref(merged["requestBody"], document)
                self._add(
                    method, path, merged, integration, operation.get("x-fanstack-auth", API_KEY)
                )

    def _add(
        self,
        method: str,
        path: str,
        operation: Mapping[str, Any],
        integration: Integration,
        auth: str,
    ) -> Operation:
        method = method.lower()
        where = f"{method.upper()} {path}"
        if method not in METHODS:
            raise InvalidParameterValue(f"{where}: method must be one of {', '.join(METHODS)}")
        if auth not in AUTH_MODES:
            raise InvalidParameterValue(f"{where}: auth must be one of {', '.join(AUTH_MODES)}")
        if any(o.method == method and o.path == path for o in self.operations):
            raise InvalidParameterValue(f"{where} is declared twice")
        self._check_target(integration, where)
        declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"}
        missing = set(_PATH_PARAMETER.findall(path)) - declared
        if missing:
            raise InvalidParameterValue(f"{where}: path parameters {sorted(missing)} not declared")
        body = operation.get("requestBody")
        schema = None
        if body is not None:
            json_content = body.get("content", {}).get("application/json")
            if json_content is None:
                raise InvalidParameterValue(f"{where}: request bodies must be application/json")
            schema = json_content.get("schema", {})
        validator = RequestValidator(
            operation.get("parameters", []),
            schema,
            body_required=bool(body and body.get("required")),
            components=self.components,
        )
        result = Operation(
            method=method,
            path=path,
            operation=copy.deepcopy(dict(operation)),
            integration=integration,
            auth=auth,
            validator=validator,
        )
        self.operations.append(result)
        return result

    def _check_target(self, integration: Integration, where: str) -> None:
        targets = self.targets
        declared: dict[str, Mapping[str, object]] = {
            "publish": targets.topics,
            "send": targets.queues,
            "invoke": targets.functions,
            "invoke_async": targets.functions,
        }
        names = declared[integration.kind]
        if integration.target not in names:
            raise InvalidParameterValue(
                f"{where}: {integration.kind} target {integration.target!r} is not declared "
                "in the app (declare it before the route)"
            )

    # -- the document served at /openapi.json --------------------------------------------

    def document(self, *, auth_enforced: bool = True) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every route, saying what the gateway enforces.

        With `auth_enforced` false (open on loopback) no route requires a key or a token, and
        the document says so; every error status the gateway can answer is listed.
        """
        paths: dict[str, Any] = {}
        for op in self.operations:
            entry = copy.deepcopy(dict(op.operation))
            entry.setdefault("operationId", op.operation_id)
            auth = op.auth if auth_enforced else OPEN
            entry["security"] = _SECURITY.get(auth, [])
            responses = entry.setdefault("responses", {})
            for status in _error_statuses(op, auth):
                responses.setdefault(status, {"$ref": f"#/components/responses/{_ERRORS[status]}"})
            paths.setdefault(op.path, {})[op.method] = entry
        components = copy.deepcopy(self.components)
        components.setdefault("securitySchemes", {}).update(
            {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            }
        )
        shared = components.setdefault("responses", {})
        for status, name in _ERRORS.items():
            shared[name] = {
                "description": _ERROR_DESCRIPTIONS[status],
                "content": {"application/json": {"schema": _ERROR_SCHEMA}},
            }
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": components,
        }


_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    API_KEY: [{"apiKey": []}],
    JWT: [{"bearer": []}],
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


def _load_document(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source))
    path = Path(source)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidParameterValue(f"cannot read OpenAPI document {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidParameterValue(f"OpenAPI document {path} is not an object")
    return document


def _deref(node: Mapping[str, Any], document: Mapping[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` (`#/components/...`) to what it names."""
    seen = 0
    while isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if not ref.startswith("#/") or seen > 16:
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


def _implied_path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAMETER.findall(path)
    ]


def _default_responses(integration: Integration) -> dict[str, Any]:
    status = str(integration.success_status)
    return {status: {"description": f"{integration.kind} to {integration.target}"}}


__all__ = ["API_KEY", "JWT", "OPEN", "Api", "Integration", "Operation"]
