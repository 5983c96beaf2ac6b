"""Structured logs: lines carrying the invocation's context, for fanstack and handlers.

`log_context` binds fields (function, invocation id, message ids, ...) to the current context;
every record logged inside it, by fanstack or by a handler's own `logging` calls, carries them.

`configure_logging` sends every record to stderr as JSON lines or as text (text by default on a
terminal, JSON otherwise), and, given a log file, to that file as JSON lines too, rotated by
size, for `fanstack logs`. The choice travels to worker processes in environment variables
(read here only), so their lines go where the serving process's go. On a terminal, a text line
first erases the live status line (`StatusLine`), which is drawn again after it: the two never
share a line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import math
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import msgspec

_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "fanstack_log_fields", default=None
)
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
ERASE_LINE = "\r\x1b[2K"  # back to the line's start and clear it (the live status line)

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FILE_MAX_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 3  # fanstack.log.1 .. .3 kept beside the current file
FLUSH_INTERVAL = 0.1  # seconds a line below WARNING may be held before it is written
FORK_LOCK_WAIT = 0.5  # seconds a fork waits for a log handler's lock before leaving it be
MAX_PENDING_CHARS = 256 * 1024  # held lines written at once past this much
FORMAT_ENV = "FANSTACK_LOG_FORMAT"
LEVEL_ENV = "FANSTACK_LOG_LEVEL"
FILE_ENV = "FANSTACK_LOG_FILE"

logger = logging.getLogger("fanstack")


class log_context:
    """Add `fields` to every log line emitted inside the block.

    A class rather than a generator: a busy gateway enters one per request."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def __enter__(self) -> None:
        self._token = _fields.set({**(_fields.get() or {}), **self._fields})

    def __exit__(self, *exc_info: object) -> None:
        _fields.reset(self._token)


def current_fields() -> dict[str, Any]:
    """The fields bound by enclosing `log_context` blocks."""
    return dict(_fields.get() or {})


