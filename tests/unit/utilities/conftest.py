"""A real SQLite backend with a clock the test moves, and a table handle on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fanstack.backends.sqlite import SQLiteBackend
from fanstack.table import Table


class Clock:
    """A fixed time the test moves forward."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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
