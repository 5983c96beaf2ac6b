"""API keys are known by their hash; the admin token is compared in constant time."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from fanstack.gateway.auth import ApiKeys, AuthFailure, UsagePlan, bearer_matches, key_id

KEY = "a-key-that-is-long-enough-0001"


class Table:
    """The table operations the quota counter uses, in memory."""

    class Item:
        def __init__(self, value: dict[str, Any], version: int) -> None:
            self.value, self.version = value, version

    def __init__(self) -> None:
        self.items: dict[str, Table.Item] = {}

    def get_item(self, key: str) -> Table.Item | None:
        return self.items.get(key)

    def put(self, key: str, value: dict[str, Any], **conditions: Any) -> None:
        old = self.items.get(key)
        self.items[key] = Table.Item(value, (old.version if old else 0) + 1)


def test_key_id_is_the_sha256_of_the_key() -> None:
    assert key_id(KEY) == hashlib.sha256(KEY.encode()).hexdigest()


def test_keys_are_held_and_counted_by_hash_only() -> None:
    keys = ApiKeys()
    keys.add_plan(UsagePlan(name="p", rate=10, burst=10, quota_per_day=2))
    keys.add_key(KEY, "p")
    assert KEY not in keys.keys and keys.keys == {key_id(KEY): "p"}
    table = Table()
    assert keys.admit(KEY, table, now=0.0) == "p"
    assert keys.admit(KEY, table, now=0.1) == "p"
    with pytest.raises(AuthFailure) as over:
        keys.admit(KEY, table, now=0.2)
    assert over.value.status == 429
    (stored,) = table.items
    assert stored.startswith(key_id(KEY) + "#") and KEY not in stored
    with pytest.raises(AuthFailure) as wrong:
        keys.admit(KEY + "x", table)
    assert wrong.value.status == 403


def test_bearer_matches_only_the_exact_token() -> None:
    assert bearer_matches("Bearer s3cret", "s3cret")
    for given in ("Bearer s3cre", "Bearer s3cret ", "bearer s3cret", "s3cret", "", None):
        assert not bearer_matches(given, "s3cret")
    assert not bearer_matches("Bearer None", None)
    assert not bearer_matches("Bearer zoë", "zoe")
