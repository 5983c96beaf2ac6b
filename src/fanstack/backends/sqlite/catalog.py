"""The catalog: queue and topic specs, cached by each process per `catalog.version`.

Every resource change bumps the one `catalog.version` row in the same transaction, so a process
reloads its cached specs and compiled routes only when that number moved.
"""

from __future__ import annotations

import sqlite3
import threading
import time

from fanstack.backends.sqlite.database import Database
from fanstack.core.fanout import Route
from fanstack.core.specs import QueueSpec, TopicSpec

CATALOG_RECHECK = 0.1


class CatalogVersion:
    """Specs and compiled routes as of one catalog version."""

    def __init__(self, version: int, checked: float = float("-inf")) -> None:
        self.version = version
        self.checked = checked
        self.queues: dict[str, QueueSpec] = {}
        self.topics: dict[str, TopicSpec] = {}
        self.routes: dict[str, list[Route]] = {}


class Catalog:
    """This process's view of the specs in one database, reloaded when they change."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._version = CatalogVersion(-1)
        self._lock = threading.Lock()
        # The version this process's last resource change wrote: a cache older than it is
        # never trusted, though another thread loaded it (from before that change committed)
        # within the recheck interval.
        self._written = -1

    def current(self, db: sqlite3.Connection | None = None) -> CatalogVersion:
        """The catalog, re-checked inside every write and at most every 0.1 s outside one.

        Another process's resource changes thus show here within 0.1 s (SNS itself documents
        subscription changes as eventually consistent); this process's own show at once.
        """
        catalog = self._version
        now = time.monotonic()
        fresh_enough = now - catalog.checked < CATALOG_RECHECK and catalog.version >= self._written
        if db is None and fresh_enough:
            return catalog
        if db is None:
            with self._database.reading() as db:
                return self._load(db, catalog, now)
        return self._load(db, catalog, now)

    def _load(self, db: sqlite3.Connection, catalog: CatalogVersion, now: float) -> CatalogVersion:
        """`catalog` if it is still the stored version, else the stored one, read in `db`."""
        (version,) = db.execute("SELECT version FROM catalog").fetchone()
        if catalog.version == version:
            catalog.checked = now
            return catalog
        with self._lock:
            if self._version.version > version:  # another thread loaded a later one meanwhile
                return self._version
            fresh = CatalogVersion(version, now)
            for name, spec in db.execute("SELECT name, spec FROM queues"):
                fresh.queues[name] = QueueSpec.from_json(spec)
            for name, spec in db.execute("SELECT name, spec FROM topics"):
                fresh.topics[name] = TopicSpec.from_json(spec)
            self._version = fresh
            return fresh

    def bump(self, db: sqlite3.Connection) -> None:
        """Record a resource change, within the write transaction that makes it."""
        (version,) = db.execute(
            "UPDATE catalog SET version = version + 1 RETURNING version"
        ).fetchone()
        self._written = max(self._written, version)
        self._version = CatalogVersion(-1)  # reload on next use, even within the recheck interval
