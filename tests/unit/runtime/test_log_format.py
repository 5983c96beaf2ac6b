"""Log lines as JSON or text, and the live status line kept apart from them."""

from __future__ import annotations

import io
import json
import logging

import pytest

from fanstack.runtime.logs import (
    ERASE_LINE,
    JsonFormatter,
    StatusLine,
    TextFormatter,
    log_context,
    render_text,
)


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("fanstack.test", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_context_and_never_terminal_escapes() -> None:
    with log_context(function="bill"):
        line = JsonFormatter().format(_record("\x1b[31mred\x1b[0m alert", queue="q"))
    fields = json.loads(line)
    assert fields["message"] == "red alert"
    assert (fields["function"], fields["queue"]) == ("bill", "q")
    assert "\x1b" not in line and "\\u001b" not in line


def test_text_lines_read_as_time_level_message_and_fields() -> None:
    with log_context(function="bill"):
        line = TextFormatter().format(_record("charged", amount=12))
    assert " INFO    charged  " in line
    assert line.endswith("function=bill amount=12")
    assert "\x1b" not in line  # colour only for a terminal


def test_a_stored_json_line_renders_as_the_same_text() -> None:
    record = _record("charged", amount=12)
    stored = json.loads(JsonFormatter().format(record))
    assert render_text(stored) == TextFormatter().format(record)


@pytest.mark.parametrize("log_lines", [1, 3])
def test_log_lines_never_share_a_line_with_the_status_line(log_lines: int) -> None:
    from fanstack.runtime import logs

    stream = io.StringIO()
    status = StatusLine(stream)
    original, logs.status_line = logs.status_line, status
    try:
        handler = logs.ConsoleHandler(stream)
        handler.setFormatter(TextFormatter())
        status.show("12.0 invocations/s")
        for n in range(log_lines):
            handler.emit(_record(f"line {n}"))
    finally:
        logs.status_line = original
    # what a terminal shows: each erase goes back to the line's start and clears it
    screen: list[str] = []
    for chunk in stream.getvalue().split("\n"):
        screen.append(chunk.split(ERASE_LINE)[-1])
    assert [line.split(" INFO    ")[-1] for line in screen[:-1]] == [
        f"line {n}" for n in range(log_lines)
    ]
    assert screen[-1] == "12.0 invocations/s"  # drawn again below the log lines
