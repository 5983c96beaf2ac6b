"""The 256 KiB body limit: a route reads its whole body before anything else, 413 beyond it.

The body is read first (before auth, so a request over the limit spends no rate token), once,
and kept on the request for the endpoint (`body_of`). How long the body may take to arrive is
`body_timeout`'s concern.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from fanstack.core.message import TOPIC_MAX_MESSAGE_BYTES
from fanstack.gateway.responses import Endpoint, error_response

MAX_BODY_BYTES = TOPIC_MAX_MESSAGE_BYTES


class BodyTooLarge(Exception):
    """The request body exceeds the 256 KiB limit."""


async def read_body(request: Request) -> bytes:
    """The whole request body, or BodyTooLarge as soon as it is known to be over the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge(
            f"Payload Too Large: body is {declared} bytes; the limit is {MAX_BODY_BYTES} bytes"
        )
    chunks = []
    size = 0
    receive = request.receive
    more = True
    while more:  # what Request.stream() does, without an async generator per request
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(
                f"Payload Too Large: body exceeds the limit of {MAX_BODY_BYTES} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def read_body_first(endpoint: Endpoint) -> Endpoint:
    """`endpoint` given the body read in full: 413 over the limit, 400 if the client left."""

    async def reading(request: Request) -> Response:
        state = request.scope["state"]  # what `request.state` reads, without its wrapper
        request_id: str = state["request_id"]
        try:
            state["body"] = await read_body(request)
        except BodyTooLarge as exc:
            return error_response(413, str(exc), request_id)
        except ClientDisconnect:
            return error_response(400, "the client closed the connection mid-request", request_id)
        return await endpoint(request)

    return reading


def body_of(request: Request) -> bytes:
    """The body `read_body_first` read for `request`."""
    body: bytes = request.scope["state"]["body"]
    return body
