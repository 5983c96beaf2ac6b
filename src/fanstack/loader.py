"""Find the `App` a user's module declares, from a file path (`app.py`) or `module[:attr]`.

Whatever goes wrong while importing the module (a syntax error, an exception at import, a
missing dependency) becomes one `AppImportFailed` naming the file, the line and the error, with
the original exception chained for `--debug`. A file named like a module Python already finds
(`queue.py`, `json.py`) is refused: worker processes import functions by module name, and that
name would give them the other module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from fanstack.app import App
from fanstack.core.errors import AppImportFailed, InvalidParameterValue


def load_app(reference: str) -> App:
    """Import `path/to/app.py[:attr]` or `package.module[:attr]` and return its App."""
    location, _, attribute = reference.partition(":")
    if location.endswith(".py") or Path(location).is_file():
        path = Path(location).resolve()
        if not path.is_file():
            raise InvalidParameterValue(f"no such app file: {location}")
        _refuse_shadowing(path)
        # Imported by name from its folder, so worker processes import the very same module.
        sys.path.insert(0, str(path.parent))
        module_name, folder = path.stem, path.parent
    else:
        module_name, folder = location, Path.cwd()
        if "" not in sys.path:
            sys.path.insert(0, "")
    module = _import(module_name, reference, folder)
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


def _refuse_shadowing(path: Path) -> None:
    """Refuse an app file whose name Python resolves to another module (`queue.py`)."""
    name = path.stem
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return
    if found is None or found.origin is None:  # nothing, or a namespace package: ours wins
        return
    if found.origin not in ("built-in", "frozen") and Path(found.origin).resolve() == path:
        return
    where = "built into Python" if found.origin in ("built-in", "frozen") else found.origin
    raise InvalidParameterValue(
        f"app file {path.name} has the name of the module {name!r} ({where}), which Python "
        f"imports instead of your file; rename it (for example {name}_app.py)"
    )


def _import(module_name: str, reference: str, folder: Path) -> ModuleType:
    """Import the app's module; anything it raises becomes one `AppImportFailed` line."""
    try:
        return importlib.import_module(module_name)
    except SyntaxError as exc:
        where = f"{_shown(exc.filename, folder)}:{exc.lineno}"
        raise AppImportFailed(f"{where}: {type(exc).__name__}: {exc.msg}") from exc
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise InvalidParameterValue(f"cannot import app {reference!r}: {exc}") from exc
        raise AppImportFailed(f"{_location(exc, folder)}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise AppImportFailed(f"{_location(exc, folder)}: {type(exc).__name__}: {exc}") from exc


def _location(exc: BaseException, folder: Path) -> str:
    """`file:line` of the deepest frame in the app's own folder (else the deepest of all)."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if _within(f.filename, folder) and "/site-packages/" not in f.filename]
    frame = (own or frames)[-1] if frames else None
    if frame is None:
        return "<unknown>"
    return f"{_shown(frame.filename, folder)}:{frame.lineno}"


def _within(filename: str, folder: Path) -> bool:
    try:
        Path(filename).resolve().relative_to(folder)
    except ValueError:
        return False
    return True


def _shown(filename: str | None, folder: Path) -> str:
    """A file as the user knows it: relative to the working directory when inside it."""
    if not filename:
        return "<unknown>"
    path = Path(filename).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
