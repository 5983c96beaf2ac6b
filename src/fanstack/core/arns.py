"""The ARNs of this process's resources, in AWS's formats, with one account id and region.

Every ARN fanstack makes (in SNS envelopes, SQS records, EventBridge events, Lambda contexts,
Step Functions' context objects) and every one its AWS API answers with is
`arn:aws:<service>:<region>:<account>:<resource>`; the account id (default `000000000000`) and
region (default `us-east-1`) are set once, when a process starts, by `configure`. ARNs made by
earlier versions (`arn:fanstack:<service>:local:000000000000:...`) may still be stored: the
places that read an ARN take either partition (`PARTITIONS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fanstack.core.errors import ValidationException

PARTITION = "aws"
LEGACY_PARTITION = "fanstack"  # the partition of ARNs stored by earlier versions
PARTITIONS = (PARTITION, LEGACY_PARTITION)
DEFAULT_ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"
_ACCOUNT = re.compile(r"^[0-9]{12}$")
_REGION = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True, slots=True)
class ArnScope:
    """The account id and region the ARNs of this process are in."""

    account: str = DEFAULT_ACCOUNT
    region: str = DEFAULT_REGION

    def __post_init__(self) -> None:
        if not isinstance(self.account, str) or not _ACCOUNT.match(self.account):
            raise ValidationException(f"account id {self.account!r} must be 12 digits")
        if not isinstance(self.region, str) or not _REGION.match(self.region):
            raise ValidationException(
                f"region {self.region!r} must be lowercase letters and digits joined by '-' "
                "(us-east-1)"
            )


_scope = ArnScope()


def configure(*, account: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> None:
    """Set the account id and region of this process's ARNs (once, at start, before serving)."""
    global _scope
    _scope = ArnScope(account=account, region=region)


def arn_scope() -> ArnScope:
    """The account id and region this process's ARNs are in."""
    return _scope


def arn(service: str, resource: str) -> str:
    """`arn:aws:<service>:<region>:<account>:<resource>`."""
    return f"arn:{PARTITION}:{service}:{_scope.region}:{_scope.account}:{resource}"


def global_arn(service: str, resource: str) -> str:
    """The ARN of a resource of a global service (IAM): `arn:aws:<service>::<account>:...`."""
    return f"arn:{PARTITION}:{service}::{_scope.account}:{resource}"


def queue_arn(name: str) -> str:
    """An SQS queue's ARN."""
    return arn("sqs", name)


def topic_arn(name: str) -> str:
    """An SNS topic's ARN."""
    return arn("sns", name)


def function_arn(name: str) -> str:
    """A Lambda function's ARN (`...:function:<name>`)."""
    return arn("lambda", f"function:{name}")
