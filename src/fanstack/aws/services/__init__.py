"""The AWS services fanstack answers for, one module a service.

Each maps its operations (botocore's names; the model's parameters in, the model's output out)
onto fanstack's resources, in `OPERATIONS`; `SERVICES` names them by botocore's service name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.services import sqs, sts

Operation = Callable[[CallContext, Mapping[str, Any]], dict[str, Any]]

SERVICES: dict[str, Mapping[str, Operation]] = {
    "sqs": sqs.OPERATIONS,
    "sts": sts.OPERATIONS,
}
