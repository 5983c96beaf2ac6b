"""The HTTP API an app declares: routes in Python (`app.api.post(...)`) or from an OpenAPI 3
document (`app.api.openapi(...)`), and its security settings (API keys on usage plans, JWT,
CORS, open on loopback).

Each route is an `Operation` with an `Integration` (`publish` to a topic, `send` to a queue,
`invoke` or `invoke_async` a function, `put_events` on a bus, `start_workflow`, among the app's
`Targets`), a mapping from the request to the message (runtime-expression templates,
`expressions`), a response template and an auth mode (`auth`). Reading and serving OpenAPI
documents is `openapi`'s; serving the routes, `routing`'s.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fanstack.core.errors import InvalidParameterValue
from fanstack.gateway.auth import API_KEY, AUTH_MODES, JWT, OPEN, ApiKeys, JwtAuth
from fanstack.gateway.integrations import KINDS, Integration, Targets
from fanstack.gateway.openapi import load_document, routes_in, served_document
from fanstack.gateway.operations import METHODS, Operation, path_parameters
from fanstack.gateway.throttling import UsagePlan
from fanstack.gateway.validation import RequestValidator

__all__ = ["API_KEY", "JWT", "OPEN", "Api", "Integration", "Operation", "Targets"]


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
        put_events: Any = None,
        start_workflow: Any = None,
        task_callback: str | None = None,
        task_token: Any = None,
        source: Any = None,
        detail_type: Any = None,
        execution_name: Any = None,
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
        targets = (publish, send, invoke, invoke_async, put_events, start_workflow, task_callback)
        given = dict(zip(KINDS, targets, strict=True))
        chosen = [(kind, target) for kind, target in given.items() if target is not None]
        if len(chosen) != 1:
            raise InvalidParameterValue(
                f"{method.upper()} {path}: give exactly one of {', '.join(KINDS)}"
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
            source=source,
            detail_type=detail_type,
            execution_name=execution_name,
            task_token=task_token,
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
        document = load_document(source)
        info = document.get("info", {})
        self.title = info.get("title", self.title)
        self.version = info.get("version", self.version)
        for section, values in document.get("components", {}).items():
            self.components.setdefault(section, {}).update(values)
        for route in routes_in(document):
            self._add(route.method, route.path, route.operation, route.integration, route.auth)

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
        if not self.targets.declares(integration):
            raise InvalidParameterValue(
                f"{where}: {integration.kind} target {integration.target!r} is not declared "
                "in the app (declare it before the route)"
            )
        declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"}
        missing = set(path_parameters(path)) - declared
        if missing:
            raise InvalidParameterValue(f"{where}: path parameters {sorted(missing)} not declared")
        result = Operation(
            method=method,
            path=path,
            operation=copy.deepcopy(dict(operation)),
            integration=integration,
            auth=auth,
            validator=self._validator(operation, where),
        )
        self.operations.append(result)
        return result

    def _validator(self, operation: Mapping[str, Any], where: str) -> RequestValidator:
        """The validator of an operation's parameters and JSON body."""
        body = operation.get("requestBody")
        schema = None
        if body is not None:
            json_content = body.get("content", {}).get("application/json")
            if json_content is None:
                raise InvalidParameterValue(f"{where}: request bodies must be application/json")
            schema = json_content.get("schema", {})
        return RequestValidator(
            operation.get("parameters", []),
            schema,
            body_required=bool(body and body.get("required")),
            components=self.components,
        )

    # -- the document served at /openapi.json --------------------------------------------

    def document(self, *, auth_enforced: bool = True) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every route, saying what the gateway enforces."""
        return served_document(
            title=self.title,
            version=self.version,
            operations=self.operations,
            components=self.components,
            auth_enforced=auth_enforced,
        )


def _implied_path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in path_parameters(path)
    ]


def _default_responses(integration: Integration) -> dict[str, Any]:
    status = str(integration.success_status)
    return {status: {"description": f"{integration.kind} to {integration.target}"}}
