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
from nats.errors import NoRespondersError

CATCH_UP = 0.005  # seconds an empty immediate pull looks again for what was just stored
ACK = b"+ACK"
WORKING = b"+WPI"
NAK = b"-NAK"
TERMINATE = b"+TERM"


class Inbox:
    """The reply subject of one consumer's pull requests in this process, one pull at a time.

    Replies go straight to the pull waiting for them (no queue, no task per reply); a delivery
    that arrives while no pull waits (after its pull gave up) is kept for the next pull.
    """

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.lock = asyncio.Lock()
        self.late: list[Msg] = []
        self.subscription: Any = None
        self.waiting: Waiting | None = None

    async def on_reply(self, message: Msg) -> None:
        waiting = self.waiting
        if waiting is None or waiting.done.done():
            if message.reply:
                self.late.append(message)
            return
        if message.reply:
            waiting.messages.append(message)
            if len(waiting.messages) >= waiting.wanted:
                waiting.done.set_result(None)
        elif (message.headers or {}).get("Status", "") != "100":  # not an idle heartbeat
            waiting.done.set_result(None)  # 404 no messages, 408 request expired, 409 ...


class Waiting:
    """One pull in progress: the deliveries it has, until it has `wanted` or the server ends it."""

    def __init__(self, wanted: int, messages: list[Msg]) -> None:
        self.wanted = wanted
        self.messages = messages
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class Puller:
    """Pull requests of one connection: one inbox subscription per consumer (a JetStream
    delivery keeps its own subject, so replies are told apart by the subscription)."""

    def __init__(self, nc: Any) -> None:
        self._nc = nc
        self._inboxes: dict[tuple[str, str], Inbox] = {}

    async def open(self) -> None:
        """Nothing to prepare: inboxes are made on a consumer's first pull."""

    async def _inbox(self, stream: str, consumer: str) -> Inbox:
        inbox = self._inboxes.get((stream, consumer))
        if inbox is None:
            inbox = Inbox(self._nc.new_inbox())
            inbox.subscription = await self._nc.subscribe(inbox.subject, cb=inbox.on_reply)
            self._inboxes[(stream, consumer)] = inbox
        return inbox

    async def forget(self, consumer: str) -> None:
        """Drop the inboxes of a consumer that is gone (its queue was deleted or purged)."""
        for key in [key for key in self._inboxes if key[1] == consumer]:
            inbox = self._inboxes.pop(key)
            if inbox.subscription is not None:
                await inbox.subscription.unsubscribe()

    async def pull(
        self, stream: str, consumer: str, batch: int, expires: float = 0.0, *, again: bool = True
    ) -> list[Msg]:
        """Up to `batch` messages of the consumer there now, or (`expires`) one within it.

        A long poll asks for one message only: a request the server still holds when we stop
        listening would deliver to a reply nobody reads. A delivery that arrives after its pull
        gave up is not lost: the next pull of the consumer takes it.
        """
        if expires > 0:
            batch = 1
        messages = await self._pull(stream, consumer, batch, expires)
        if not messages and expires <= 0 and again:
            # A consumer can answer "no messages" to an immediate pull a moment before it
            # counts one just stored: look again, briefly, so a receive sees a send that
            # returned before it (a pull that finds some returns at once).
            messages = await self._pull(stream, consumer, batch, CATCH_UP, lingering=True)
        return messages

    async def _pull(
        self, stream: str, consumer: str, batch: int, expires: float, *, lingering: bool = False
    ) -> list[Msg]:
        inbox = await self._inbox(stream, consumer)
        request: dict[str, Any] = {"batch": batch}
        if expires > 0:
            request["expires"] = int(expires * 1e9)
        if expires <= 0 or lingering:
            request["no_wait"] = True
        async with inbox.lock:
            messages, inbox.late = inbox.late, []  # late deliveries of an earlier pull
            if len(messages) >= batch:
                return messages
            waiting = Waiting(batch, messages)
            inbox.waiting = waiting
            try:
                await self._nc.publish(
                    f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                    json.dumps(request).encode(),
                    reply=inbox.subject,
                )
                loop = asyncio.get_running_loop()
                timer = loop.call_later(max(expires, 0) + 5.0, _finish, waiting.done)
                try:
                    await waiting.done
                finally:
                    timer.cancel()
            finally:
                inbox.waiting = None
        return waiting.messages


def _finish(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


class Requests:
    """Requests of one connection whose replies come to one wildcard inbox subscription.

    The client's own request makes a timer task per call; on the hot paths (a store, the
    acknowledgement that confirms a delete) a reply resolves its future directly and one timer
    handle bounds the wait. Same errors as the client's: `TimeoutError`, `NoRespondersError`.
    """

    def __init__(self, nc: Any) -> None:
        self._nc = nc
        self._prefix = ""
        self._next = 0
        self._waiting: dict[str, asyncio.Future[Msg]] = {}

    async def open(self) -> None:
        self._prefix = self._nc.new_inbox()
        await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)

    async def _on_reply(self, message: Msg) -> None:
        future = self._waiting.pop(message.subject[len(self._prefix) + 1 :], None)
        if future is None or future.done():
            return  # its request gave up
        if not message.data and (message.headers or {}).get("Status") == "503":
            future.set_exception(NoRespondersError())
        else:
            future.set_result(message)

    async def publish(
        self, subject: str, payload: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        await self._nc.publish(subject, payload, headers=headers)

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Msg:
        """Publish with a reply subject of this inbox and wait up to `timeout` for the reply."""
        loop = asyncio.get_running_loop()
        self._next += 1
        key = str(self._next)
        future: asyncio.Future[Msg] = loop.create_future()
        self._waiting[key] = future
        timer = loop.call_later(timeout, _time_out, future)
        try:
            await self._nc.publish(
                subject, payload, reply=f"{self._prefix}.{key}", headers=headers
            )
            return await future
        finally:
            timer.cancel()
            self._waiting.pop(key, None)


def _time_out(future: asyncio.Future[Msg]) -> None:
    if not future.done():
        future.set_exception(TimeoutError("no reply in time"))


async def acknowledge(nc: Any, reply: str, what: bytes, timeout: float = 10.0) -> None:
    """Send an acknowledgement and wait for the server to confirm it."""
    await nc.request(reply, what, timeout=timeout)


async def acknowledge_all(nc: Any, replies: list[str], timeout: float = 10.0) -> None:
    """Acknowledge deliveries; returns once the server confirmed them all.

    The server handles one consumer's acknowledgements in the order they arrive on a
    connection, so one confirmed acknowledgement after the others confirms them all.
    """
    if not replies:
        return
    for reply in replies[:-1]:
        await nc.publish(reply, ACK)
    await nc.request(replies[-1], ACK, timeout=timeout)


def nak_delay(seconds: float) -> bytes:
    """A negative acknowledgement that redelivers after `seconds` (keeping the message pending)."""
    if seconds <= 0:
        return NAK
    return NAK + b" " + json.dumps({"delay": int(seconds * 1e9)}).encode()
