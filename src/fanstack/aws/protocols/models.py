"""botocore's service models: loaded once, and the facts about them the codec needs.

The models ship inside the `botocore` package (no network); `service_model` caches each one.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from botocore.loaders import create_loader
from botocore.model import ServiceModel

# The services fanstack speaks, by botocore's name (lambda is there for Invoke).
SERVICES = ("sqs", "sns", "sts", "events", "scheduler", "stepfunctions", "lambda")


@cache
def _description(name: str) -> dict[str, Any]:
    return dict(create_loader().load_service_model(name, "service-2"))


def service_description(name: str) -> dict[str, Any]:
    """A fresh copy of the raw model document of `name`, for deriving a variant of it."""
    return copy.deepcopy(_description(name))


@cache
def service_model(name: str) -> ServiceModel:
    """The botocore service model of `name` (botocore's name, e.g. `stepfunctions`), cached."""
    return ServiceModel(_description(name), service_name=name)


def wire_protocol(model: ServiceModel) -> str:
    """The protocol a current botocore client uses for `model` (honours the `protocols` list)."""
    return str(model.resolved_protocol)


def is_query_compatible(model: ServiceModel) -> bool:
    """Whether a JSON service keeps its former query protocol's error codes (SQS)."""
    return "awsQueryCompatible" in model.metadata
