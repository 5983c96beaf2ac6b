"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support.nats_server import NatsServer, single


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server (JetStream, loopback, free port) for the whole test session."""
    server = single(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()
