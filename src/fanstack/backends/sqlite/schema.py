"""The SQLite schema: tables as DDL, the upgrade of an older data dir, and connection settings."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from fanstack.core.errors import BackendUnavailable

CHECKPOINT_PAGES = 10_000  # a writer checkpoints the WAL itself past this many pages

SCHEMA = """
CREATE TABLE IF NOT EXISTS catalog (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO catalog (id, version) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    last_purge REAL,
    expired INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0,
    depth INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    topic TEXT NOT NULL,
    queue TEXT NOT NULL,
    spec TEXT NOT NULL,
    PRIMARY KEY (topic, queue)
);
CREATE TABLE IF NOT EXISTS payloads (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT,
    envelope TEXT,
    refs INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    payload INTEGER NOT NULL,
    unsubscribe_url TEXT,
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_received_at REAL,
    receipt TEXT,
    group_id TEXT,
    dedup_id TEXT,
    failure TEXT,
    source_queue TEXT,
    failed_receives INTEGER NOT NULL DEFAULT 0,
    lost_receives INTEGER
);
CREATE INDEX IF NOT EXISTS messages_by_state ON messages (queue, visible_at, receive_count);
-- One expiry index for every queue: new rows land at its end (retentions are few), where a
-- (queue, expires_at) index would take each queue's rows in its middle, at twice the cost.
CREATE INDEX IF NOT EXISTS messages_by_deadline ON messages (expires_at);
CREATE INDEX IF NOT EXISTS messages_by_group ON messages (queue) WHERE group_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_by_source ON messages (queue, source_queue)
    WHERE source_queue IS NOT NULL;
CREATE TABLE IF NOT EXISTS items (
    table_name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    version INTEGER NOT NULL,
    expires_at REAL,
    PRIMARY KEY (table_name, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup (
    scope TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (scope, dedup_id)
) WITHOUT ROWID;
"""

# What SQLite itself keeps on every delete of a message row, whatever deletes it (a delete by
# receipt handle, a purge, an expiry, a deleted queue): its payload loses a reference and goes
# with the last one, and its queue's count of stored messages drops. A delete is then one
# statement with no rows to read back. (Every process on a data dir must run a version that
# knows this: an older one also releases by hand.)
TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS messages_deleted AFTER DELETE ON messages BEGIN
    UPDATE payloads SET refs = refs - 1 WHERE id = OLD.payload;
    DELETE FROM payloads WHERE id = OLD.payload AND refs <= 0;
    UPDATE queues SET depth = depth - 1 WHERE name = OLD.queue;
END
"""

# Columns added after a data dir may have been created: (table, column, definition).
ADDED_COLUMNS = (
    ("messages", "failed_receives", "INTEGER NOT NULL DEFAULT 0"),
    ("messages", "lost_receives", "INTEGER"),
    ("queues", "depth", "INTEGER NOT NULL DEFAULT 0"),
)
# Indexes an earlier version made that a later one replaced.
DROPPED_INDEXES = ("messages_by_visibility", "messages_by_expiry")


def connect(path: Path, *, synchronous: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open a connection in autocommit mode, in WAL, with the durability and busy timeout."""
    try:
        db = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_timeout_ms / 1000,
        )
        _enter_wal(db, busy_timeout_ms / 1000)
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        # Checkpoints are a thread's work (`Database`); a writer's only past this many pages.
        db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
    except sqlite3.Error as exc:
        raise BackendUnavailable(f"cannot open {path}: {exc}") from exc
    return db


def _enter_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Switch to WAL, retrying while another process holds the lock the switch needs: SQLite
    answers a journal-mode change it cannot make at once with "database is locked" without
    waiting (its busy handler is not called there), as processes opening a new file at the
    same moment find."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def create(db: sqlite3.Connection) -> None:
    """Create the tables and indexes that do not exist yet, in one transaction."""
    db.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")


def upgrade(db: sqlite3.Connection) -> None:
    """Bring a data dir made by an earlier version up to the current schema (in a write)."""
    for table, column, definition in ADDED_COLUMNS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            if (table, column) == ("queues", "depth"):  # kept from here on by every write
                db.execute(
                    "UPDATE queues SET depth = "
                    "(SELECT COUNT(*) FROM messages WHERE messages.queue = queues.name)"
                )
    for index in DROPPED_INDEXES:
        db.execute(f"DROP INDEX IF EXISTS {index}")
    db.execute(TRIGGERS)  # after the columns it uses
