"""What the plain-sqlite3 ceilings share: how a publish is stored, and the WAL kept as fanstack's
embedded store keeps it.

A publish is its body stored once (a payload row counting its deliveries) and a row per
delivery (`PUBLICATIONS_SCHEMA`, `store_publications`).

SQLite's default checkpoints the WAL into the database file from a committing writer every 1,000
pages, which makes one commit in every few dozen copy 4 MB while every other writer waits.
fanstack checkpoints from a thread of each writing process every 50 ms (passively: never
waiting for readers or writers) and lets a writer do it only past 10,000 pages
(`fanstack.backends.sqlite.database`); a ceiling that did less would be slower than plain
sqlite3 at its best, and flatter fanstack.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

# fanstack's own settings, so that the ceilings follow them.
from fanstack.backends.sqlite.database import CHECKPOINT_INTERVAL
from fanstack.backends.sqlite.schema import CHECKPOINT_PAGES

PUBLICATIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS payloads (id INTEGER PRIMARY KEY, message_id TEXT NOT NULL,
    body TEXT NOT NULL, attributes TEXT, refs INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, queue TEXT NOT NULL,
    payload INTEGER NOT NULL, sent_at REAL NOT NULL, visible_at REAL NOT NULL,
    expires_at REAL NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (queue, visible_at);
"""
RETENTION = 345_600.0  # SQS's default: 4 days


def checkpoint_like_fanstack(db: sqlite3.Connection, path: str | Path) -> threading.Event:
    """Set `db`'s own checkpoints to fanstack's threshold and start a thread that checkpoints
    the file every CHECKPOINT_INTERVAL; setting the returned event stops it."""
    db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
    stop = threading.Event()

    def checkpoints() -> None:
        own = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
        try:
            while not stop.wait(CHECKPOINT_INTERVAL):
                own.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            own.close()

    threading.Thread(target=checkpoints, name="checkpoints", daemon=True).start()
    return stop


def store_publications(
    db: sqlite3.Connection, payloads: list[tuple[Any, ...]], deliveries: list[tuple[str, int]]
) -> None:
    """Insert `payloads` (id, message id, body, attributes, deliveries) and a row per
    (queue, payload id) in `deliveries`, visible now, in the open transaction."""
    now = time.time()
    db.executemany("INSERT INTO payloads VALUES (?, ?, ?, ?, ?)", payloads)
    db.executemany(
        "INSERT INTO messages (queue, payload, sent_at, visible_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [(queue, payload, now, now, now + RETENTION) for queue, payload in deliveries],
    )
