"""Operations: the routes of an API, each a method and path with its OpenAPI operation object,
its integration, its auth mode and the validator of its requests."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fanstack.gateway.integrations import Integration
from fanstack.gateway.validation import RequestValidator

METHODS = ("get", "post", "put", "patch", "delete")
_PATH_PARAMETER = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)}")


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


def path_parameters(path: str) -> list[str]:
    """The names of the `{parameters}` in a path template, in order."""
    return _PATH_PARAMETER.findall(path)
