"""What an AWS API call is served with: the app's store, the account and region, the caller's host.

ARNs and queue URLs are in AWS's formats (`arn:aws:sqs:us-east-1:000000000000:orders`,
`http://<host>/000000000000/orders`), with the process's account id and region
(`core/arns.py`, the same the core's envelopes and events carry); a queue URL follows the
request's Host header, as SQS's does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fanstack.aws.credentials import SignatureCheck, parse_credentials
from fanstack.backends.base import Backend
from fanstack.core.arns import arn, arn_scope
from fanstack.gateway.routing import is_loopback

if TYPE_CHECKING:
    from fanstack.app import App

log = logging.getLogger("fanstack.aws")


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """Who may call the endpoint (`signatures`: None accepts any caller, as on loopback), and
    the account id and region it answers as: the process's (`core/arns.py`)."""

    signatures: SignatureCheck | None = None

    @property
    def account(self) -> str:
        """The account id in ARNs, queue URLs and owners."""
        return arn_scope().account

    @property
    def region(self) -> str:
        """The region in ARNs."""
        return arn_scope().region


def endpoint_settings(*, host: str, credentials: str | None) -> AwsSettings:
    """The AWS endpoint's settings for a server bound to `host`: any caller on loopback,
    callers signing with one of `credentials`' keys elsewhere (none configured: none admitted)."""
    if is_loopback(host):
        return AwsSettings()
    keys = parse_credentials(credentials) if credentials else {}
    if not keys:
        log.warning(
            "the AWS endpoint admits no caller off loopback until --aws-credentials names keys"
        )
    return AwsSettings(signatures=SignatureCheck(keys))


@dataclass(frozen=True, slots=True)
class CallContext:
    """One call: the app, the endpoint's settings, the request's host and scheme, its id."""

    app: App
    settings: AwsSettings
    host: str
    scheme: str
    request_id: str

    @property
    def backend(self) -> Backend:
        """The app's store (every resource the app declares already in it)."""
        return self.app.backend

    def arn(self, service: str, resource: str) -> str:
        """`arn:aws:<service>:<region>:<account>:<resource>`."""
        return arn(service, resource)

    def queue_url(self, name: str) -> str:
        """The URL of a queue, on the host the caller reached."""
        return f"{self.scheme}://{self.host}/{self.settings.account}/{name}"


def name_from_arn(arn: str) -> str:
    """The resource name at the end of an ARN (`...:orders` -> `orders`)."""
    return arn.rsplit(":", 1)[-1]


def name_from_queue_url(url: str) -> str:
    """The queue name at the end of a queue URL (or the name itself)."""
    return url.rstrip("/").rsplit("/", 1)[-1]
