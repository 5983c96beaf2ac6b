"""Settling leases by receipt handle: delete (an acknowledgement), change visibility (a nak with
a delay, or for 0 on a standard queue a fresh copy), and the receipt-handle errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from nats.js.errors import NotFoundError

from fanstack.backends.nats.layout import (
    PUBLICATION_TTL_MARGIN,
    Receipt,
    Stored,
    parse_receipt,
)
from fanstack.backends.nats.ledger import Lease
from fanstack.backends.nats.notes import note_key, noting
from fanstack.backends.nats.pull import acknowledge, acknowledge_all, nak_delay
from fanstack.backends.nats.queues import Messages
from fanstack.core.errors import (
    FanstackError,
    MessageNotInflight,
    ReceiptHandleIsInvalid,
)
from fanstack.core.queue_rules import (
    message_gone,
    receipt_handle_expired,
    stale_handle,
    visibility_timeout_error,
)
from fanstack.core.records import EntryResult
from fanstack.core.specs import QueueSpec


class Settling:
    """Deletes and visibility changes."""

    def __init__(self, messages: Messages) -> None:
        self.m = messages

    def _receipt(self, queue: str, handle: str) -> Receipt | FanstackError:
        """The receipt a handle names, if fanstack issued it for this queue."""
        receipt = parse_receipt(handle, self.m.names)
        if isinstance(receipt, FanstackError):
            return receipt
        if receipt.consumer != self.m.names.consumer(queue):
            return ReceiptHandleIsInvalid(
                f"receipt handle {handle} belongs to another queue, not {queue!r}"
            )
        return receipt

    def _check_here(
        self, spec: QueueSpec, receipt: Receipt, handle: str, now: float, *, deleting: bool
    ) -> FanstackError | bool | None:
        """What this process knows of a handle: its error, None (it is the latest), or True
        when only the message's note can tell (another process may have received it since)."""
        lease = self.m.ledger.get(receipt.consumer, receipt.key)
        if self.m.ledger.is_gone(receipt.consumer, receipt.key):
            return None if deleting else message_gone(handle)
        if lease is not None and lease.delivered > receipt.delivered:
            return stale_handle(handle)
        visible_at = lease.visible_at if lease is not None else receipt.visible_at
        if spec.fifo and now >= visible_at:
            if deleting:
                return receipt_handle_expired(handle)
            return MessageNotInflight(
                f"message {receipt.sequence} of queue {spec.name!r} is not in flight"
            )
        return lease is None or lease.delivered < receipt.delivered or now >= visible_at

    async def _check(
        self, spec: QueueSpec, receipt: Receipt, handle: str, now: float, *, deleting: bool
    ) -> FanstackError | None:
        """The error a handle gets, or None if it is the message's latest delivery."""
        known = self._check_here(spec, receipt, handle, now, deleting=deleting)
        if known is not True:
            return known or None
        note, _ = await self.m.notes.get(note_key(*receipt.key, receipt.consumer))
        if note is not None and note.get("dc", 0) > receipt.delivered:
            return stale_handle(handle)
        return None

    async def delete(
        self, spec: QueueSpec, handles: Sequence[str], now: float
    ) -> list[EntryResult]:
        """Delete by receipt handle, each entry on its own (a bad one sinks no other).

        The acknowledgements of one consumer go together: one round trip confirms them all.
        """
        receipts: list[Receipt | FanstackError] = [self._receipt(spec.name, h) for h in handles]
        checks: list[FanstackError | bool | None] = [
            r if isinstance(r, FanstackError) else self._check_here(spec, r, h, now, deleting=True)
            for r, h in zip(receipts, handles, strict=True)
        ]
        asked = [  # the handles only a note can judge: read those notes together
            (index, self._check(spec, r, h, now, deleting=True))
            for index, (r, h, c) in enumerate(zip(receipts, handles, checks, strict=True))
            if c is True and not isinstance(r, FanstackError)
        ]
        for (index, _), answer in zip(
            asked, await asyncio.gather(*(check for _, check in asked)), strict=True
        ):
            checks[index] = answer
        results: list[EntryResult] = []
        by_consumer: dict[str, list[str]] = {}
        noted: list[str] = []
        for receipt, check in zip(receipts, checks, strict=True):
            if isinstance(receipt, FanstackError) or check:
                results.append(check if isinstance(check, FanstackError) else None)
                continue
            results.append(None)
            by_consumer.setdefault(receipt.consumer, []).append(receipt.reply)
            if receipt.delivered > 1:  # only a redelivered message has a note
                noted.append(note_key(*receipt.key, receipt.consumer))
            self.m.ledger.drop(receipt.consumer, receipt.key, deleted=True)
        await asyncio.gather(*(acknowledge_all(self.m.requests, r) for r in by_consumer.values()))
        await asyncio.gather(*(self.m.notes.delete(key) for key in noted))
        return results

    async def set_visibility(
        self,
        spec: QueueSpec,
        changes: Sequence[tuple[str, int]],
        failure: str | None,
        now: float,
        *,
        uncount: bool,
    ) -> list[EntryResult]:
        """Change visibility by receipt handle, keeping `failure` for a dead-letter."""
        return list(
            await asyncio.gather(
                *(
                    self._set_visibility(spec, handle, timeout, failure, now, uncount=uncount)
                    for handle, timeout in changes
                )
            )
        )

    async def _set_visibility(
        self,
        spec: QueueSpec,
        handle: str,
        timeout: int,
        failure: str | None,
        now: float,
        *,
        uncount: bool,
    ) -> EntryResult:
        receipt = self._receipt(spec.name, handle)
        if isinstance(receipt, FanstackError):
            return receipt
        error = visibility_timeout_error(timeout) or await self._check(
            spec, receipt, handle, now, deleting=False
        )
        if error is not None:
            return error
        lease = self.m.ledger.get(receipt.consumer, receipt.key)
        if timeout == 0 and not spec.fifo:
            return await self._put_back(spec, receipt, lease, failure, uncount, now)
        if failure is not None or uncount:
            first = lease.first_received_at if lease is not None else now
            change = noting(
                delivered=receipt.delivered, first=first, failure=failure, uncount=uncount
            )
            await self.m.notes.update(note_key(*receipt.key, receipt.consumer), change)
        await acknowledge(self.m.nc, receipt.reply, nak_delay(timeout))
        if lease is None:
            lease = Lease(spec.name, receipt.reply, receipt.delivered, 0.0, 0.0, now)
            self.m.ledger.record(receipt.consumer, receipt.key, lease)
        lease.visible_at, lease.deadline = now + timeout, time.time() + timeout
        return None

    async def _put_back(
        self,
        spec: QueueSpec,
        receipt: Receipt,
        lease: Lease | None,
        failure: str | None,
        uncount: bool,
        now: float,
    ) -> EntryResult:
        """Make a standard queue's message visible now: store it again with its history, then
        acknowledge the delivery (so it counts as visible, not as a lease that ran out)."""
        partition, sequence = receipt.key
        try:
            raw = await self.m.js.get_msg(self.m.names.stream(partition), sequence)
        except NotFoundError:
            return message_gone(receipt.handle())
        stored = Stored.parse(raw.headers, raw.data or b"")
        note: dict[str, Any] = {}
        if receipt.delivered > 1 or lease is None:
            key = note_key(partition, sequence, receipt.consumer)
            note = (await self.m.notes.get(key))[0] or {}
        copy = self.m.resolved(spec.name, stored) if stored.topic is not None else stored
        receives = stored.receive_count + receipt.delivered - note.get("uncounted", 0)
        copy.receive_count = max(receives - (1 if uncount else 0), 0)
        copy.first_received_at = (
            lease.first_received_at if lease is not None else float(note.get("first", now))
        )
        copy.failure = failure or note.get("failure") or stored.failure
        copy.failed_receives = (
            stored.failed_receives + note.get("failed", 0) + (1 if failure is not None else 0)
        )
        copy.since, copy.sent_at = stored.since, stored.sent_at
        copy.source, copy.lost_receives = stored.source, stored.lost_receives
        # Back where it was (a dead letter stays one, for its redrive); a topic message as
        # the queue's own copy.
        own = f"{self.m.names.queue_prefix(partition, spec.name)}."
        subject = raw.subject if raw.subject and raw.subject.startswith(own) else None
        await self.m.move(
            subject or self.m.names.queue_subject(partition, spec.name),
            copy,
            receipt.reply,
            ttl=spec.retention + PUBLICATION_TTL_MARGIN,
            # Per queue: the queues of one topic message each put back a copy of their own.
            msg_id=f"back:{partition}:{sequence}:{spec.name}:{receipt.delivered}",
        )
        await self.m.notes.delete(note_key(partition, sequence, receipt.consumer))
        self.m.ledger.drop(receipt.consumer, receipt.key, deleted=True)
        return None
