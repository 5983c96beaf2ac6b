"""The table store, on every backend: versions, conditions, expiry, scans, limits."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from fanstack.backends.base import Backend
from fanstack.core.errors import ConditionalCheckFailed, InvalidParameterValue

from .conftest import Clock, Store


def test_put_get_and_versions(backend: Backend) -> None:
    assert backend.table_get("t", "k") is None
    first = backend.table_put("t", "k", {"n": 1})
    second = backend.table_put("t", "k", {"n": 2})
    assert (first.version, second.version) == (1, 2)
    item = backend.table_get("t", "k")
    assert item is not None and item.value == {"n": 2} and item.version == 2
    assert backend.table_get("other", "k") is None  # tables are separate


def test_if_absent_and_if_version_conditions(backend: Backend) -> None:
    backend.table_put("t", "k", {"n": 1}, if_absent=True)
    with pytest.raises(ConditionalCheckFailed, match="if_absent"):
        backend.table_put("t", "k", {"n": 2}, if_absent=True)
    with pytest.raises(ConditionalCheckFailed, match="if_version"):
        backend.table_put("t", "k", {"n": 2}, if_version=7)
    assert backend.table_put("t", "k", {"n": 2}, if_version=1).version == 2
    with pytest.raises(ConditionalCheckFailed):
        backend.table_put("t", "missing", {"n": 1}, if_version=1)
    item = backend.table_get("t", "k")
    assert item is not None and item.value == {"n": 2}


def test_delete_conditionally(backend: Backend) -> None:
    backend.table_put("t", "k", {"n": 1})
    with pytest.raises(ConditionalCheckFailed):
        backend.table_delete("t", "k", if_version=5)
    assert backend.table_delete("t", "k", if_version=1) is True
    assert backend.table_delete("t", "k") is False
    assert backend.table_get("t", "k") is None


def test_items_expire_after_their_ttl(backend: Backend, clock: Clock) -> None:
    backend.table_put("t", "k", {"n": 1}, ttl=10)
    clock.advance(9)
    assert backend.table_get("t", "k") is not None
    clock.advance(2)
    assert backend.table_get("t", "k") is None
    # an expired item is absent for conditions too, and versions start over
    assert backend.table_put("t", "k", {"n": 2}, if_absent=True).version == 1


def test_scan_in_key_order_under_a_prefix(backend: Backend) -> None:
    for key in ("b/2", "a/1", "b/1", "c/1"):
        backend.table_put("t", key, {"k": key})
    assert [i.key for i in backend.table_scan("t", prefix="b/")] == ["b/1", "b/2"]
    assert [i.key for i in backend.table_scan("t", limit=2)] == ["a/1", "b/1"]


def test_table_items_reads_every_page_in_key_order(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fanstack.backends.base.SCAN_PAGE", 2)
    for key in ("p/3", "p/1", "p/5", "p/2", "p/4", "q/1"):
        backend.table_put("t", key, {"k": key})
    assert [i.key for i in backend.table_items("t", prefix="p/")] == [f"p/{n}" for n in range(1, 6)]
    assert [i.key for i in backend.table_items("t", prefix="p/", start_after="p/3")] == [
        "p/4",
        "p/5",
    ]


def test_scan_pages_after_a_key(backend: Backend) -> None:
    for key in ("p/1", "p/2", "p/3", "p/4", "q/1"):
        backend.table_put("t", key, {"k": key})
    first = backend.table_scan("t", prefix="p/", limit=2)
    assert [i.key for i in first] == ["p/1", "p/2"]
    rest = backend.table_scan("t", prefix="p/", limit=2, start_after=first[-1].key)
    assert [i.key for i in rest] == ["p/3", "p/4"]
    assert backend.table_scan("t", prefix="p/", start_after="p/4") == []


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"x": {1, 2}}, "not JSON-serializable"),
        ({"x": float("nan")}, "not JSON-serializable"),
        ({"x": "y" * (400 * 1024)}, "item size limit is 409600 bytes"),
    ],
)
def test_bad_values_are_rejected(backend: Backend, value: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidParameterValue, match=fragment):
        backend.table_put("t", "k", value)
    assert backend.table_get("t", "k") is None


def test_empty_key_is_rejected(backend: Backend) -> None:
    with pytest.raises(InvalidParameterValue, match="key"):
        backend.table_put("t", "", {"n": 1})


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 81])
def test_table_names_follow_the_queue_name_rules(backend: Backend, name: str) -> None:
    with pytest.raises(InvalidParameterValue, match="table name"):
        backend.table_put(name, "k", {"n": 1})


def test_a_value_must_be_an_object(backend: Backend) -> None:
    with pytest.raises(InvalidParameterValue, match=r"'k'.*object"):
        backend.table_put("t", "k", ["not", "an", "object"])  # type: ignore[arg-type]


def test_conflicting_or_senseless_options_are_rejected(backend: Backend) -> None:
    with pytest.raises(InvalidParameterValue, match="ttl"):
        backend.table_put("t", "k", {"n": 1}, ttl=0)
    with pytest.raises(InvalidParameterValue, match="if_absent and if_version"):
        backend.table_put("t", "k", {"n": 1}, if_absent=True, if_version=1)
    with pytest.raises(InvalidParameterValue, match="limit"):
        backend.table_scan("t", limit=0)


def test_expired_items_are_left_out_of_scans_and_deletes(backend: Backend, clock: Clock) -> None:
    backend.table_put("t", "a", {"n": 1}, ttl=5)
    backend.table_put("t", "b", {"n": 2})
    clock.advance(6)
    assert [i.key for i in backend.table_scan("t")] == ["b"]
    assert backend.table_delete("t", "a") is False
    with pytest.raises(ConditionalCheckFailed, match="if_version"):
        backend.table_put("t", "a", {"n": 3}, if_version=1)


def test_a_put_reports_the_stored_item(backend: Backend, clock: Clock) -> None:
    item = backend.table_put("t", "k", {"nested": {"list": [1, "two", None]}}, ttl=60)
    assert item.key == "k" and item.version == 1
    assert item.value == {"nested": {"list": [1, "two", None]}}
    assert item.expires_at == pytest.approx(clock() + 60, abs=1)
    assert backend.table_get("t", "k") == item


def _claim(store: Store, results: multiprocessing.Queue[str]) -> None:
    backend = store.open()
    try:
        backend.table_put("locks", "job", {"pid": os.getpid()}, if_absent=True)
        results.put("won")
    except ConditionalCheckFailed:
        results.put("lost")
    finally:
        backend.close()


def test_one_of_many_processes_wins_an_if_absent_put(store: Store) -> None:
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[str] = context.Queue()
    processes = [context.Process(target=_claim, args=(store, results)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    outcomes = sorted(results.get(timeout=5) for _ in processes)
    assert outcomes == ["lost", "lost", "lost", "won"]
