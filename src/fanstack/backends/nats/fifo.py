"""Serving a FIFO queue: one process at a time holds it, and keeps its groups in order.

JetStream delivers a consumer's messages in stream order, and a FIFO group lives in one
partition, so a group's messages arrive in order. What JetStream cannot do is hold back a
group's next message while an earlier one is in flight. The process that serves a FIFO queue
does that: it *holds* the queue (a key in the notes bucket, renewed while it receives), pulls the
deliveries, hands out the ones `core.queue_rules.fifo_eligible` allows, and keeps the others
pending in JetStream (its *held* messages, kept alive with in-progress acknowledgements) until
their group is free. Another process's receive finds the queue held and returns nothing; it
takes over once the holder's hold runs out: 10 s after its last receive, and never before the
last lease it handed out ends (it stopped or died); the held messages come back to it when their
ack wait runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg

from fanstack.backends.nats.layout import token
from fanstack.backends.nats.notes import Bucket

HOLD_TTL = 10.0  # seconds a hold lasts without a receive renewing it
HOLD_LIMIT = 20_000  # messages held pending at most (the FIFO consumer's max ack pending)
HOLD_BYTES = 64 * 1024 * 1024  # and their bodies' bytes at most


@dataclass(slots=True)
class Held:
    """A delivery pulled but not handed out: its group has a message in flight."""

    partition: int
    sequence: int
    message: Msg
    pulled_at: float  # real time: the server's lease on it started here


class Holds:
    """The FIFO queues this process holds, by the notes bucket."""

    def __init__(self, notes: Bucket, holder: str) -> None:
        self._notes = notes
        self._holder = holder
        self._until: dict[str, float] = {}

    async def hold(self, queue: str, real_now: float, keep_until: float = 0.0) -> bool:
        """Take or renew the hold on `queue` (at least until `keep_until`, the end of our last
        lease of it); False if another live process holds it."""
        until = max(real_now + HOLD_TTL, keep_until)
        if self._until.get(queue, 0.0) - real_now > HOLD_TTL / 2 and until <= self._until[queue]:
            return True

        def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current and current["id"] != self._holder and current["until"] > real_now:
                return None  # held by someone else: leave it
            return {"id": self._holder, "until": until}

        result = await self._notes.update(f"hold.{token(queue)}", change)
        if result is not None and result["id"] == self._holder:
            self._until[queue] = result["until"]
            return True
        self._until.pop(queue, None)
        return False

    def held(self) -> list[str]:
        return list(self._until)

    async def release(self, queue: str) -> None:
        """Give up the hold (the next receiver anywhere takes it at once)."""
        self._until.pop(queue, None)

        def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current and current["id"] == self._holder:
                return {"id": self._holder, "until": 0.0}
            return None

        await self._notes.update(f"hold.{token(queue)}", change)
