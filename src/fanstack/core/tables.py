"""Table items and their rules: key length, item size, JSON object values (DynamoDB's limits)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fanstack.core.errors import InvalidParameterValue
from fanstack.core.specs import check_name

MAX_ITEM_BYTES = 400 * 1024  # DynamoDB's item size limit
MAX_KEY_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class TableItem:
    """One item of a table: its key, JSON object value, version (from 1) and expiry."""

    key: str
    value: Mapping[str, Any]
    version: int
    expires_at: float | None = None


def check_table_key(table: str, key: str) -> None:
    """Raise InvalidParameterValue unless `table` is a valid name and `key` 1-1024 characters."""
    check_name("table", table, fifo=False)  # the rules of queue names: no '.', no '/'
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidParameterValue(
            f"table {table!r}: key {key!r} must be a string of 1-{MAX_KEY_LENGTH} characters"
        )


def encode_item(table: str, key: str, value: Mapping[str, Any]) -> str:
    """The JSON text stored for `value` at `key`, after checking the key and the item size."""
    check_table_key(table, key)
    if not isinstance(value, Mapping):
        raise InvalidParameterValue(f"table {table!r} key {key!r}: value must be an object")
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(
            f"table {table!r} key {key!r}: value is not JSON-serializable ({exc})"
        ) from exc
    size = len(text.encode()) + len(key.encode())
    if size > MAX_ITEM_BYTES:
        raise InvalidParameterValue(
            f"table {table!r} key {key!r}: item is {size} bytes; the item size limit is "
            f"{MAX_ITEM_BYTES} bytes"
        )
    return text
