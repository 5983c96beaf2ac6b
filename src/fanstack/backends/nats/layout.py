"""Names, subjects and message headers of fanstack's JetStream layout (version 2).

Everything here is pure: it turns fanstack names into JetStream names and a stored message's
headers into fanstack values and back. `__init__.py` describes the layout as a whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from fanstack.core.errors import FanstackError, ReceiptHandleIsInvalid

LAYOUT = 2  # the layout version kept in the catalog's `meta` entry
PUBLICATION_TTL_MARGIN = 86_400  # seconds a message outlives its retention (the engine's backstop)


def token(name: str) -> str:
    """A queue or topic name as one subject token / KV key part (names are [A-Za-z0-9_-]+.fifo)."""
    return name.replace(".", "=")


def untoken(part: str) -> str:
    return part.replace("=", ".")


def subject_matches(subject: str, pattern: str) -> bool:
    """Whether a subject falls under a NATS filter (`*` one token, `>` the rest)."""
    parts, wanted = subject.split("."), pattern.split(".")
    for index, want in enumerate(wanted):
        if want == ">":
            return len(parts) > index
        if index >= len(parts) or (want != "*" and want != parts[index]):
            return False
    return len(parts) == len(wanted)


def partition_of(key: str, partitions: int) -> int:
    """The partition a key (message id, FIFO group) lives in: stable across processes."""
    if partitions == 1:
        return 0
    digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % partitions


@dataclass(frozen=True, slots=True)
class Names:
    """The JetStream names of one fanstack namespace."""

    namespace: str
    partitions: int

    def stream(self, partition: int) -> str:
        return f"{self.namespace}_P{partition}"

    def stream_subjects(self, partition: int) -> str:
        return f"fs.{self.namespace}.{partition}.>"

    def queue_prefix(self, partition: int, queue: str) -> str:
        return f"fs.{self.namespace}.{partition}.q.{token(queue)}"

    def queue_subject(self, partition: int, queue: str) -> str:
        """Messages sent to the queue (and redriven into it)."""
        return f"{self.queue_prefix(partition, queue)}.m"

    def dead_letter_subject(self, partition: int, queue: str, source: str) -> str:
        """Messages `source` dead-lettered into `queue`."""
        return f"{self.queue_prefix(partition, queue)}.s.{token(source)}"

    def delay_subject(self, partition: int, queue: str) -> str:
        """Messages of the queue that are not visible yet (a delay)."""
        return f"fs.{self.namespace}.{partition}.d.{token(queue)}"

    def topic_subject(self, partition: int, topic: str, slots: Sequence[bool]) -> str:
        """A topic message; token i says whether the subscription in slot i takes it."""
        bits = ".".join("1" if taken else "0" for taken in slots)
        middle = f".{bits}" if bits else ""
        return f"fs.{self.namespace}.{partition}.t.{token(topic)}{middle}.e"

    def slot_filter(self, partition: int, topic: str, slot: int) -> str:
        """The subjects of topic messages the subscription in `slot` takes."""
        return f"fs.{self.namespace}.{partition}.t.{token(topic)}.{'*.' * slot}1.>"

    @staticmethod
    def consumer(queue: str) -> str:
        return f"q-{token(queue)}"

    @staticmethod
    def delay_consumer(queue: str) -> str:
        return f"d-{token(queue)}"

    @property
    def catalog_bucket(self) -> str:
        return f"{self.namespace}_CATALOG"

    @property
    def notes_bucket(self) -> str:
        return f"{self.namespace}_NOTES"

    @property
    def dedup_bucket(self) -> str:
        return f"{self.namespace}_DEDUP"


# -- stored messages ------------------------------------------------------------------------

HEADER = "Fs"  # one header holds a stored message's fanstack fields, as compact JSON
_COMPACT = json.JSONEncoder(separators=(",", ":"))  # made once: a header per stored message
_DECODE = msgspec.json.Decoder().decode


def _read(header: str) -> dict[str, Any]:
    """A header's fields. msgspec reads a receive's headers about four times as fast as `json`;
    `json` reads what msgspec refuses and `_COMPACT` may have written (a lone surrogate's
    escape, from a subject or a failure text), so a header once stored is always readable."""
    try:
        fields: dict[str, Any] = _DECODE(header)
    except msgspec.DecodeError:
        fields = json.loads(header)
    return fields

# The JSON keys of each field (short: every stored message carries them).
_KEYS = (
    ("message_id", "i"),
    ("sent_at", "t"),  # fanstack clock, seconds
    ("attributes", "a"),
    ("group_id", "g"),
    ("dedup_id", "d"),
    ("visible_at", "v"),  # a delayed message's first visible time
    ("since", "r"),  # retention counts from here when not the sent time (read: older redrives)
    ("topic", "T"),  # topic messages: the envelope's fields and who takes them
    ("subject", "S"),
    ("deliveries", "D"),  # {queue: [unsubscribe url or None, dedup id]}
    ("source", "s"),  # dead letters and messages handed back: their history so far
    ("failure", "f"),
    ("receive_count", "c"),
    ("first_received_at", "F"),
    ("failed_receives", "x"),
    ("lost_receives", "l"),
    ("queue", "q"),  # delayed messages: the queue they wait for
)

_NAMES = {key: name for name, key in _KEYS}  # each JSON key's field


@dataclass(slots=True)
class Stored:
    """A message as its header and body describe it, for one queue."""

    message_id: str
    body: str
    sent_at: float
    attributes: str | None = None
    group_id: str | None = None
    dedup_id: str | None = None
    visible_at: float | None = None
    since: float | None = None
    topic: str | None = None
    subject: str | None = None
    deliveries: dict[str, list[str | None]] = field(default_factory=dict)
    source: str | None = None
    failure: str | None = None
    receive_count: int = 0
    first_received_at: float | None = None
    failed_receives: int = 0
    lost_receives: int | None = None
    queue: str | None = None

    def headers(self) -> dict[str, str]:
        """The header that stores this message's fields (the body is the payload)."""
        fields = {}
        for name, key in _KEYS:
            value = getattr(self, name)
            if value is not None and (value != 0 or name == "sent_at") and value != {}:
                fields[key] = value
        # ensure_ascii: a header value is one line of ASCII (a traceback's newlines escaped).
        return {HEADER: _COMPACT.encode(fields)}

    @classmethod
    def parse(cls, headers: Mapping[str, str] | None, data: bytes) -> Stored:
        """Read a stored message back from its header and body."""
        fields = _read((headers or {}).get(HEADER) or "{}")
        stored = cls(message_id=fields.pop("i", ""), body=data.decode(), sent_at=fields.pop("t", 0))
        for key, value in fields.items():
            name = _NAMES.get(key)
            if name is not None:  # a key a later version added: not ours to read
                setattr(stored, name, value)
        return stored

    @staticmethod
    def group_of(headers: Mapping[str, str] | None) -> str | None:
        """The FIFO group of a stored message, from its header."""
        group: str | None = _read((headers or {}).get(HEADER) or "{}").get("g")
        return group


