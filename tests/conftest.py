"""Fixtures shared by every test folder: the session's nats-server, and stores on each backend.

A test that asks for `store` (or `new_store`) runs once per backend, ids `[sqlite]` and `[nats]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support.nats_server import NatsServer, single
from .support.stores import BACKENDS, Store, nats_store, sqlite_store


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server (JetStream, loopback, free port) for the whole test session."""
    server = single(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    """The backend under test; parametrize it directly to run a test on one backend only."""
    kind: str = request.param
    return kind


@pytest.fixture
def new_store(
    backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[str], Store]:
    """Makes fresh stores on the backend under test: each a data dir, or a stream, of its own."""
    if backend_kind == "sqlite":
        return lambda name: sqlite_store(tmp_path / name)
    server: NatsServer = request.getfixturevalue("nats_server")
    return lambda name: nats_store(server)


@pytest.fixture
def store(new_store: Callable[[str], Store]) -> Store:
    """The test's store on the backend under test."""
    return new_store("data")
