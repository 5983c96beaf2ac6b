"""Real AWS clients pointed at a fanstack server, as users point theirs (tests/e2e/test_aws_*)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
REGION = "us-east-1"


def aws_client(url: str, service: str, **config: Any) -> Any:
    """A boto3 client for `service` at `url`: no retries (a failure shows at once)."""
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        config=Config(retries={"max_attempts": 1}, **config),
        **CREDENTIALS,
    )
