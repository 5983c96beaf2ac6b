"""Fixtures for runtime tests: an app on a fresh store of each backend, its runtime stopped
afterwards, and the handlers' own store on the same backend."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fanstack import App

from ..support.stores import Store
from . import handlers

# For tests whose checks fail before any store is opened: one backend is enough.
ONE_BACKEND = pytest.mark.parametrize("backend_kind", ["sqlite"])


@pytest.fixture
def app(store: Store) -> Iterator[App]:
    app = store.app("runtime-test")
    yield app
    if app._runtime is not None:
        app.runtime.stop(grace=5)
    app.close()


@pytest.fixture
def handler_state(
    new_store: Callable[[str], Store], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    """The store handlers keep their own tables in (tests/runtime/handlers.py reads its URL)."""
    state = new_store("handler-state")
    monkeypatch.setenv(handlers.STATE_BACKEND, state.url)
    yield state
    handlers.close_state()


def order(work: Path, order_id: str, **fields: object) -> str:
    """An order message for the handlers that charge orders."""
    return json.dumps({"dir": str(work), "order_id": order_id, **fields})


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll until `predicate()` is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def markers(directory: Path, prefix: str) -> list[Path]:
    """Marker files a handler left in `directory` whose names start with `prefix`."""
    return sorted(p for p in directory.glob(f"{prefix}*") if p.is_file())
