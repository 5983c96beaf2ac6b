"""AWS STS, as much as SDKs and Terraform ask before anything else: who am I."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fanstack.aws.context import CallContext

USER_ID = "AIDAFANSTACK000000000"


def get_caller_identity(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """The endpoint's account, as its root user."""
    account = call.settings.account
    return {"UserId": USER_ID, "Account": account, "Arn": f"arn:aws:iam::{account}:root"}


OPERATIONS: dict[str, Callable[[CallContext, Mapping[str, Any]], dict[str, Any]]] = {
    "GetCallerIdentity": get_caller_identity,
}
