"""Tables: key-value items in the `items` table, one row per (table, key), versioned.

An item lives until `expires_at` on the backend's clock; an expired row is absent to every read
and condition, and is replaced by the next write to its key.
"""

from __future__ import annotations

import json
import sqlite3

from fanstack.backends.sqlite.database import Database
from fanstack.core.errors import ConditionalCheckFailed
from fanstack.core.tables import TableItem


class Tables:
    """Table items with conditional writes, each checked and written in one transaction."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def get_item(self, table: str, key: str, now: float) -> TableItem | None:
        """The live item, read without a write lock."""
        with self._database.reading() as db:
            row = db.execute(
                "SELECT value, version, expires_at FROM items WHERE table_name = ? AND key = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (table, key, now),
            ).fetchone()
        return None if row is None else TableItem(key, json.loads(row[0]), row[1], row[2])

    def put_item(
        self,
        table: str,
        key: str,
        value: str,
        expires_at: float | None,
        now: float,
        *,
        if_absent: bool,
        if_version: int | None,
    ) -> TableItem:
        """Check and write atomically: one statement that holds its condition, or (both
        conditions at once) one IMMEDIATE transaction."""
        if not (if_absent and if_version is not None):
            return self._put_in_one_statement(
                table, key, value, expires_at, now, if_absent=if_absent, if_version=if_version
            )
        with self._database.write() as db:
            current, _ = _live_version(db, table, key, now)
            if if_absent and current is not None:
                raise ConditionalCheckFailed(
                    f"table {table!r} key {key!r}: an item exists (condition: if_absent)"
                )
            if if_version is not None and current != if_version:
                found = "none" if current is None else current
                raise ConditionalCheckFailed(
                    f"table {table!r} key {key!r}: version is {found}, not {if_version} "
                    "(condition: if_version)"
                )
            version = 1 if current is None else current + 1
            db.execute(
                "INSERT OR REPLACE INTO items (table_name, key, value, version, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (table, key, value, version, expires_at),
            )
        return TableItem(key, json.loads(value), version, expires_at)

    def _put_in_one_statement(
        self,
        table: str,
        key: str,
        value: str,
        expires_at: float | None,
        now: float,
        *,
        if_absent: bool,
        if_version: int | None,
    ) -> TableItem:
        """The common writes, each a single statement: an expired row counts as absent."""
        if if_version is not None:
            rows = self._database.write_statement(
                "UPDATE items SET value = ?, version = version + 1, expires_at = ? "
                "WHERE table_name = ? AND key = ? AND version = ? "
                "AND (expires_at IS NULL OR expires_at > ?) RETURNING version",
                (value, expires_at, table, key, if_version, now),
            )
        elif if_absent:
            rows = self._database.write_statement(
                "INSERT INTO items (table_name, key, value, version, expires_at) "
                "VALUES (?, ?, ?, 1, ?) ON CONFLICT (table_name, key) DO UPDATE SET "
                "value = excluded.value, version = 1, expires_at = excluded.expires_at "
                "WHERE items.expires_at IS NOT NULL AND items.expires_at <= ? RETURNING version",
                (table, key, value, expires_at, now),
            )
        else:
            rows = self._database.write_statement(
                "INSERT INTO items (table_name, key, value, version, expires_at) "
                "VALUES (?, ?, ?, 1, ?) ON CONFLICT (table_name, key) DO UPDATE SET "
                "value = excluded.value, expires_at = excluded.expires_at, version = CASE "
                "WHEN items.expires_at IS NOT NULL AND items.expires_at <= ? THEN 1 "
                "ELSE items.version + 1 END RETURNING version",
                (table, key, value, expires_at, now),
            )
        if not rows:
            found = self.get_item(table, key, now)
            if if_absent:
                raise ConditionalCheckFailed(
                    f"table {table!r} key {key!r}: an item exists (condition: if_absent)"
                )
            current = "none" if found is None else found.version
            raise ConditionalCheckFailed(
                f"table {table!r} key {key!r}: version is {current}, not {if_version} "
                "(condition: if_version)"
            )
        version = rows[0][0]
        assert isinstance(version, int)
        return TableItem(key, json.loads(value), version, expires_at)

    def delete_item(self, table: str, key: str, now: float, *, if_version: int | None) -> bool:
        """Delete the live item, conditionally, in one transaction."""
        with self._database.write() as db:
            current, stored = _live_version(db, table, key, now)
            if if_version is not None and current != if_version:
                raise ConditionalCheckFailed(
                    f"table {table!r} key {key!r}: version is not {if_version} "
                    "(condition: if_version)"
                )
            if not stored:
                return False
            db.execute("DELETE FROM items WHERE table_name = ? AND key = ?", (table, key))
            return current is not None

    def scan_items(
        self, table: str, prefix: str, limit: int, now: float, start_after: str = ""
    ) -> list[TableItem]:
        """Live items in key order under `prefix`, with keys after `start_after`."""
        upper = prefix + "\U0010ffff"
        with self._database.reading() as db:
            rows = db.execute(
                "SELECT key, value, version, expires_at FROM items WHERE table_name = ? "
                "AND key >= ? AND key > ? AND key < ? AND (expires_at IS NULL OR expires_at > ?) "
                "ORDER BY key LIMIT ?",
                (table, prefix, start_after, upper, now, limit),
            ).fetchall()
        return [TableItem(r[0], json.loads(r[1]), r[2], r[3]) for r in rows]


def _live_version(
    db: sqlite3.Connection, table: str, key: str, now: float
) -> tuple[int | None, bool]:
    """The live item's version (None if absent or expired), and whether a row is stored at all."""
    row = db.execute(
        "SELECT version, expires_at FROM items WHERE table_name = ? AND key = ?", (table, key)
    ).fetchone()
    if row is None:
        return None, False
    version, expires_at = row
    return (version if expires_at is None or expires_at > now else None), True