def current_field(name: str) -> Any:
    """One field bound by an enclosing `log_context` block, or None (no copy of the rest)."""
    fields = _fields.get()
    return None if fields is None else fields.get(name)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, context and extras.

    The line is made once per record and kept on it: the console and the log file write the
    same line (a request's access line is written by both).
    """

    def format(self, record: logging.LogRecord) -> str:
        line: str | None = getattr(record, "_fanstack_json", None)
        if line is None:
            line = _clean_json_line(record_fields(record, self))
            record._fanstack_json = line
        return line


_encoder = msgspec.json.Encoder(enc_hook=str)


def _clean_json_line(fields: dict[str, Any]) -> str:
    """A JSON log line of `fields`, without terminal escapes."""
    line = _json_line(fields)
    if "\\u001b" in line:  # ESC is written escaped: a rare line holds a terminal escape
        line = _json_line(_strip_ansi(fields))
    return line


def _json_line(fields: dict[str, Any]) -> str:
    """`fields` as one line of JSON: anything JSON has no type for is written as its `str`.
    msgspec writes a busy server's line per request about ten times faster than `json`; `json`
    is the fallback for what msgspec refuses (keys that are neither strings nor numbers)."""
    try:
        return _encoder.encode(fields).decode()
    except (msgspec.EncodeError, TypeError, ValueError, OverflowError):
        return json.dumps(fields, default=str)


class TextFormatter(logging.Formatter):
    """One readable line: time, level, message, then the context fields as `key=value`."""

    def __init__(self, *, color: bool = False) -> None:
        super().__init__()
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        return render_text(record_fields(record, self), color=self.color)


def record_fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    """What a log line says: timestamp, level, logger, message, context fields and extras."""
    line = _head(record.created, record.levelname, record.name, record.getMessage())
    for key, value in record.__dict__.items():
        if key not in _RESERVED and not key.startswith("_"):
            line[key] = value
    if record.exc_info:
        line["exception"] = formatter.formatException(record.exc_info)
    return line


def _head(created: float, level: str, logger_name: str, message: str) -> dict[str, Any]:
    """A line's first fields, then the context's."""
    line: dict[str, Any] = {
        "timestamp": _timestamp(created),
        "level": level,
        "logger": logger_name,
        "message": message,
    }
    context = _fields.get()
    if context:
        line.update(context)
    return line


_second: tuple[float, str] = (-1.0, "")  # the last second stamped, as ISO 8601 up to seconds


def _timestamp(created: float) -> str:
    """`created` (a `time.time()`) in ISO 8601 with milliseconds, UTC, as `datetime` writes it
    (`2026-01-02T03:04:05.678+00:00`): the part up to the second is made once a second, as a
    busy server stamps thousands of lines in each."""
    global _second
    fraction, whole = math.modf(created)
    micros = round(fraction * 1_000_000)  # as `datetime.fromtimestamp` rounds
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:  # before 1970: the fraction counts back from the next second
        whole, micros = whole - 1, micros + 1_000_000
    second, stamped = _second
    if whole != second:
        stamped = datetime.fromtimestamp(whole, UTC).isoformat()[:19]
        _second = (whole, stamped)
    return f"{stamped}.{micros // 1000:03d}+00:00"


def log_fields(
    logger: logging.Logger, level: int, fields: dict[str, Any], message: str, *args: Any
) -> None:
    """`logger.log(level, message, *args, extra=fields)`, made cheaply when only fanstack's own
    handlers would see the record: for a line a busy server writes per request.

    A `LogRecord` and its trip through the loggers cost a gateway more than a tenth of a
    request. When nothing else is there to see the record (no filter on the way, no handler but
    fanstack's batched ones with fanstack's formatters, the standard record factory), the line
    is made from `fields` at once and handed to those handlers: the same line, written the same
    way. Anything else gets the record, as `logger.log` would make it. `fields` are extras as
    `logging` takes them: no name of a record's own attributes, none starting with `_`.
    """
    if not logger.isEnabledFor(level):
        return
    handlers = _only_ours(logger, level)
    said = message
    if handlers is not None and args:
        try:
            said = message % args
        except (TypeError, ValueError):  # logging reports it through its handlers instead
            handlers = None
    if handlers is None:
        logger.log(level, message, *args, extra=fields, stacklevel=2)
        return
    line = _head(time.time(), logging.getLevelName(level), logger.name, said)
    line.update(fields)
    try:
        texts = _lines_for(handlers, line)
    except Exception:  # a field no line can hold: logging reports it through its handlers
        logger.log(level, message, *args, extra=fields, stacklevel=2)
        return
    for handler, text in zip(handlers, texts, strict=True):
        handler.hold(text + handler.terminator, level)


def _lines_for(handlers: list[_Batched], line: dict[str, Any]) -> list[str]:
    """`line` as each handler's formatter writes it (the JSON made once for all)."""
    as_json: str | None = None
    texts: list[str] = []
    for handler in handlers:
        formatter = handler.formatter
        if isinstance(formatter, TextFormatter):
            texts.append(render_text(line, color=formatter.color))
            continue
        if as_json is None:
            as_json = _clean_json_line(line)
        texts.append(as_json)
    return texts


def _only_ours(logger: logging.Logger, level: int) -> list[_Batched] | None:
    """The handlers a record of `level` logged to `logger` would reach, if they are all
    fanstack's batched handlers with its own formatters and nothing on the way filters: else
    None."""
    if logging.getLogRecordFactory() is not logging.LogRecord or type(logger) is not logging.Logger:
        return None
    reached: list[_Batched] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if level < handler.level:
                continue
            if (
                not isinstance(handler, _Batched)
                or handler.filters
                or type(handler.formatter) not in (JsonFormatter, TextFormatter)
            ):
                return None
            reached.append(handler)
        current = current.parent if current.propagate else None
    return reached or None  # none: `logging.lastResort` has its say


_LEVEL_COLORS = {"DEBUG": "2", "INFO": "36", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}
_HEAD = ("timestamp", "level", "logger", "message", "exception")


def render_text(line: Mapping[str, Any], *, color: bool = False) -> str:
    """A JSON log line as text: `12:00:01.250 INFO  message  function=f queue=q`."""
    stamp = str(line.get("timestamp", ""))
    clock = stamp[11:23] if len(stamp) >= 23 else stamp
    level = str(line.get("level", ""))
    shown = f"{level:<7}"
    if color:
        shown = f"\x1b[{_LEVEL_COLORS.get(level, '0')}m{shown}\x1b[0m"
    fields = " ".join(
        f"{key}={_field_text(value)}" for key, value in line.items() if key not in _HEAD
    )
    text = f"{clock} {shown} {line.get('message', '')}" + (f"  {fields}" if fields else "")
    if line.get("exception"):
        text += "\n" + str(line["exception"])
    return text


def _field_text(value: Any) -> str:
    if isinstance(value, str) and value and " " not in value:
        return value
    return json.dumps(value, default=str, separators=(",", ":"))


def _strip_ansi(value: Any) -> Any:
    """The line without terminal escapes: a JSON log is read by programs, never a terminal."""
    if isinstance(value, str):
        return _ANSI.sub("", value)
    if isinstance(value, dict):
        return {key: _strip_ansi(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_ansi(item) for item in value]
    return value


class StatusLine:
    """The live status line at the bottom of a terminal, redrawn after every log line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._text = ""
        self.lock = threading.RLock()

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def show(self, text: str) -> None:
        """Replace the status line with `text` (no newline: the next line overwrites it)."""
        with self.lock:
            self._text = text
            self.stream.write(ERASE_LINE + text)
            self.stream.flush()

    def clear(self) -> None:
        """Erase the status line for good (at shutdown)."""
        with self.lock:
            if self._text:
                self._text = ""
                self.stream.write(ERASE_LINE)
                self.stream.flush()

    def redraw(self) -> None:
        """Draw the status line again below what was just written."""
        if self._text:
            self.stream.write(ERASE_LINE + self._text)
            self.stream.flush()


status_line = StatusLine()


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes text lines to a terminal below nothing: each erases the status line first (any
    process's: worker processes share the terminal), and this process's is drawn again after."""

    def emit(self, record: logging.LogRecord) -> None:
        with status_line.lock:
            self.stream.write(ERASE_LINE)
            super().emit(record)
            status_line.redraw()


def live_status() -> bool:
    """Whether the live status line is drawn: stderr is a terminal and logs are text there."""
    return sys.stderr.isatty() and _chosen_format(None) == "text"


def configure_logging(
    stream: TextIO | None = None,
    level: int | str | None = None,
    *,
    log_format: str | None = None,
    log_file: str | os.PathLike[str] | None = None,
) -> None:
    """Send every logger's records to `stream` (stderr) and, if given, to `log_file`.

    Without arguments (a worker process) the serving process's choices hold, read from the
    environment. `log_format` is text or json (default: text on a terminal, else JSON);
    `level` a name (`info`) or a number. The process given `log_file` rotates it by size;
    processes it starts append to it and follow its rotations.
    """
    target = stream or sys.stderr
    chosen = _chosen_format(log_format, target)
    chosen_level = _chosen_level(level)
    inherited_file = os.environ.get(FILE_ENV)
    os.environ[FORMAT_ENV] = chosen
    os.environ[LEVEL_ENV] = logging.getLevelName(chosen_level).lower()
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing.formatter, JsonFormatter | TextFormatter):
            root.removeHandler(existing)
            existing.close()
    root.addHandler(_console_handler(target, chosen))
    path = log_file or inherited_file
    if path:
        root.addHandler(_file_handler(Path(path), rotate=str(path) != inherited_file))
        os.environ[FILE_ENV] = str(path)
    root.setLevel(chosen_level)


def _chosen_format(log_format: str | None, stream: TextIO | None = None) -> str:
    chosen = log_format or os.environ.get(FORMAT_ENV)
    if chosen is None:
        chosen = "text" if (stream or sys.stderr).isatty() else "json"
    if chosen not in LOG_FORMATS:
        raise ValueError(f"log format {chosen!r}: use text or json")
    return chosen


def _chosen_level(level: int | str | None) -> int:
    if isinstance(level, int):
        return level
    name = (level or os.environ.get(LEVEL_ENV) or "info").upper()
    number = logging.getLevelName(name)
    if not isinstance(number, int):
        raise ValueError(f"log level {level!r}: use one of {', '.join(LOG_LEVELS)}")
    return number


def _console_handler(stream: TextIO, log_format: str) -> logging.Handler:
    handler: logging.Handler
    if log_format == "json":
        handler = _Batched(stream)
        handler.setFormatter(JsonFormatter())
        return handler
    terminal = stream.isatty()
    handler = ConsoleHandler(stream) if terminal else _Batched(stream)
    handler.setFormatter(TextFormatter(color=terminal))
    return handler


def _file_handler(path: Path, *, rotate: bool) -> logging.Handler:
    """JSON lines appended to `path`: rotated by size here, or followed through rotations."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler: logging.Handler
    if rotate:
        handler = _RotatingFile(
            path, maxBytes=LOG_FILE_MAX_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )
    else:
        handler = _FollowedFile(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    return handler


class _Batched(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes its lines in batches: a line of WARNING or above at once, with those before
    it; the rest within `FLUSH_INTERVAL` (`_flusher`), and at exit (`logging.shutdown`).

    A busy server logs a line per request: written one by one, each cost a write and a flush
    (system calls that let go of the interpreter, which a busy process then waits to get
    back). Batched, it is one write per batch. A process killed outright loses at most the
    last `FLUSH_INTERVAL` of lines below WARNING.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[str] = []
        self._pending_chars = 0
        self.flushed_here = False  # known to this process's `_flusher`
        _flusher.every.add(self)

    def emit(self, record: logging.LogRecord) -> None:  # called holding the handler's lock
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._held(line, record.levelno)

    def hold(self, line: str, level: int) -> None:
        """Write a finished `line` (its terminator included) as `emit` writes a record's."""
        with self.lock:  # type: ignore[union-attr]
            try:
                self._held(line, level)
            except Exception:  # a full disk, say: logging never fails its caller
                self.forget_pending()

    def _held(self, line: str, level: int) -> None:
        self._pending.append(line)
        self._pending_chars += len(line)
        if level >= logging.WARNING or self._pending_chars >= MAX_PENDING_CHARS:
            self._write_pending()
        else:
            _flusher.due(self)

    def flush(self) -> None:
        """Write the lines held so far."""
        with self.lock:  # type: ignore[union-attr]
            try:
                self._write_pending()
            except Exception:  # a full disk, say: logging never fails its caller
                self.forget_pending()

    def forget_pending(self) -> None:
        """Drop the lines held (ones that could not be written; in a forked child, its
        parent's, which the parent writes)."""
        self._pending.clear()
        self._pending_chars = 0

    def _write_pending(self) -> None:
        if not self._pending:
            return
        text = "".join(self._pending)
        self.forget_pending()
        self._write(text)

    def _write(self, text: str) -> None:
        stream = self.stream
        if stream is None:
            stream = self.stream = self._open()  # type: ignore[attr-defined]
        stream.write(text)
        stream.flush()


class _RotatingFile(_Batched, logging.handlers.RotatingFileHandler):
    """JSON lines to the log file in batches, rotated by size before a batch would make it
    too large (its size read once per batch: other processes append to it too)."""

    def _write(self, text: str) -> None:
        if self.stream is None:
            self.stream = self._open()
        self.stream.seek(0, 2)  # the end, where other processes' lines may have gone
        if 0 < self.maxBytes <= self.stream.tell() + len(text):
            self.doRollover()
        super()._write(text)


class _FollowedFile(_Batched, logging.handlers.WatchedFileHandler):
    """JSON lines appended to the log file another process rotates: opened again, before a
    batch, if it was rotated away."""

    def _write(self, text: str) -> None:
        self.reopenIfNeeded()
        super()._write(text)


class _Flusher:
    """One thread per process that writes the batching handlers' lines `FLUSH_INTERVAL`
    after the first one was held.

    `due` runs for every line a busy server writes, so it only looks at a flag of the handler
    and an event. Around a fork (one at a time) `logging`'s lock and then every batching
    handler's lock are held, in the order `logging` takes them, so no thread of the parent is
    in the middle of a write (a child would find the stream's own lock taken). A handler whose
    lock does not come free within FORK_LOCK_WAIT (its stream blocked, say) is left as it is,
    rather than holding up the fork. The child starts over (`_forked`): its own event and
    thread, and none of the lines the parent held, which the parent writes.
    """

    def __init__(self) -> None:
        self._handlers: weakref.WeakSet[_Batched] = weakref.WeakSet()  # known to the thread
        self.every: weakref.WeakSet[_Batched] = weakref.WeakSet()  # of this process
        self._held = threading.Event()
        self._starting = threading.Lock()
        self._running = False  # this process's thread
        self._forks = threading.Lock()  # held from before a fork until after it
        self._forking: list[_Batched] = []  # the handlers whose locks the fork holds
        self._module_lock: Any = None  # `logging`'s, while a fork holds it
        os.register_at_fork(
            before=self._before_fork,
            after_in_parent=self._after_fork_in_parent,
            after_in_child=self._forked,
        )

    def due(self, handler: _Batched) -> None:
        """`handler` holds lines: write them soon."""
        if not handler.flushed_here:
            self._add(handler)
        held = self._held
        if not held.is_set():
            held.set()

    def _add(self, handler: _Batched) -> None:
        with self._starting:
            if not self._running:
                threading.Thread(
                    target=self._run, args=(self._held,), name="fanstack-log-flush", daemon=True
                ).start()
                self._running = True
            self._handlers.add(handler)
            handler.flushed_here = True

    def _before_fork(self) -> None:
        self._forks.acquire()
        self._module_lock = getattr(logging, "_lock", None)
        if self._module_lock is not None:
            self._module_lock.acquire()
        self._forking = [
            handler
            for handler in list(self.every)
            if handler.lock is not None and handler.lock.acquire(timeout=FORK_LOCK_WAIT)
        ]

    def _after_fork_in_parent(self) -> None:
        forking, self._forking = self._forking, []
        for handler in forking:
            handler.release()
        if self._module_lock is not None:
            self._module_lock.release()
            self._module_lock = None
        self._forks.release()

    def _forked(self) -> None:
        """In a forked child, whose locks of `logging` and of its handlers `logging` has made
        anew (its hook runs before this one): no thread runs here yet, every handler is added
        again, and what the parent held is the parent's."""
        for handler in self._forking:
            handler.forget_pending()
        for handler in list(self.every):
            handler.flushed_here = False
        self._forking = []
        self._module_lock = None
        self._forks = threading.Lock()
        self._handlers = weakref.WeakSet()
        self._held = threading.Event()
        self._starting = threading.Lock()
        self._running = False

    def _run(self, held: threading.Event) -> None:
        while True:
            held.wait()
            time.sleep(FLUSH_INTERVAL)
            held.clear()
            for handler in list(self._handlers):
                handler.flush()


_flusher = _Flusher()


def flush_logs() -> None:
    """Write every line held so far (before a process ends without `logging.shutdown`)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
