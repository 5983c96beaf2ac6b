"""Pull requests and acknowledgements on JetStream consumers, without a subscription each.

One wildcard inbox subscription per process receives the replies of every pull request, told
apart by the last token of the reply subject. A pull asks for `batch` messages, either what is
there now (`no_wait`) or waiting up to `expires` seconds for the first.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nats.aio.msg import Msg

ACK = b"+ACK"
WORKING = b"+WPI"
NAK = b"-NAK"
TERMINATE = b"+TERM"


class Puller:
    """Pull requests of one connection (a JetStream delivery keeps its own subject, so each
    request gets its own inbox subscription to tell its replies apart)."""

    def __init__(self, nc: Any) -> None:
        self._nc = nc

    async def open(self) -> None:
        """Nothing to prepare (kept for symmetry with the other parts)."""

    async def pull(
        self, stream: str, consumer: str, batch: int, expires: float = 0.0
    ) -> list[Msg]:
        """Up to `batch` messages of the consumer there now, or (`expires`) one within it.

        A long poll asks for one message only: a request the server still holds when we stop
        listening would deliver to no one, and count a receive nobody made.
        """
        if expires > 0:
            batch = 1
        replies: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_reply(message: Msg) -> None:
            replies.put_nowait(message)

        inbox = self._nc.new_inbox()
        subscription = await self._nc.subscribe(inbox, cb=on_reply)
        request: dict[str, Any] = {"batch": batch}
        if expires > 0:
            request["expires"] = int(expires * 1e9)
        else:
            request["no_wait"] = True
        messages: list[Msg] = []
        try:
            await self._nc.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                json.dumps(request).encode(),
                reply=inbox,
            )
            loop = asyncio.get_running_loop()
            deadline = loop.time() + max(expires, 0) + 5.0
            while len(messages) < batch:
                try:
                    message = await asyncio.wait_for(
                        replies.get(), max(deadline - loop.time(), 0.001)
                    )
                except TimeoutError:
                    break
                if message.reply:
                    messages.append(message)
                    continue
                if (message.headers or {}).get("Status", "") == "100":
                    continue  # an idle heartbeat
                break  # 404 no messages, 408 request expired, 409 ...: this pull is over
        finally:
            await subscription.unsubscribe()
        return messages


async def acknowledge(nc: Any, reply: str, what: bytes, timeout: float = 10.0) -> None:
    """Send an acknowledgement and wait for the server to confirm it."""
    await nc.request(reply, what, timeout=timeout)


def nak_delay(seconds: float) -> bytes:
    """A negative acknowledgement that redelivers after `seconds` (keeping the message pending)."""
    if seconds <= 0:
        return NAK
    return NAK + b" " + json.dumps({"delay": int(seconds * 1e9)}).encode()
