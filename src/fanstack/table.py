"""Tables: small key-value stores in the app's backend, for state handlers share.

Idempotency records, circuit breaker state, usage-plan quotas and an application's own rows
(the marketplace's orders and shipments) live here. Values are JSON objects; writes can be
conditional (`if_absent`, `if_version`) and expire (`ttl`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.tables import TableItem


class Table:
    """A handle to one table of the app's backend (DynamoDB-like, on any backend)."""

    def __init__(self, backend_provider: Callable[[], Backend], name: str) -> None:
        # A provider, not a backend: the app opens its backend lazily, once per process.
        self._backend = backend_provider
        self.name = name

    def __repr__(self) -> str:
        return f"Table({self.name!r})"

    @property
    def store_url(self) -> str:
        """The URL of the backend this table lives in."""
        return self._backend().url

    def get(self, key: str) -> dict[str, Any] | None:
        """The value stored at `key`, or None."""
        item = self._backend().table_get(self.name, key)
        return None if item is None else dict(item.value)

    def get_item(self, key: str) -> TableItem | None:
        """The item at `key` with its version and expiry, or None."""
        return self._backend().table_get(self.name, key)

    def put(
        self,
        key: str,
        value: Mapping[str, Any],
        *,
        ttl: float | None = None,
        if_absent: bool = False,
        if_version: int | None = None,
    ) -> TableItem:
        """Store `value`; ConditionalCheckFailed if a condition does not hold."""
        return self._backend().table_put(
            self.name, key, value, ttl=ttl, if_absent=if_absent, if_version=if_version
        )

    def delete(self, key: str, *, if_version: int | None = None) -> bool:
        """Delete the item at `key`; True if there was one."""
        return self._backend().table_delete(self.name, key, if_version=if_version)

    def scan(self, prefix: str = "", limit: int = 1000, start_after: str = "") -> list[TableItem]:
        """Items in key order, optionally under a key prefix and after a key (to page)."""
        return self._backend().table_scan(
            self.name, prefix=prefix, limit=limit, start_after=start_after
        )
