"""A real SQLite backend with a clock the test moves, and a table handle on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fanstack.backends.sqlite import SQLiteBackend
from fanstack.table import Table

from ...support.clocks import FixedClock

Clock = FixedClock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend(tmp_path: Path, clock: Clock) -> Iterator[SQLiteBackend]:
    instance = SQLiteBackend(tmp_path / "data", clock=clock)
    yield instance
    instance.close()


@pytest.fixture
def table(backend: SQLiteBackend) -> Table:
    return Table(lambda: backend, "state")
