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


def _private_logger(*handlers: logging.Handler) -> logging.Logger:
    """A logger of its own (nothing propagates to the root's handlers) with `handlers`."""
    import uuid

    logger = logging.getLogger(f"fanstack.test.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for handler in handlers:
        logger.addHandler(handler)
    return logger


def _batched(formatter: logging.Formatter) -> tuple[logging.Handler, io.StringIO]:
    from fanstack.runtime.logs import _Batched

    stream = io.StringIO()
    handler = _Batched(stream)
    handler.setFormatter(formatter)
    return handler, stream


def _caller_name() -> str:
    import sys

    return sys._getframe(1).f_code.co_name


def _without_time(line: str) -> str:
    return line.split(" ", 1)[1] if not line.startswith("{") else json.dumps(
        {k: v for k, v in json.loads(line).items() if k != "timestamp"}
    )


def test_a_line_made_from_fields_is_the_line_a_record_makes() -> None:
    from fanstack.runtime.logs import log_fields

    as_json, json_stream = _batched(JsonFormatter())
    as_text, text_stream = _batched(TextFormatter())
    logger = _private_logger(as_json, as_text)
    fields = {"method": "POST", "path": "/o", "status": 202, "duration_ms": 1.5}
    with log_context(request_id="r-1"):
        log_fields(logger, logging.INFO, fields, "%s %s %d", "POST", "/o", 202)
        logger.info("%s %s %d", "POST", "/o", 202, extra=fields)
    for handler in (as_json, as_text):
        handler.flush()
    fast, slow = json_stream.getvalue().splitlines()
    assert _without_time(fast) == _without_time(slow)
    assert json.loads(fast)["request_id"] == "r-1"
    fast, slow = text_stream.getvalue().splitlines()
    assert _without_time(fast) == _without_time(slow)
    assert fast.endswith("request_id=r-1 method=POST path=/o status=202 duration_ms=1.5")


def test_a_line_made_from_fields_reaches_other_handlers_and_filters_as_a_record() -> None:
    from fanstack.runtime.logs import log_fields

    ours, stream = _batched(JsonFormatter())
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = _private_logger(ours, Keep())
    log_fields(logger, logging.INFO, {"status": 202}, "%s done", "POST")
    ours.flush()
    (record,) = seen
    assert (record.getMessage(), record.status) == ("POST done", 202)  # type: ignore[attr-defined]
    assert record.funcName == _caller_name()  # the line's caller, as `logger.log` names it
    assert json.loads(stream.getvalue())["status"] == 202

    filtered = _private_logger(_batched(JsonFormatter())[0])
    filtered.addFilter(lambda record: record.status != 500)  # type: ignore[attr-defined]
    handler = filtered.handlers[0]
    log_fields(filtered, logging.INFO, {"status": 500}, "dropped")
    log_fields(filtered, logging.INFO, {"status": 202}, "kept")
    handler.flush()
    assert [json.loads(line)["message"] for line in handler.stream.getvalue().splitlines()] == [  # type: ignore[attr-defined]
        "kept"
    ]
    filtered.setLevel(logging.WARNING)
    log_fields(filtered, logging.INFO, {"status": 202}, "below the level")
    handler.flush()
    assert "below the level" not in handler.stream.getvalue()  # type: ignore[attr-defined]


def test_a_line_made_from_fields_formats_its_message_as_logging_does() -> None:
    from fanstack.runtime.logs import log_fields

    handler, stream = _batched(JsonFormatter())
    logger = _private_logger(handler)
    log_fields(logger, logging.INFO, {"step": 1}, "100% done")  # no arguments: no formatting
    log_fields(logger, logging.INFO, {"step": 2}, "%(name)s", {"name": "mapped"})
    handler.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["message"], line["step"]) for line in lines] == [("100% done", 1), ("mapped", 2)]


def test_a_field_no_line_can_hold_is_reported_by_logging_not_raised() -> None:
    from fanstack.runtime.logs import log_fields

    handler, stream = _batched(JsonFormatter())
    reported: list[logging.LogRecord] = []
    handler.handleError = reported.append  # type: ignore[method-assign]
    logger = _private_logger(handler)
    looped: dict[str, object] = {}
    looped["self"] = looped
    log_fields(logger, logging.INFO, {"looped": looped}, "cycle")  # does not raise
    log_fields(logger, logging.INFO, {"step": 2}, "after")
    handler.flush()
    assert [record.getMessage() for record in reported] == ["cycle"]
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["after"]