# -- receipt handles --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a receipt handle names: one delivery of one stored message to one queue's consumer.

    `reply` is the delivery's JetStream ack subject; `visible_at` the end of the lease as the
    receive set it (fanstack clock).
    """

    partition: int
    consumer: str
    delivered: int
    sequence: int
    reply: str
    visible_at: float

    @property
    def key(self) -> tuple[int, int]:
        """The stored message: (partition, stream sequence)."""
        return self.partition, self.sequence

    def handle(self) -> str:
        return f"{self.reply[len('$JS.ACK.') :]}~{self.visible_at!r}"


def parse_reply(reply: str) -> tuple[str, str, int, int] | None:
    """(stream, consumer, delivered count, stream sequence) of a JetStream ack subject."""
    parts = reply.split(".")
    if len(parts) < 9 or parts[0] != "$JS" or parts[1] != "ACK":
        return None
    # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
    # (newer servers may put a domain and account hash before the stream).
    stream, consumer, delivered, sequence = parts[-7], parts[-6], parts[-5], parts[-4]
    if not (delivered.isdigit() and sequence.isdigit()):
        return None
    return stream, consumer, int(delivered), int(sequence)


def parse_receipt(handle: object, names: Names) -> Receipt | FanstackError:
    """The receipt a handle names, or ReceiptHandleIsInvalid if fanstack did not issue it."""
    if not isinstance(handle, str):
        return _not_issued(handle)
    reply, _, visible = handle.rpartition("~")
    parsed = parse_reply(f"$JS.ACK.{reply}")
    if parsed is None:
        return _not_issued(handle)
    stream, consumer, delivered, sequence = parsed
    prefix = f"{names.namespace}_P"
    if not stream.startswith(prefix) or not stream[len(prefix) :].isdigit():
        return _not_issued(handle)
    try:
        visible_at = float(visible)
    except ValueError:
        return _not_issued(handle)
    partition = int(stream[len(prefix) :])
    return Receipt(partition, consumer, delivered, sequence, f"$JS.ACK.{reply}", visible_at)


def _not_issued(handle: object) -> ReceiptHandleIsInvalid:
    return ReceiptHandleIsInvalid(f"receipt handle {handle!r} is not one fanstack issued")
