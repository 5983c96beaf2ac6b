"""Names, subjects and message headers of fanstack's JetStream layout (version 2).

Everything here is pure: it turns fanstack names into JetStream names and a stored message's
headers into fanstack values and back. `__init__.py` describes the layout as a whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fanstack.core.errors import FanstackError, ReceiptHandleIsInvalid

LAYOUT = 2  # the layout version kept in the catalog's `meta` entry
PUBLICATION_TTL_MARGIN = 86_400  # seconds a message outlives its retention (the engine's backstop)


def token(name: str) -> str:
    """A queue or topic name as one subject token / KV key part (names are [A-Za-z0-9_-]+.fifo)."""
    return name.replace(".", "=")


def untoken(part: str) -> str:
    return part.replace("=", ".")


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

H_ID = "Fs-Id"
H_SENT = "Fs-Sent"  # fanstack clock, seconds
H_SINCE = "Fs-Since"  # retention counts from here when not the sent time (a redrive)
H_VISIBLE = "Fs-Visible"  # a delayed message's first visible time
H_ATTRIBUTES = "Fs-Attributes"
H_GROUP = "Fs-Group"
H_DEDUP = "Fs-Dedup"
H_TOPIC = "Fs-Topic"  # topic messages: the envelope's fields
H_SUBJECT = "Fs-Subject"
H_DELIVERIES = "Fs-Deliveries"  # topic messages: {queue: [unsubscribe url or None, dedup id]}
H_SOURCE = "Fs-Source"  # dead letters: where they came from, and their history there
H_FAILURE = "Fs-Failure"
H_COUNT = "Fs-Count"
H_FIRST = "Fs-First"
H_FAILED = "Fs-Failed"
H_LOST = "Fs-Lost"
H_QUEUE = "Fs-Queue"  # delayed messages: the queue they wait for


@dataclass(slots=True)
class Stored:
    """A message as its headers and body describe it, for one queue."""

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
        """The headers that store this message (the body is the payload)."""
        headers = {H_ID: self.message_id, H_SENT: repr(self.sent_at)}
        optional: list[tuple[str, object]] = [
            (H_ATTRIBUTES, self.attributes),
            (H_GROUP, self.group_id),
            (H_DEDUP, self.dedup_id),
            (H_VISIBLE, self.visible_at),
            (H_SINCE, self.since),
            (H_TOPIC, self.topic),
            (H_SUBJECT, self.subject),
            (H_SOURCE, self.source),
            (H_FAILURE, self.failure),
            (H_FIRST, self.first_received_at),
            (H_LOST, self.lost_receives),
            (H_QUEUE, self.queue),
        ]
        for name, value in optional:
            if value is not None:
                headers[name] = value if isinstance(value, str) else repr(value)
        if self.deliveries:
            headers[H_DELIVERIES] = json.dumps(self.deliveries, separators=(",", ":"))
        if self.receive_count:
            headers[H_COUNT] = str(self.receive_count)
        if self.failed_receives:
            headers[H_FAILED] = str(self.failed_receives)
        return {name: _header_safe(value) for name, value in headers.items()}

    @classmethod
    def parse(cls, headers: Mapping[str, str] | None, data: bytes) -> Stored:
        h = {name: _header_unsafe(value) for name, value in (headers or {}).items()}
        first = h.get(H_FIRST)
        lost = h.get(H_LOST)
        return cls(
            message_id=h.get(H_ID, ""),
            body=data.decode(),
            sent_at=float(h.get(H_SENT, "0")),
            attributes=h.get(H_ATTRIBUTES),
            group_id=h.get(H_GROUP),
            dedup_id=h.get(H_DEDUP),
            visible_at=_float(h.get(H_VISIBLE)),
            since=_float(h.get(H_SINCE)),
            topic=h.get(H_TOPIC),
            subject=h.get(H_SUBJECT),
            deliveries=json.loads(h[H_DELIVERIES]) if H_DELIVERIES in h else {},
            source=h.get(H_SOURCE),
            failure=h.get(H_FAILURE),
            receive_count=int(h.get(H_COUNT, "0")),
            first_received_at=_float(first),
            failed_receives=int(h.get(H_FAILED, "0")),
            lost_receives=None if lost is None else int(lost),
            queue=h.get(H_QUEUE),
        )


def _float(text: str | None) -> float | None:
    return None if text is None else float(text)


def _header_safe(value: str) -> str:
    """Header values cannot hold CR or LF (a failure's traceback does): JSON-quote those."""
    if "\n" in value or "\r" in value or value.startswith('"'):
        return json.dumps(value)
    return value


def _header_unsafe(value: str) -> str:
    return json.loads(value) if value.startswith('"') else value


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
    invalid = ReceiptHandleIsInvalid(f"receipt handle {handle!r} is not one fanstack issued")
    if not isinstance(handle, str):
        return invalid
    reply, _, visible = handle.rpartition("~")
    parsed = parse_reply(f"$JS.ACK.{reply}")
    if parsed is None:
        return invalid
    stream, consumer, delivered, sequence = parsed
    prefix = f"{names.namespace}_P"
    if not stream.startswith(prefix) or not stream[len(prefix) :].isdigit():
        return invalid
    try:
        visible_at = float(visible)
    except ValueError:
        return invalid
    partition = int(stream[len(prefix) :])
    return Receipt(partition, consumer, delivered, sequence, f"$JS.ACK.{reply}", visible_at)
