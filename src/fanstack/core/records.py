"""The values the backends exchange with their callers: publish requests, queue figures, results.

Pure data, no I/O: the runtime, the CLI and the backends all speak in these.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fanstack.core.errors import FanstackError
from fanstack.core.message import MessageAttribute

Clock = Callable[[], float]
EntryResult = str | FanstackError | None  # a batch entry: message id, error, or nothing to report


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """One message to publish to a topic (attributes already validated, see `to_attributes`)."""

    body: str
    attributes: Mapping[str, MessageAttribute] = field(default_factory=dict)
    subject: str | None = None
    group_id: str | None = None
    deduplication_id: str | None = None

    def with_attributes(self, attributes: Mapping[str, MessageAttribute]) -> PublishRequest:
        """This request with `attributes` in place of its own."""
        return PublishRequest(
            self.body, attributes, self.subject, self.group_id, self.deduplication_id
        )


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Depths and ages of one queue, as `fanstack queues` shows them."""

    name: str
    visible: int
    in_flight: int
    delayed: int
    oldest_age: float | None
    dead_letter_depth: int | None
    expired: int
    dead_lettered: int

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON output."""
        return {
            "name": self.name,
            "visible": self.visible,
            "in_flight": self.in_flight,
            "delayed": self.delayed,
            "oldest_age": self.oldest_age,
            "dead_letter_depth": self.dead_letter_depth,
            "expired": self.expired,
            "dead_lettered": self.dead_lettered,
        }


# Ids are drawn from a generator of this process, seeded from the system's entropy (again in a
# forked child): an id must be unique, not unpredictable, and `uuid4` makes a system call for
# each, which lets go of the GIL and costs a busy process a thread switch.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


# The variant (RFC 4122) and version (4) bits, set as `uuid.UUID(version=4)` sets them.
_UUID4_KEEP = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def new_id() -> str:
    """A fresh random (version 4) UUID, as `str(uuid.UUID(int=..., version=4))` writes it."""
    digits = "%032x" % (_ids.getrandbits(128) & _UUID4_KEEP | _UUID4_SET)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def new_message_id() -> str:
    """A fresh message id (a UUID, as SNS and SQS issue)."""
    return new_id()
