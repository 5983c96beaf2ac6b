"""The AWS endpoint: an ASGI app that answers AWS API calls on the app's resources.

`AwsRouting` puts it in front of the gateway on the API port: a request that carries an AWS
protocol marker (an `X-Amz-Target` header, a SigV4 `Authorization` header, a form-encoded
`Action=`) goes to the endpoint, every other request to the gateway. The endpoint finds the
service and operation (`protocols.identify`, the service's protocol), runs the operation and
answers in the protocol's shape; a fanstack error becomes the service's modeled error. A call
that only stores or reads messages, on a store whose writes wait on nothing right now, is
answered on the event loop; every other call (a long poll may wait 20 s) runs on a thread.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.model import OperationModel, ServiceModel

from fanstack.aws.call_threads import CallThreads
from fanstack.aws.context import AwsSettings, CallContext
from fanstack.aws.protocols import identify, is_query_request, protocol_for, service_model
from fanstack.aws.protocols.base import Protocol
from fanstack.aws.protocols.errors import AwsError
from fanstack.aws.protocols.http import FORM_CONTENT_TYPE, HttpRequest, HttpResponse
from fanstack.aws.services import ANSWERED_AT_ONCE, SERVICES, WAITING_CHECKS, Operation
from fanstack.aws.services.errors import to_aws_error
from fanstack.core.errors import FanstackError

if TYPE_CHECKING:
    from fanstack.app import App

log = logging.getLogger("fanstack.aws")

_FORM_CONTENT_TYPE = FORM_CONTENT_TYPE.encode()
MAX_BODY = 8 * 1024 * 1024  # a batch of ten 1 MiB messages, base64 and framing included
CALL_THREADS = 256  # calls in progress at once, long polls included


def looks_like_aws(scope: Mapping[str, Any]) -> bool:
    """Whether a request carries an AWS protocol marker (decided from its headers alone)."""
    authorization = content_type = b""
    for name, value in scope.get("headers") or ():  # the last of a repeated one, as a dict
        if name == b"x-amz-target":
            return True
        if name == b"authorization":
            authorization = value
        elif name == b"content-type":
            content_type = value
    if authorization.startswith(b"AWS4-HMAC-SHA256"):
        return True
    media_type = content_type.split(b";")[0].strip().lower()
    if scope.get("method") == "POST" and media_type == _FORM_CONTENT_TYPE:
        return True
    return b"Action=" in scope.get("query_string", b"")


class AwsEndpoint:
    """Answers AWS API calls for one app."""

    def __init__(self, app: App, settings: AwsSettings | None = None) -> None:
        self.app = app
        self.settings = settings or AwsSettings()
        # Calls run on threads of their own: long polls (up to 20 s each) must not take the
        # threads the app's routes run on.
        self._threads = CallThreads(CALL_THREADS, "aws")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.respond(await _read(scope, receive), scope, send)

    async def respond(
        self, request: HttpRequest, scope: Any, send: Any, service: str | None = None
    ) -> None:
        """Answer a request already read (`service`: what `identify` found for it, if known)."""
        request_id = str(uuid.uuid4())
        prepared = self._prepare(request, _host(scope), request_id, service)
        if isinstance(prepared, HttpResponse):
            response = prepared
        elif self._at_once(prepared):
            response = self._run(prepared)
        else:  # on a thread, with the request's trace and log fields (its context) along
            response = await self._threads.run(self._run, prepared)
        headers = [(k.lower().encode(), v.encode()) for k, v in response.headers.items()]
        if not any(name == b"x-amzn-requestid" for name, _ in headers):  # the protocol's own
            headers.append((b"x-amzn-requestid", request_id.encode()))
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    def answer(
        self,
        request: HttpRequest,
        host: tuple[str, str],
        request_id: str,
        service: str | None = None,
    ) -> HttpResponse:
        """Parse, run and answer one call (any error in the protocol's error shape)."""
        prepared = self._prepare(request, host, request_id, service)
        return prepared if isinstance(prepared, HttpResponse) else self._run(prepared)

    def _prepare(
        self, request: HttpRequest, host: tuple[str, str], request_id: str, service: str | None
    ) -> HttpResponse | _Call:
        """The call a request makes, checked and parsed; or the error that answers it."""
        service = service or identify(request)
        if service is None or service not in SERVICES:
            return _unknown_service(request, service, request_id)
        model = service_model(service)
        protocol = protocol_for(model, request)
        operation = None
        try:
            if self.settings.signatures is not None:
                url = f"{host[0]}://{host[1]}{request.path}"
                query = model.metadata.get("protocol") == "query" or is_query_request(request)
                self.settings.signatures.check(request, url, query_protocol=query)
            operation, params = protocol.parse(request)
            handler = SERVICES[service].get(operation.name)
            if handler is None:
                raise AwsError(
                    "InvalidAction",
                    f"The action {operation.name} is not valid for this endpoint.",
                )
        except FanstackError as error:
            return self._error(service, model, protocol, operation, error, request_id)
        context = CallContext(self.app, self.settings, host[1], host[0], request_id)
        return _Call(service, model, protocol, operation, params, handler, context)

    def _run(self, call: _Call) -> HttpResponse:
        """Run a prepared call and answer it (any error in the protocol's error shape)."""
        request_id = call.context.request_id
        try:
            output = call.handler(call.context, call.params)
        except FanstackError as error:
            return self._error(
                call.service, call.model, call.protocol, call.operation, error, request_id
            )
        return call.protocol.serialize(call.operation, output, request_id=request_id)

    def _at_once(self, call: _Call) -> bool:
        """Whether to answer on the event loop instead of a thread.

        A thread costs a hand-off each way and, with the interpreter's lock shared by every
        call at once, about a quarter of a call's CPU. A call that cannot wait is answered at
        once: an operation that only stores or reads messages (`ANSWERED_AT_ONCE`; a receive
        only if it does not long poll), on a backend whose writes do not wait right now
        (`Backend.writes_at_once`: the embedded store, no flush to disk per commit, no other
        writer of this process at work). The rest, long polls, invocations and executions
        among them, run on threads, where concurrent writes share a commit.
        """
        if call.operation.name not in ANSWERED_AT_ONCE.get(call.service, ()):
            return False
        if not call.context.backend.writes_at_once():  # first: on NATS nothing more is asked
            return False
        waits = WAITING_CHECKS.get((call.service, call.operation.name))
        return waits is None or not waits(call.context, call.params)

    @staticmethod
    def _error(
        service: str,
        model: ServiceModel,
        protocol: Protocol,
        operation: OperationModel | None,
        error: FanstackError,
        request_id: str,
    ) -> HttpResponse:
        wire = to_aws_error(model, error)
        if wire.status >= 500:
            log.error("AWS call failed", extra={"service": service, "error": str(error)})
        return protocol.serialize_error(wire, operation=operation, request_id=request_id)


@dataclass(frozen=True, slots=True)
class _Call:
    """A call parsed and checked, ready to run."""

    service: str
    model: ServiceModel
    protocol: Protocol
    operation: OperationModel
    params: dict[str, Any]
    handler: Operation
    context: CallContext


class AwsRouting:
    """AWS API calls to the endpoint, everything else to `app` (the gateway)."""

    def __init__(self, app: Any, endpoint: AwsEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not looks_like_aws(scope):
            await self.app(scope, receive, send)
            return
        request = await _read(scope, receive)
        service = identify(request)
        if service is None:  # a form post to a route, say: the gateway answers
            await self.app(scope, _replay(request.body, receive), send)
            return
        scope["route"] = AwsRoute(service)  # what request metrics and traces name it by
        await self.endpoint.respond(request, scope, send, service)


class AwsRoute:
    """The route an AWS call is counted under: `aws:<service>` (one series per service)."""

    def __init__(self, service: str) -> None:
        self.path = f"aws:{service}"


def _replay(body: bytes, receive: Any) -> Any:
    """A `receive` that hands over a body already read, then the connection's own events."""
    sent = False

    async def replayed() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _read(scope: Any, receive: Any) -> HttpRequest:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise AwsError("RequestEntityTooLarge", f"the request is over {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    return HttpRequest(
        method=scope["method"],
        path=scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?", 1)[0],
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=b"".join(chunks),
    )


def _host(scope: Any) -> tuple[str, str]:
    """The scheme and host the caller reached (for queue URLs)."""
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return scope.get("scheme", "http"), host


def _unknown_service(request: HttpRequest, service: str | None, request_id: str) -> HttpResponse:
    body = (
        f"fanstack does not answer for the AWS service {service!r}"
        if service
        else "not an AWS request fanstack recognises"
    )
    return HttpResponse(400, {"content-type": "text/plain"}, body.encode())
