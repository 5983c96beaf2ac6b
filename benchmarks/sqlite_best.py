"""What the plain-sqlite3 ceilings do with the WAL, as fanstack's embedded store does with it.

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
from pathlib import Path

CHECKPOINT_PAGES = 10_000
CHECKPOINT_INTERVAL = 0.05  # seconds


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
