"""The leases this process handed out and has not seen end: what it is serving right now.

JetStream times a lease by the server's clock (a consumer's ack wait, a nak's delay); fanstack
decides by its own clock. The two agree unless a process's clock moved ahead of real time (a test
clock does), and then the process that holds a lease ends it early itself, where its clock says
so. The ledger also answers, for this process's own handles, what only a lease's holder knows
without a read: whether a handle is still the latest, and when its lease ends after a change.

Entries leave when the message is deleted or when the lease has ended by both clocks; the
ledger never holds more than this process's in-flight messages and the deferrals it made.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

MAX_ENTRIES = 100_000
GONE_KEPT = 10_000  # deleted keys remembered, so a handle used after a delete is known stale


@dataclass(slots=True)
class Lease:
    """One delivery this process handed out (or deferred)."""

    queue: str
    reply: str
    delivered: int
    visible_at: float  # fanstack clock
    deadline: float  # real time: when the server ends it
    first_received_at: float
    group_id: str | None = None
    deferral: bool = False  # a delayed message this process put back, not a receive


class Ledger:
    """Leases by stored message (partition, stream sequence), also found by message and by
    queue without a scan of the others (a receive asks for each message it hands out)."""

    def __init__(self) -> None:
        self._leases: dict[tuple[str, int, int], Lease] = {}
        self._by_message: dict[tuple[int, int], set[str]] = {}
        self._by_queue: dict[str, dict[tuple[str, int, int], Lease]] = {}
        self._gone: OrderedDict[tuple[str, int, int], None] = OrderedDict()

    def record(self, consumer: str, key: tuple[int, int], lease: Lease) -> None:
        if len(self._leases) >= MAX_ENTRIES:
            self.forget_ended(time.time())
        full = (consumer, *key)
        self._remove(full)
        self._leases[full] = lease
        self._by_message.setdefault(key, set()).add(consumer)
        self._by_queue.setdefault(lease.queue, {})[full] = lease
        self._gone.pop(full, None)

    def _remove(self, full: tuple[str, int, int]) -> None:
        lease = self._leases.pop(full, None)
        if lease is None:
            return
        consumer, partition, sequence = full
        consumers = self._by_message.get((partition, sequence))
        if consumers is not None:
            consumers.discard(consumer)
            if not consumers:
                del self._by_message[(partition, sequence)]
        of_queue = self._by_queue.get(lease.queue)
        if of_queue is not None:
            of_queue.pop(full, None)
            if not of_queue:
                del self._by_queue[lease.queue]

    def get(self, consumer: str, key: tuple[int, int]) -> Lease | None:
        return self._leases.get((consumer, *key))

    def is_gone(self, consumer: str, key: tuple[int, int]) -> bool:
        return (consumer, *key) in self._gone

    def drop(self, consumer: str, key: tuple[int, int], *, deleted: bool = False) -> None:
        self._remove((consumer, *key))
        if deleted:
            self._gone[(consumer, *key)] = None
            while len(self._gone) > GONE_KEPT:
                self._gone.popitem(last=False)

    def due_early(self, queue: str, now: float) -> list[tuple[tuple[int, int], Lease]]:
        """Leases of `queue` over by the fanstack clock but not yet by the server's."""
        real = time.time()
        if now <= real:
            return []  # our clock is not ahead of real time: the server ends them as we would
        return [
            ((partition, sequence), lease)
            for (_consumer, partition, sequence), lease in self._by_queue.get(queue, {}).items()
            if lease.visible_at <= now and real < lease.deadline - 0.05
        ]

    def of_message(self, partition: int, sequence: int) -> list[Lease]:
        """Leases (not deferrals) of one stored message, whichever consumer gave them."""
        leases = (
            self._leases[(consumer, partition, sequence)]
            for consumer in self._by_message.get((partition, sequence), ())
        )
        return [lease for lease in leases if not lease.deferral]

    def leases_of_queue(self, queue: str) -> list[tuple[tuple[str, int, int], Lease]]:
        """(consumer, partition, sequence) and lease of every lease of `queue`."""
        return list(self._by_queue.get(queue, {}).items())

    def in_flight(self, queue: str, now: float) -> list[Lease]:
        """This process's leases of `queue` still hiding their message (fanstack clock)."""
        return [
            lease
            for lease in self._by_queue.get(queue, {}).values()
            if lease.visible_at > now and not lease.deferral
        ]

    def ended_early(self, queue: str, now: float) -> int:
        """Leases of `queue` the server still counts in flight that are over by our clock."""
        return len(self.due_early(queue, now))

    def forget_ended(self, real: float) -> None:
        """Drop leases the server has ended too (they are no longer ours to end)."""
        for key in [k for k, lease in self._leases.items() if lease.deadline < real - 1.0]:
            self._remove(key)

    def __len__(self) -> int:
        return len(self._leases)
