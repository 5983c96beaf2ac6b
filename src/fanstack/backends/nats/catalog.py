"""The catalog on JetStream key-value: queues, topics, subscriptions and their slots.

One bucket, `<namespace>_CATALOG`, one key per resource:

- `meta`: the layout version and the number of partitions, written once;
- `q.<queue>`: a queue's spec; `t.<topic>`: a topic's spec;
- `s.<topic>.<queue>`: a subscription's spec;
- `slots.<topic>`: `{queue: slot}`, the subject token each queue that ever subscribed to the
  topic reads (kept after an unsubscribe, so what the queue already holds stays readable);
- `purge.<queue>`: the time of the queue's last purge.

Every process keeps a copy of the catalog (it is small: specs, not messages), filled by a watch
on the bucket, and reads its own writes at once. Reads that must see other processes' writes
(listings) first wait until the copy has caught up with the bucket's last revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from fanstack.backends.nats.layout import LAYOUT, token, untoken
from fanstack.backends.nats.notes import open_bucket
from fanstack.core.errors import BackendUnavailable, QueueDoesNotExist, QueueNameExists
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec

log = logging.getLogger("fanstack.nats")

CAS_ATTEMPTS = 100
STALLED = 1.0  # seconds a catalog wait goes without news before the watch is started again


@dataclass
class CatalogView:
    """What one process knows of the catalog."""

    queues: dict[str, QueueSpec] = field(default_factory=dict)
    topics: dict[str, TopicSpec] = field(default_factory=dict)
    subscriptions: dict[tuple[str, str], SubscriptionSpec] = field(default_factory=dict)
    slots: dict[str, dict[str, int]] = field(default_factory=dict)  # topic -> queue -> slot
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = 0  # bumped by every change seen

    def apply(self, key: str, value: bytes | None) -> None:
        kind, _, rest = key.partition(".")
        self.version += 1
        if kind == "meta":
            self.meta = json.loads(value) if value else {}
        elif kind == "q":
            name = untoken(rest)
            if value:
                self.queues[name] = QueueSpec.from_json(value.decode())
            else:
                self.queues.pop(name, None)
        elif kind == "t":
            name = untoken(rest)
            if value:
                self.topics[name] = TopicSpec.from_json(value.decode())
            else:
                self.topics.pop(name, None)
        elif kind == "s":
            topic, _, queue = rest.partition(".")
            pair = (untoken(topic), untoken(queue))
            if value:
                self.subscriptions[pair] = SubscriptionSpec.from_json(value.decode())
            else:
                self.subscriptions.pop(pair, None)
        elif kind == "slots":
            self.slots[untoken(rest)] = {
                untoken(q): slot for q, slot in (json.loads(value) if value else {}).items()
            }

    def queue_filters(self, queue: str) -> list[tuple[str, int]]:
        """(topic, slot) of every topic the queue ever subscribed to."""
        return sorted(
            (topic, slots[queue]) for topic, slots in self.slots.items() if queue in slots
        )


class Catalog:
    """The catalog bucket and this process's copy of it."""

    def __init__(self, js: Any, bucket: str, replicas: int) -> None:
        self._js = js
        self.bucket = bucket
        self.replicas = replicas
        self.view = CatalogView()
        self._seen = 0  # the last bucket revision applied to the view
        self._changed = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._watcher: Any = None
        self._kv: Any = None
        self._rewatching: asyncio.Lock | None = None

    async def open(self) -> None:
        """Bind (or create) the bucket and fill the view from it."""
        self._kv = await open_bucket(self._js, self.bucket, self.replicas)
        self._rewatching = asyncio.Lock()
        watcher = await self._kv.watchall()
        async for entry in watcher:
            if entry is None:
                break  # the initial values are in
            self._see(entry)
        self._start_following(watcher)

    def _start_following(self, watcher: Any) -> None:
        self._watcher = watcher
        self._watch = asyncio.get_running_loop().create_task(self._follow(watcher))

    async def close(self) -> None:
        await self._stop_following()

    async def _stop_following(self) -> None:
        watch, watcher = self._watch, self._watcher
        self._watch = self._watcher = None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watch
        if watcher is not None:
            with contextlib.suppress(Exception):
                await watcher.stop()

    async def rewatch(self) -> None:
        """Watch the bucket anew, from the latest value of every key (each newer than what the
        view holds is applied): after a reconnect, when the server may have lost the old watch
        (a restarted server does; the client notices only after missed heartbeats), and when a
        wait for the view to catch up makes no progress."""
        assert self._rewatching is not None
        async with self._rewatching:
            watcher = await self._kv.watchall()
            await self._stop_following()
            self._start_following(watcher)

    async def _follow(self, watcher: Any) -> None:
        async for entry in watcher:
            if entry is not None:
                self._see(entry)

    def _see(self, entry: Any) -> None:
        if entry.revision is not None and entry.revision <= self._seen:
            return
        deleted = entry.operation in ("DEL", "PURGE")
        self.view.apply(entry.key, None if deleted else entry.value)
        if entry.revision is not None:
            self._seen = entry.revision
        self._changed.set()
        self._changed = asyncio.Event()

    async def sync(self) -> None:
        """Wait until the view holds every write made so far, by any process."""
        info = await self._js.stream_info(f"KV_{self.bucket}")
        target = info.state.last_seq
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        progress = loop.time()
        while self._seen < target:
            now = loop.time()
            if now >= deadline:
                raise BackendUnavailable(f"NATS: the catalog copy did not reach revision {target}")
            if now - progress >= STALLED:
                await self.rewatch()  # the watch fell silent: start it again
                progress = loop.time()
            seen = self._seen
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(deadline - now, STALLED))
            if self._seen != seen:
                progress = loop.time()

    async def _put(self, key: str, value: bytes) -> None:
        await self._kv.put(key, value)
        self.view.apply(key, value)  # read our own write now; the watch brings it again later

    async def get(self, key: str) -> tuple[bytes | None, int | None]:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None, None
        return entry.value, entry.revision

    # -- meta ---------------------------------------------------------------------------

    async def layout(self, partitions: int) -> int:
        """The namespace's partition count: the one stored, or `partitions` on first use."""
        value, _ = await self.get("meta")
        if value is None:
            meta = {"layout": LAYOUT, "partitions": partitions}
            try:
                await self._kv.create("meta", json.dumps(meta).encode())
            except KeyWrongLastSequenceError:
                value, _ = await self.get("meta")
            else:
                self.view.meta = meta
                return partitions
        assert value is not None
        meta = json.loads(value)
        self.view.meta = meta
        stored: int = meta["partitions"]
        return stored

    # -- queues ---------------------------------------------------------------------------

    async def create_queue(self, spec: QueueSpec) -> bool:
        """Store a new queue; False if it exists with this spec, QueueNameExists otherwise."""
        key = f"q.{token(spec.name)}"
        value = spec.to_json().encode()
        try:
            await self._kv.create(key, value)
        except KeyWrongLastSequenceError:
            existing, _ = await self.get(key)
            if existing is not None and QueueSpec.from_json(existing.decode()) != spec:
                raise QueueNameExists(
                    f"queue {spec.name!r} exists with different attributes"
                ) from None
            if existing is not None:
                self.view.apply(key, existing)
                return False
            return await self.create_queue(spec)  # deleted in between
        self.view.apply(key, value)
        return True

    async def set_queue(self, spec: QueueSpec) -> None:
        """Replace an existing queue's spec."""
        key = f"q.{token(spec.name)}"
        existing, _ = await self.get(key)
        if existing is None:
            raise QueueDoesNotExist(spec.name)
        await self._put(key, spec.to_json().encode())

    async def queue(self, name: str) -> QueueSpec | None:
        """A queue's spec from the view, or read from the bucket if the view lacks it."""
        spec = self.view.queues.get(name)
        if spec is not None:
            return spec
        key = f"q.{token(name)}"
        value, _ = await self.get(key)
        if value is None:
            return None
        self.view.apply(key, value)
        return self.view.queues.get(name)

    async def unsubscribe_queue(self, name: str) -> None:
        """Delete every subscription of the queue (`QueueDoesNotExist` if it is not there)."""
        value, _ = await self.get(f"q.{token(name)}")
        if value is None:
            raise QueueDoesNotExist(name)
        await self.sync()
        for topic, queue in list(self.view.subscriptions):
            if queue == name:
                await self.delete_subscription(topic, queue)

    async def delete_queue(self, name: str) -> None:
        """Delete the queue's key: the last step of a deletion, after `unsubscribe_queue`."""
        key = f"q.{token(name)}"
        await self._kv.delete(key)
        self.view.apply(key, None)

    # -- topics and subscriptions -------------------------------------------------------------

    async def put_topic(self, spec: TopicSpec) -> None:
        await self._put(f"t.{token(spec.name)}", spec.to_json().encode())

    async def topic(self, name: str) -> TopicSpec | None:
        spec = self.view.topics.get(name)
        if spec is not None:
            return spec
        key = f"t.{token(name)}"
        value, _ = await self.get(key)
        if value is None:
            return None
        self.view.apply(key, value)
        return self.view.topics.get(name)

    async def delete_topic(self, name: str) -> None:
        await self.sync()
        for topic, queue in list(self.view.subscriptions):
            if topic == name:
                await self.delete_subscription(topic, queue)
        key = f"t.{token(name)}"
        await self._kv.delete(key)
        self.view.apply(key, None)

    async def put_subscription(self, spec: SubscriptionSpec) -> int:
        """Store a subscription; returns its slot in the topic's subjects."""
        slot = await self._slot(spec.topic, spec.queue)
        await self._put(f"s.{token(spec.topic)}.{token(spec.queue)}", spec.to_json().encode())
        return slot

    async def _slot(self, topic: str, queue: str) -> int:
        key = f"slots.{token(topic)}"
        for _ in range(CAS_ATTEMPTS):
            value, revision = await self.get(key)
            slots: dict[str, int] = json.loads(value) if value else {}
            if token(queue) in slots:
                self.view.apply(key, value)
                return slots[token(queue)]
            slots[token(queue)] = len(slots)
            encoded = json.dumps(slots).encode()
            try:
                if revision is None:
                    await self._kv.create(key, encoded)
                else:
                    await self._kv.update(key, encoded, last=revision)
            except KeyWrongLastSequenceError:
                continue
            self.view.apply(key, encoded)
            return slots[token(queue)]
        raise BackendUnavailable(f"NATS: could not assign a slot on topic {topic!r}")

    async def delete_subscription(self, topic: str, queue: str) -> None:
        key = f"s.{token(topic)}.{token(queue)}"
        with contextlib.suppress(KeyNotFoundError):
            await self._kv.delete(key)
        self.view.apply(key, None)

    # -- purges -------------------------------------------------------------------------------

    async def last_purge(self, queue: str) -> tuple[float | None, int | None]:
        value, revision = await self.get(f"purge.{token(queue)}")
        return (None if value is None else float(value)), revision

    async def record_purge(self, queue: str, now: float, revision: int | None) -> bool:
        """Record a purge at `now` if none was recorded since `revision`; False if one was."""
        key = f"purge.{token(queue)}"
        try:
            if revision is None:
                await self._kv.create(key, repr(now).encode())
            else:
                await self._kv.update(key, repr(now).encode(), last=revision)
        except KeyWrongLastSequenceError:
            return False
        return True
