"""The stores a test runs against, one kind per backend: an SQLite data dir, or a NATS stream.

Each NATS store is its own stream (journal, tables bucket and snapshot store) on the session's
nats-server, so tests share one server and never see each other's state.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fanstack import App
from fanstack.backends.base import Backend
from fanstack.backends.nats import NatsBackend
from fanstack.backends.sqlite import SQLiteBackend

from .nats_server import NatsServer

BACKENDS = ("sqlite", "nats")


@dataclass(frozen=True)
class Store:
    """Where a test keeps its state; every method opens another handle on the same store."""

    kind: str
    location: str  # the SQLite data dir, or the NATS URL naming the store's stream

    @property
    def url(self) -> str:
        """The backend URL of this store, as another process opens it (`open_backend`)."""
        return f"sqlite://{self.location}" if self.kind == "sqlite" else self.location

    def open(self, clock: Callable[[], float] = time.time) -> Backend:
        """A backend on this store."""
        if self.kind == "sqlite":
            return SQLiteBackend(self.location, clock=clock)
        return NatsBackend(self.location, clock=clock)

    def app(self, name: str) -> App:
        """An `App` bound to this store: SQLite through its data dir, NATS through its URL."""
        if self.kind == "sqlite":
            return App(name, data_dir=self.location)
        return App(name, backend=self.location)

    def cli_options(self) -> list[str]:
        """The `fanstack` options that point a command at this store."""
        if self.kind == "sqlite":
            return ["--data-dir", self.location]
        return ["--backend", self.location]


def sqlite_store(directory: Path) -> Store:
    """A store in an SQLite data dir (created on first use)."""
    return Store("sqlite", str(directory))


def nats_store(server: NatsServer) -> Store:
    """A fresh store on `server`: a stream no other test uses."""
    return Store("nats", f"nats://{server.url}?stream=T{uuid.uuid4().hex}")
