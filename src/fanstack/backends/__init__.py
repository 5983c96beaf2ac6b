"""Storage backends behind the one `Backend` interface; `open_backend` picks one by URL."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fanstack.backends.base import Backend
from fanstack.core.errors import InvalidParameterValue

__all__ = ["Backend", "open_backend"]


def open_backend(
    url: str | None, *, data_dir: str | os.PathLike[str], durability: str = "normal"
) -> Backend:
    """Open the backend a URL names: none or `sqlite://[PATH]` is the embedded default."""
    if url is None or url in ("sqlite", "sqlite://"):
        from fanstack.backends.sqlite import SQLiteBackend

        return SQLiteBackend(data_dir, durability=durability)
    if url.startswith("sqlite://"):
        from fanstack.backends.sqlite import BUSY_TIMEOUT_MS, SQLiteBackend

        location = urlsplit(url)
        options = parse_qs(location.query)
        path = url[len("sqlite://") :].split("?", 1)[0] or str(data_dir)
        try:
            busy_timeout_ms = int(options.get("busy_timeout_ms", [BUSY_TIMEOUT_MS])[0])
        except ValueError as exc:
            raise InvalidParameterValue(
                f"backend {url!r}: busy_timeout_ms must be an integer"
            ) from exc
        return SQLiteBackend(Path(path), durability=durability, busy_timeout_ms=busy_timeout_ms)
    if url.startswith("nats://"):
        from fanstack.backends.nats import NatsBackend

        return NatsBackend(url)
    raise InvalidParameterValue(
        f"unknown backend {url!r}: use sqlite:// (embedded, the default) or nats://host:4222"
    )
