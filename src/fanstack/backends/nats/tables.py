"""Tables on JetStream key-value: one bucket per namespace, one key per item.

A key is `<table>.<key>`, each part base64url-encoded (KV keys allow few characters). The value
holds the item, its fanstack version (1, 2, ...) and its expiry on the fanstack clock, so TTLs
follow the same clock as queues. Conditional writes read the entry, check the condition, and
write with the KV revision they read (`update(last=...)`): a concurrent writer makes the write
fail, and the check is made again on the fresh entry.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from nats.js.errors import (
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)

from fanstack.backends.nats.notes import open_bucket
from fanstack.core.errors import BackendUnavailable, ConditionalCheckFailed
from fanstack.core.tables import TableItem

ATTEMPTS = 100


def _encode(part: str) -> str:
    return base64.urlsafe_b64encode(part.encode()).decode()


def _decode(part: str) -> str:
    return base64.urlsafe_b64decode(part.encode()).decode()


class KeyValueTables:
    """Table items in one JetStream key-value bucket."""

    def __init__(self, js: Any, bucket: str, replicas: int) -> None:
        self._js = js
        self.bucket = bucket
        self.replicas = replicas
        self._kv: Any = None

    async def open(self) -> None:
        """Bind to the bucket, creating it on first use."""
        self._kv = await open_bucket(self._js, self.bucket, self.replicas)

    async def _read(self, name: str, key: str, now: float) -> tuple[TableItem | None, int | None]:
        """(the live item or None, the KV revision to write after, or None if no entry)."""
        try:
            entry = await self._kv.get(name)
        except (KeyNotFoundError, KeyDeletedError):
            return None, None
        if entry.value is None:
            return None, entry.revision
        stored = json.loads(entry.value)
        expires_at = stored["expires_at"]
        if expires_at is not None and expires_at <= now:
            return None, entry.revision
        return TableItem(key, stored["value"], stored["version"], expires_at), entry.revision

    async def _names(self, head: str) -> list[str]:
        """The KV keys under `head`, from the stream's subject counts.

        The server answers this from its subject index, consistently; listing keys through a
        KV watcher can end before it has seen every key when the bucket is being written.
        """
        root = f"$KV.{self.bucket}."
        info = await self._js.stream_info(f"KV_{self.bucket}", subjects_filter=f"{root}{head}>")
        return [subject[len(root) :] for subject in (info.state.subjects or {})]

    async def get(self, table: str, key: str, now: float) -> TableItem | None:
        """The live item, or None."""
        item, _ = await self._read(f"{_encode(table)}.{_encode(key)}", key, now)
        return item

    async def put(
        self,
        table: str,
        key: str,
        value: dict[str, Any],
        expires_at: float | None,
        now: float,
        *,
        if_absent: bool,
        if_version: int | None,
    ) -> TableItem:
        """Check the condition and write, retrying when another writer got in between."""
        name = f"{_encode(table)}.{_encode(key)}"
        for _ in range(ATTEMPTS):
            live, revision = await self._read(name, key, now)
            if if_absent and live is not None:
                raise ConditionalCheckFailed(
                    f"table {table!r} key {key!r}: an item exists (condition: if_absent)"
                )
            if if_version is not None and (live is None or live.version != if_version):
                found = live.version if live else "none"
                raise ConditionalCheckFailed(
                    f"table {table!r} key {key!r}: version is {found}, not {if_version} "
                    "(condition: if_version)"
                )
            version = live.version + 1 if live else 1
            data = json.dumps(
                {"value": value, "version": version, "expires_at": expires_at}
            ).encode()
            try:
                if revision is None:
                    await self._kv.create(name, data)
                else:
                    await self._kv.update(name, data, last=revision)
            except KeyWrongLastSequenceError:
                continue  # another writer changed the item: check again on what it wrote
            return TableItem(key, value, version, expires_at)
        raise BackendUnavailable(f"table {table!r} key {key!r}: too much write contention")

    async def delete(self, table: str, key: str, now: float, *, if_version: int | None) -> bool:
        """Delete the item (if at `if_version`); True if a live one was deleted."""
        name = f"{_encode(table)}.{_encode(key)}"
        for _ in range(ATTEMPTS):
            live, revision = await self._read(name, key, now)
            if if_version is not None and (live is None or live.version != if_version):
                raise ConditionalCheckFailed(
                    f"table {table!r} key {key!r}: version is not {if_version} "
                    "(condition: if_version)"
                )
            if revision is None:
                return False
            try:
                await self._kv.delete(name, last=revision)
            except KeyWrongLastSequenceError:
                continue
            return live is not None
        raise BackendUnavailable(f"table {table!r} key {key!r}: too much write contention")

    async def scan(
        self, table: str, prefix: str, limit: int, now: float, start_after: str = ""
    ) -> list[TableItem]:
        """Live items of a table in key order, under a key prefix, after `start_after`."""
        head = _encode(table) + "."
        keys = sorted(
            key
            for key in (_decode(name[len(head) :]) for name in await self._names(head))
            if key.startswith(prefix) and key > start_after
        )
        found: list[TableItem] = []
        for key in keys:
            item = await self.get(table, key, now)
            if item is not None:
                found.append(item)
                if len(found) >= limit:
                    break
        return found
