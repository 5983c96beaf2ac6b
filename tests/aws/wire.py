"""Real boto3 clients whose requests go through the codec in-process instead of over a network.

botocore's `before-send` event lets a handler answer a prepared request: the request botocore
built (serialized and signed exactly as it would be sent) is turned into an `HttpRequest`,
identified, parsed, answered by a test's canned output (or `AwsError`), and serialized back into
the `AWSResponse` the client then parses. Every call is recorded for the test to inspect.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.client import BaseClient

from fanstack.aws.protocols import AwsError, HttpRequest, identify, protocol_for, service_model

Answer = Callable[[str, dict[str, Any]], Mapping[str, Any]]  # (operation, params) -> output


class RawBody(io.BytesIO):
    """A response body as urllib3 would hand it to botocore (readable and streamable)."""

    def stream(self, amt: int = 1024, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


@dataclass
class Call:
    """One request the codec parsed: the service it identified, the operation and its params."""

    service: str | None
    operation: str
    params: dict[str, Any]


@dataclass
class InProcessAws:
    """The codec standing in for AWS: `answer` gives each operation's output (or raises)."""

    answer: Answer
    calls: list[Call] = field(default_factory=list)

    def client(self, service: str) -> BaseClient:
        """A boto3 client for `service` whose requests this codec answers."""
        client = boto3.client(
            service,  # type: ignore[call-overload]
            region_name="us-east-1",
            endpoint_url="http://localhost:4566",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        client.meta.events.register("before-send", self._send)
        return client  # type: ignore[no-any-return]

    def _send(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        body = request.body or b""
        http = HttpRequest(
            method=request.method,
            path=url.path or "/",
            query=url.query,
            headers={name.lower(): _text(value) for name, value in request.headers.items()},
            body=body if isinstance(body, bytes) else body.encode("utf-8"),
        )
        service = identify(http)
        protocol = protocol_for(service_model(service or ""))
        operation = None
        try:
            operation, params = protocol.parse(http)
            self.calls.append(Call(service, operation.name, params))
            response = protocol.serialize(
                operation, self.answer(operation.name, params), request_id="req-1"
            )
        except AwsError as error:
            response = protocol.serialize_error(error, operation=operation, request_id="req-1")
        headers = dict(response.headers)
        headers["Content-Length"] = str(len(response.body))
        return AWSResponse(request.url, response.status, headers, RawBody(response.body))
