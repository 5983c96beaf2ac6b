"""Receiving: pull deliveries, decide each one (expire, delay, dead-letter, hand out), and keep
FIFO groups in order (`fifo.py`). Long polls wait on one pull."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from nats.aio.msg import Msg

from fanstack.backends.nats.fifo import HOLD_BYTES, HOLD_LIMIT, Held
from fanstack.backends.nats.layout import (
    PUBLICATION_TTL_MARGIN,
    Receipt,
    Stored,
    parse_reply,
)
from fanstack.backends.nats.ledger import Lease
from fanstack.backends.nats.notes import note_key, noting
from fanstack.backends.nats.pull import ACK, NAK, WORKING, acknowledge, nak_delay
from fanstack.backends.nats.queues import Messages, QueueLocal, Taken
from fanstack.core.errors import (
    QueueDoesNotExist,
)
from fanstack.core.message import ReceivedMessage
from fanstack.core.queue_rules import (
    FifoCandidate,
    dead_letter,
    dead_letter_due,
    fifo_eligible,
    is_expired,
)
from fanstack.core.specs import QueueSpec

log = logging.getLogger("fanstack.nats")

PULL_BATCH = 256  # deliveries a FIFO receive pulls at once to find an eligible group
STASH_MARGIN = 1.0  # seconds of JetStream lease a delivery pulled by a long poll must have left
PUMP_INTERVAL = 0.2  # seconds between looks at a queue's delayed messages, per process
EXPIRED, DEFERRED, DEAD_LETTERED, SKIPPED = "expired", "deferred", "dead-lettered", "skipped"


class Receiving:
    """Leases and long polls of the queues."""

    def __init__(self, messages: Messages) -> None:
        self.m = messages

    async def lease(
        self, spec: QueueSpec, max_messages: int, timeout: int, now: float
    ) -> list[ReceivedMessage]:
        local = await self.m.ensure(spec)
        ended = await self._end_early(spec, now)
        real = time.time()
        # Look at delays every PUMP_INTERVAL by either clock (fanstack's may run ahead).
        if ended or max(real - local.pumped_at, now - local.pumped_now) >= PUMP_INTERVAL:
            local.pumped_at, local.pumped_now = real, now
            await self._pump_delays(spec, now)
        if spec.fifo:
            async with local.fifo_lock:
                return await self._lease_fifo(spec, local, max_messages, timeout, now)
        taken: list[Taken] = []
        expired = dead_lettered = 0
        candidates = await self._fresh_stash(spec, local, real)
        current: list[tuple[int, Msg]] = []  # the delivery being decided
        try:
            while len(taken) < max_messages:
                if not candidates:
                    # Only what this receive asks for: a delivery pulled ahead would be hidden
                    # from every other receiver (and counted in flight) until handed out here.
                    pulled = await self.m.pull(spec, local, max_messages - len(taken))
                    candidates = [(partition, message, real) for partition, message in pulled]
                    if not candidates:
                        break
                while candidates and len(taken) < max_messages:
                    partition, message, pulled_at = candidates.pop(0)
                    current = [(partition, message)]
                    outcome = await self._admit(spec, partition, message, now)
                    current = []
                    if outcome == EXPIRED:
                        expired += 1
                    elif outcome == DEAD_LETTERED:
                        dead_lettered += 1
                    elif isinstance(outcome, Taken):
                        outcome.pulled_at = pulled_at
                        taken.append(outcome)
        except Exception:
            # Nothing is handed out: give back what this receive pulled, not counted.
            pulled_back = current + [(p, m) for p, m, _at in candidates]
            await self._give_back(pulled_back + [(t.partition, t.message) for t in taken])
            raise
        local.stash.extend(candidates)  # left of a long poll's pull: the next receive takes them
        await self.m.count(spec.name, expired=expired, dead_lettered=dead_lettered)
        return await self._hand_out(spec, taken, timeout, now)

    async def _give_back(self, pulled: list[tuple[int, Msg]]) -> None:
        """Hand deliveries back at once, the receive not counted (best effort: if this fails
        too, they come back when their lease runs out)."""
        try:
            await asyncio.gather(
                *(
                    self.m.notes.update(delivery_note(p, m), noting(uncount=True))
                    for p, m in pulled
                )
            )
            await asyncio.gather(*(acknowledge(self.m.nc, m.reply, NAK) for _p, m in pulled))
        except Exception as error:  # the first error is the one to report
            log.warning("could not give back %d pulled deliveries: %s", len(pulled), error)

    async def _fresh_stash(
        self, spec: QueueSpec, local: QueueLocal, real: float
    ) -> list[tuple[int, Msg, float]]:
        """Deliveries a long poll pulled whose JetStream lease still has time; the others will be
        delivered again, and that delivery is not a receive (their note says so)."""
        fresh: list[tuple[int, Msg, float]] = []
        stale: list[tuple[int, Msg, float]] = []
        for entry in local.stash:
            (fresh if real - entry[2] < local.ack_wait - STASH_MARGIN else stale).append(entry)
        local.stash = []
        await asyncio.gather(
            *(
                self.m.notes.update(delivery_note(partition, message), noting(uncount=True))
                for partition, message, _pulled_at in stale
            )
        )
        return fresh

    async def _lease_fifo(
        self, spec: QueueSpec, local: QueueLocal, max_messages: int, timeout: int, now: float
    ) -> list[ReceivedMessage]:
        """Hand out FIFO messages in group order, none of a group with one in flight."""
        real = time.time()
        if not await self.m.holds.hold(spec.name, real, self._latest_deadline(spec.name)):
            return []
        await self._refresh_held(spec, local, now, real)
        taken: list[Taken] = []
        expired = dead_lettered = 0
        while len(taken) < max_messages:
            progressed = False
            for entry in self._eligible(spec.name, local):
                del local.held[(entry.partition, entry.sequence)]
                outcome = await self._admit(spec, entry.partition, entry.message, now)
                progressed = True
                if outcome == EXPIRED:
                    expired += 1
                elif outcome == DEAD_LETTERED:
                    dead_lettered += 1
                elif isinstance(outcome, Taken):
                    if timeout == local.ack_wait and real - entry.pulled_at > 1.0:
                        # Held a while: restart the server's lease with the hand-out.
                        await acknowledge(self.m.nc, entry.message.reply, WORKING)
                    taken.append(outcome)
                    if len(taken) >= max_messages:
                        break
            if len(taken) >= max_messages:
                break
            held_bytes = sum(len(entry.message.data) for entry in local.held.values())
            room = HOLD_LIMIT - len(local.held) if held_bytes < HOLD_BYTES else 0
            if room <= 0 and not progressed:
                break  # holding all we may: the blocked groups must move first
            pulled = await self.m.pull(spec, local, min(max(room, 0), PULL_BATCH)) if room else []
            for partition, message in pulled:
                await self._hold(local, partition, message, real)
            if not pulled and not progressed:
                break
        await self.m.count(spec.name, expired=expired, dead_lettered=dead_lettered)
        received = await self._hand_out(spec, taken, timeout, now)
        # Hold the queue while what we handed out is in flight: only we know its groups.
        await self.m.holds.hold(spec.name, time.time(), self._latest_deadline(spec.name))
        return received

    def _latest_deadline(self, queue: str) -> float:
        """When this process's last lease of the queue ends (real time; 0 if none)."""
        leases = self.m.ledger.leases_of_queue(queue)
        return max((lease.deadline for _key, lease in leases), default=0.0)

    async def _refresh_held(
        self, spec: QueueSpec, local: QueueLocal, now: float, real: float
    ) -> None:
        """Bring the held messages up to date before judging a FIFO receive."""
        stashed, local.stash = local.stash, []
        for partition, message, pulled_at in stashed:
            await self._hold(local, partition, message, pulled_at)
        ageing = [e for e in local.held.values() if real - e.pulled_at > local.ack_wait / 2]
        await asyncio.gather(  # keep the server's lease on what we hold
            *(acknowledge(self.m.nc, entry.message.reply, WORKING) for entry in ageing)
        )
        for entry in ageing:
            entry.pulled_at = real
        # JetStream gives redeliveries first: pull them now, so a group's failed message is
        # back in hand before its successor is judged.
        for partition, message in await self.m.pull(spec, local, PULL_BATCH):
            await self._hold(local, partition, message, real)
        for (consumer, p, s), lease in self.m.ledger.leases_of_queue(spec.name):
            if lease.visible_at <= now and real > lease.deadline + 1.0:
                self.m.ledger.drop(consumer, (p, s))  # deleted elsewhere, or not coming back

    def _eligible(self, queue: str, local: QueueLocal) -> list[Held]:
        """Held messages a FIFO receive may take now, in order (`core.queue_rules`)."""
        in_flight = [
            FifoCandidate((p, s), lease.group_id, visible=False)
            for (_consumer, p, s), lease in self.m.ledger.leases_of_queue(queue)
            if not lease.deferral
        ]
        waiting = [
            FifoCandidate(key, Stored.group_of(entry.message.headers), visible=True)
            for key, entry in local.held.items()
        ]
        order = sorted(in_flight + waiting, key=lambda candidate: candidate.position)
        return [
            local.held[(candidate.position[0], candidate.position[1])]
            for candidate in fifo_eligible(order)
        ]

    async def _hold(self, local: QueueLocal, partition: int, message: Msg, real: float) -> None:
        """Keep a FIFO delivery pending until its group is free."""
        parsed = parse_reply(message.reply)
        assert parsed is not None
        sequence = parsed[3]
        key = (partition, sequence)
        if key in local.held:
            # Delivered again while we held it (our keep-alive came late): not a receive.
            await self.m.notes.update(
                note_key(partition, sequence, parsed[1]), noting(uncount=True)
            )
        local.held[key] = Held(partition, sequence, message, real)
        self.m.ledger.drop(parsed[1], key)  # its earlier lease, if ours, is over: it came back

    async def _admit(
        self, spec: QueueSpec, partition: int, message: Msg, now: float
    ) -> Taken | str:
        """Decide one delivery: hand it out, or expire, defer or dead-letter it (and ack it)."""
        stored = Stored.parse(message.headers, message.data)
        parsed = parse_reply(message.reply)
        assert parsed is not None
        _stream, consumer, delivered, sequence = parsed
        if stored.topic is not None:
            if spec.name not in stored.deliveries:
                await acknowledge(self.m.nc, message.reply, ACK)  # not subscribed when published
                return SKIPPED
            stored.dedup_id = stored.deliveries[spec.name][1]
        if is_expired(stored.since or stored.sent_at, spec.retention, now):
            await acknowledge(self.m.nc, message.reply, ACK)
            return EXPIRED
        visible_at = stored.visible_at
        if visible_at is None and stored.topic is not None and spec.delay:
            visible_at = stored.sent_at + spec.delay
        if visible_at is not None and visible_at > now:
            await self._defer(spec, partition, stored, visible_at, message, sequence)
            return DEFERRED
        note = None
        if delivered > 1:
            note, _ = await self.m.notes.get(note_key(partition, sequence, consumer))
        uncounted = 0 if note is None else note.get("uncounted", 0)
        prior = stored.receive_count + delivered - 1 - uncounted
        if dead_letter_due(spec, prior):
            failed = stored.failed_receives + (0 if note is None else note.get("failed", 0))
            failure = (note or {}).get("failure") or stored.failure
            await self._dead_letter(
                spec,
                partition,
                sequence,
                stored,
                message,
                prior,
                failed,
                failure,
                self._first(partition, sequence, consumer, stored, note, now),
            )
            return DEAD_LETTERED
        first = self._first(partition, sequence, consumer, stored, note, now)
        return Taken(partition, message, stored, prior + 1, first, consumer, delivered, sequence)

    def _first(
        self,
        partition: int,
        sequence: int,
        consumer: str,
        stored: Stored,
        note: dict[str, Any] | None,
        now: float,
    ) -> float:
        """When the message was first received in this queue (SQS's
        ApproximateFirstReceiveTimestamp): its consumer's, not another subscribed queue's."""
        if stored.first_received_at is not None:
            return stored.first_received_at
        if note is not None and "first" in note:
            return float(note["first"])
        lease = self.m.ledger.get(consumer, (partition, sequence))
        return lease.first_received_at if lease is not None and not lease.deferral else now

    async def _hand_out(
        self, spec: QueueSpec, taken: list[Taken], timeout: int, now: float
    ) -> list[ReceivedMessage]:
        """Lease the taken deliveries: record them, and tell JetStream what differs from its
        defaults (a visibility timeout other than the queue's; a redelivery's note)."""
        chores = []
        override = timeout != self.m.local[spec.name].ack_wait
        deadline = time.time() + timeout
        visible_at = now + timeout
        received = []
        for entry in taken:
            message = entry.message
            consumer, delivered, sequence = entry.consumer, entry.delivered, entry.sequence
            if delivered > 1:
                change = noting(delivered=delivered, first=entry.first_received_at)
                key = note_key(entry.partition, sequence, consumer)
                chores.append(self.m.notes.update(key, change))
            if override:
                chores.append(acknowledge(self.m.nc, message.reply, nak_delay(timeout)))
            elif deadline - timeout - entry.pulled_at > STASH_MARGIN:
                # Pulled a while ago: restart JetStream's lease with the hand-out.
                chores.append(acknowledge(self.m.nc, message.reply, WORKING))
            lease = Lease(
                queue=spec.name,
                reply=message.reply,
                delivered=delivered,
                visible_at=visible_at,
                deadline=deadline,
                first_received_at=entry.first_received_at,
                group_id=entry.stored.group_id,
            )
            self.m.ledger.record(consumer, (entry.partition, sequence), lease)
            receipt = Receipt(
                entry.partition, consumer, delivered, sequence, message.reply, visible_at
            )
            received.append(
                self.m.received(
                    spec.name, entry.stored, receipt, entry.receipt_count, entry.first_received_at
                )
            )
        if chores:
            await asyncio.gather(*chores)
        return received

    async def _defer(
        self,
        spec: QueueSpec,
        partition: int,
        stored: Stored,
        visible_at: float,
        message: Msg,
        sequence: int,
    ) -> None:
        """Move a message that is not visible yet to the queue's delay subject."""
        stored.visible_at = visible_at
        stored.queue = spec.name
        if stored.topic is not None:
            # A topic message waits as the queue's own copy (its delivery, resolved).
            stored = self.m.resolved(spec.name, stored)
            stored.visible_at, stored.queue = visible_at, spec.name
        await self.m.move(
            self.m.names.delay_subject(partition, spec.name),
            stored,
            message.reply,
            ttl=spec.retention + PUBLICATION_TTL_MARGIN,
            msg_id=f"defer:{partition}:{sequence}:{spec.name}",
        )

    async def _pump_delays(self, spec: QueueSpec, now: float) -> None:
        """Move the queue's delayed messages that are due to its subject (others wait on)."""
        for partition in range(self.m.names.partitions):
            pulled = await self.m.puller.pull(  # a delay is not a read of one's own write
                self.m.names.stream(partition),
                self.m.names.delay_consumer(spec.name),
                100,
                again=False,
            )
            for message in pulled:
                stored = Stored.parse(message.headers, message.data)
                parsed = parse_reply(message.reply)
                assert parsed is not None
                _stream, consumer, delivered, sequence = parsed
                visible_at = stored.visible_at or now
                if is_expired(stored.since or stored.sent_at, spec.retention, now):
                    await acknowledge(self.m.nc, message.reply, ACK)
                    await self.m.count(spec.name, expired=1)
                    continue
                if visible_at > now:
                    wait = visible_at - now
                    await acknowledge(self.m.nc, message.reply, nak_delay(wait))
                    self.m.ledger.record(
                        consumer,
                        (partition, sequence),
                        Lease(
                            spec.name,
                            message.reply,
                            delivered,
                            visible_at,
                            time.time() + wait,
                            now,
                            deferral=True,
                        ),
                    )
                    continue
                stored.visible_at = None
                stored.queue = None
                await self.m.move(
                    self.m.names.queue_subject(partition, spec.name),
                    stored,
                    message.reply,
                    ttl=spec.retention + PUBLICATION_TTL_MARGIN,
                    msg_id=f"due:{partition}:{sequence}",
                )
                self.m.ledger.drop(consumer, (partition, sequence))

    async def _end_early(self, spec: QueueSpec, now: float) -> int:
        """End this process's leases of the queue that are over by the fanstack clock."""
        due = self.m.ledger.due_early(spec.name, now)
        for _key, lease in due:
            await acknowledge(self.m.nc, lease.reply, NAK)
            lease.deadline = time.time()  # the server redelivers it now
        return len(due)

    async def _dead_letter(
        self,
        spec: QueueSpec,
        partition: int,
        sequence: int,
        stored: Stored,
        message: Msg,
        receive_count: int,
        failed: int,
        failure: str | None,
        first: float,
    ) -> None:
        assert spec.dead_letter is not None
        target = await self.m.catalog.queue(spec.dead_letter)
        if target is None:
            raise QueueDoesNotExist(spec.dead_letter)
        if stored.topic is not None:
            stored = self.m.resolved(spec.name, stored)
        letter = dead_letter(failure=failure, receive_count=receive_count, failed_receives=failed)
        stored.source = spec.name
        stored.failure = letter.failure
        stored.receive_count = receive_count
        stored.first_received_at = first
        stored.failed_receives = failed
        stored.lost_receives = letter.lost_receives
        stored.since = None
        stored.visible_at = None
        await self.m.move(
            self.m.names.dead_letter_subject(partition, target.name, spec.name),
            stored,
            message.reply,
            ttl=target.retention + PUBLICATION_TTL_MARGIN,
            msg_id=f"dlq:{partition}:{sequence}:{spec.name}",
        )
        await self.m.notes.delete(delivery_note(partition, message))

    async def wait(self, spec: QueueSpec, timeout: float, now: float) -> None:
        """Long poll: wait up to `timeout` for a delivery, kept for the next lease."""
        local = await self.m.ensure(spec)
        if local.stash:
            return
        if spec.fifo and not await self.m.holds.hold(spec.name, time.time()):
            await asyncio.sleep(min(timeout, 1.0))  # another process serves it
            return
        partitions = self.m.names.partitions
        slice_ = min(timeout, 1.0) / partitions
        for step in range(partitions):
            partition = (local.next_partition + step) % partitions
            pulled = await self.m.puller.pull(
                self.m.names.stream(partition), self.m.names.consumer(spec.name), 1, expires=slice_
            )
            if pulled:
                local.stash.extend((partition, message, time.time()) for message in pulled)
                return

    async def release(self) -> None:
        """Give back what this process pulled and did not hand out (it is stopping): each is
        delivered again at once elsewhere, and that delivery is not counted as a receive."""
        for queue, local in self.m.local.items():
            pulled = [(p, m) for p, m, _at in local.stash]
            pulled += [(entry.partition, entry.message) for entry in local.held.values()]
            local.stash, local.held = [], {}
            await self._give_back(pulled)
            if queue in self.m.holds.held():
                await self.m.holds.release(queue)


def delivery_note(partition: int, message: Msg) -> str:
    """The note key of a delivery: its stored message in the queue of its consumer."""
    parsed = parse_reply(message.reply)
    assert parsed is not None, message.reply
    _stream, consumer, _delivered, sequence = parsed
    return note_key(partition, sequence, consumer)
