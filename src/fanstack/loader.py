"""Find the `App` a user's module declares, from a file path (`app.py`) or `module[:attr]`."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from fanstack.app import App
from fanstack.core.errors import InvalidParameterValue


def load_app(reference: str) -> App:
    """Import `path/to/app.py[:attr]` or `package.module[:attr]` and return its App."""
    location, _, attribute = reference.partition(":")
    if location.endswith(".py") or Path(location).is_file():
        path = Path(location).resolve()
        if not path.is_file():
            raise InvalidParameterValue(f"no such app file: {location}")
        # Imported by name from its folder, so worker processes import the very same module.
        sys.path.insert(0, str(path.parent))
        module_name = path.stem
    else:
        module_name = location
        if "" not in sys.path:
            sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidParameterValue(f"cannot import app {reference!r}: {exc}") from exc
    if attribute:
        app = getattr(module, attribute, None)
        if not isinstance(app, App):
            raise InvalidParameterValue(f"{reference!r} is not a fanstack App")
        return app
    apps = [value for value in vars(module).values() if isinstance(value, App)]
    if len(apps) != 1:
        raise InvalidParameterValue(
            f"{location} declares {len(apps)} fanstack Apps; name one as {location}:ATTRIBUTE"
        )
    return apps[0]
