"""Who may call the AWS endpoint: any caller on loopback, SigV4-signed callers elsewhere.

Bound to loopback, fanstack accepts any credentials, as local emulators do. On any other
interface a request must carry a valid Signature Version 4 for one of the configured access
keys (`--aws-credentials KEY:SECRET[,KEY:SECRET...]` or a file of such lines): the signature is
computed again with botocore's own signer and compared in constant time. A missing, unknown,
malformed, stale or wrong signature gets AWS's error for it, never access.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from fanstack.aws.protocols.errors import AwsError
from fanstack.aws.protocols.http import HttpRequest
from fanstack.core.errors import InvalidParameterValue

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_SECONDS = 15 * 60  # as AWS allows
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9;.\-_]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


def parse_credentials(text: str) -> dict[str, str]:
    """Access keys and their secrets from `KEY:SECRET[,KEY:SECRET]` or a file of such lines."""
    path = Path(text)
    if path.is_file():
        text = ",".join(line for line in path.read_text().splitlines() if line.strip())
    keys: dict[str, str] = {}
    for pair in text.split(","):
        key, sep, secret = pair.strip().partition(":")
        if not sep or not key or not secret:
            raise InvalidParameterValue(
                "--aws-credentials takes KEY:SECRET pairs separated by commas (or a file of "
                f"them, one a line); got {pair.strip()[:20]!r}"
            )
        keys[key] = secret
    return keys


class SignatureCheck:
    """Verifies SigV4 signatures against a fixed set of access keys."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self.keys = dict(keys)

    def check(self, request: HttpRequest, url: str, query_protocol: bool) -> None:
        """Return if `request` (as received at `url`) is signed by a known key; else AwsError."""
        names = _ErrorNames(query_protocol)
        authorization = request.header("authorization")
        if not authorization:
            raise AwsError(names.missing, "Request is missing Authentication Token", status=403)
        found = _AUTHORIZATION.match(authorization.strip())
        if found is None:
            raise AwsError(
                "IncompleteSignature",
                f"Authorization header requires '{ALGORITHM} Credential=..., SignedHeaders=..., "
                "Signature=...'",
                status=403,
            )
        secret = self.keys.get(found["key"])
        if secret is None:
            raise AwsError(
                names.unknown_key,
                "The security token included in the request is invalid.",
                status=403,
            )
        stamp = request.header("x-amz-date") or ""
        _check_time(stamp, found["date"], names)
        signed = found["headers"].split(";")
        if "host" not in signed:
            raise AwsError("IncompleteSignature", "The host header must be signed", status=403)
        expected = _signature(request, url, found, signed, stamp, secret)
        if not hmac.compare_digest(expected, found["signature"]):
            raise AwsError(
                names.mismatch,
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method.",
                status=403,
            )


class _ErrorNames:
    """AWS's codes for authentication failures: query services and JSON services differ."""

    def __init__(self, query_protocol: bool) -> None:
        if query_protocol:
            self.missing = "MissingAuthenticationToken"
            self.unknown_key = "InvalidClientTokenId"
            self.mismatch = "SignatureDoesNotMatch"
            self.expired = "SignatureDoesNotMatch"
        else:
            self.missing = "MissingAuthenticationTokenException"
            self.unknown_key = "UnrecognizedClientException"
            self.mismatch = "InvalidSignatureException"
            self.expired = "InvalidSignatureException"


def _check_time(stamp: str, scope_date: str, names: _ErrorNames) -> None:
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise AwsError(
            "IncompleteSignature", "The request must carry an X-Amz-Date header", status=403
        ) from None
    if stamp[:8] != scope_date:
        raise AwsError(
            names.mismatch, "The credential scope's date is not X-Amz-Date's", status=403
        )
    skew = abs((datetime.now(UTC) - signed_at).total_seconds())
    if skew > MAX_SKEW_SECONDS:
        raise AwsError(
            names.expired,
            f"Signature expired: {stamp} is more than {MAX_SKEW_SECONDS // 60} minutes from "
            "the server's time.",
            status=403,
        )


def _signature(
    request: HttpRequest,
    url: str,
    found: re.Match[str],
    signed: list[str],
    stamp: str,
    secret: str,
) -> str:
    """The signature botocore's signer gives the request as received."""
    headers = {name: request.header(name) or "" for name in signed}
    target = url + (f"?{request.query}" if request.query else "")
    rebuilt = AWSRequest(method=request.method, url=target, headers=headers, data=request.body)
    rebuilt.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(found["key"], secret), found["service"], found["region"])
    canonical = signer.canonical_request(rebuilt)
    return str(signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt))

