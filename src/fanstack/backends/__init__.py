"""Storage backends behind the one `Backend` interface; `open_backend` picks one by URL."""

from __future__ import annotations

import os
from pathlib import Path

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
        from fanstack.backends.sqlite import SQLiteBackend

        return SQLiteBackend(Path(url[len("sqlite://") :]), durability=durability)
    raise InvalidParameterValue(f"unknown backend {url!r}: use sqlite:// (embedded, the default)")
