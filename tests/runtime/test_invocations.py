"""Invocation models: synchronous invoke, asynchronous invoke with retries and destinations."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from fanstack import App
from fanstack.core.errors import FunctionError, TooManyRequests

from ..support.stores import Store
from . import handlers
from .conftest import ONE_BACKEND, wait_for


def test_invoke_returns_the_result_from_a_worker(app: App) -> None:
    add = app.function(handlers.add, timeout=5)
    result = add.invoke({"a": 2, "b": 3})
    assert result["sum"] == 5
    assert 0 < result["remaining_ms"] <= 5000
    assert (
        add(  # calling the Function directly runs the plain handler in-process
            {"a": 1, "b": 1}, type("C", (), {"get_remaining_time_in_millis": lambda self: 1})()
        )["sum"]
        == 2
    )


def test_invoke_raises_the_handlers_error(app: App) -> None:
    add = app.function(handlers.add)
    with pytest.raises(FunctionError) as caught:
        add.invoke({"a": "two", "b": 3})
    assert caught.value.error_type == "TypeError"
    assert caught.value.error_message == "a must be an int"
    assert any("add" in line for line in caught.value.stack_trace)
    assert caught.value.to_dict()["errorType"] == "TypeError"


def test_an_error_or_result_a_frame_cannot_carry_fails_only_its_invocation(
    app: App,
) -> None:
    """An error message with a name that was not UTF-8 is reported, escaped, by the worker
    (which crashed on it before); such a result is a MarshalError, as in Lambda, and so is
    one the worker's frames cannot carry; an error whose message fails is still reported."""
    function = app.function(handlers.undecodable, timeout=5)
    with pytest.raises(FunctionError) as caught:
        function.invoke({"fail": True})
    assert caught.value.error_type == "ValueError"
    assert caught.value.error_message == "cannot open caf\\udce9.txt"
    with pytest.raises(FunctionError) as caught:
        function.invoke({})
    assert caught.value.error_type == "Runtime.MarshalError"
    assert "surrogates not allowed" in caught.value.error_message
    with pytest.raises(FunctionError) as caught:
        function.invoke({"none_key": True})
    assert caught.value.error_type == "Runtime.MarshalError"
    with pytest.raises(FunctionError) as caught:
        function.invoke({"unprintable": True})
    assert caught.value.error_type == "Unprintable"


def test_invoke_over_the_concurrency_limit_is_throttled(app: App) -> None:
    add = app.function(handlers.add, concurrency=1, timeout=10)
    add.invoke({"a": 0, "b": 0})  # warm
    busy = threading.Thread(target=add.invoke, args=({"a": 1, "b": 1, "sleep": 2},))
    busy.start()
    wait_for(lambda: app.runtime.pool(add)._busy == 1)
    with pytest.raises(TooManyRequests, match="concurrency limit"):
        add.invoke({"a": 1, "b": 1})
    busy.join()


def test_invoke_timeout_is_a_function_error(app: App) -> None:
    add = app.function(handlers.add, timeout=1)
    with pytest.raises(FunctionError, match="Task timed out"):
        add.invoke({"a": 1, "b": 1, "sleep": 5})
    assert add.invoke({"a": 1, "b": 1})["sum"] == 2  # a fresh worker takes over


def test_invoke_async_sends_a_success_record_to_its_destination(app: App) -> None:
    outcomes = app.queue("outcomes")
    add = app.function(handlers.add, on_success=outcomes)
    app.runtime.start()
    request_id = add.invoke_async({"a": 20, "b": 22})
    wait_for(lambda: outcomes.stats().visible == 1)
    (message,) = outcomes.receive()
    record = json.loads(message.body)
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestPayload"] == {"a": 20, "b": 22}
    assert record["responsePayload"]["sum"] == 42
    assert record["responseContext"]["statusCode"] == 200
    assert record["version"] == "1.0"


def test_invoke_async_retries_then_sends_a_failure_record(app: App) -> None:
    failures = app.topic("failures")
    seen = app.queue("seen")
    failures.subscribe(seen, raw=True)
    add = app.function(handlers.add, retry_attempts=1, on_failure=failures)
    app.runtime.start()
    add.invoke_async({"a": "bad", "b": 1})
    wait_for(lambda: seen.stats().visible == 1, timeout=60)
    record = json.loads(seen.receive()[0].body)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "TypeError"
    assert app.queue_for(add.spec.async_queue).stats().visible == 0


def test_invoke_async_is_durable_before_any_worker_runs(app: App, store: Store) -> None:
    add = app.function(handlers.add)
    add.invoke_async({"a": 1, "b": 2})
    app.close()
    reopened = store.app("runtime-test")
    reopened.function(handlers.add)
    assert reopened.queue_for("fanstack-async-add").stats().visible == 1
    reopened.close()


@ONE_BACKEND
@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": 901}, "timeout"),
        ({"memory_mb": 64}, "memory_mb"),
        ({"retry_attempts": 3}, "MaximumRetryAttempts"),
        ({"max_event_age": 30}, "max_event_age"),
    ],
)
def test_function_limits_are_enforced(app: App, options: dict[str, int], fragment: str) -> None:
    from fanstack.core.errors import InvalidParameterValue

    with pytest.raises(InvalidParameterValue, match=fragment):
        app.function(handlers.add, **options)


@ONE_BACKEND
@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 100}, "batch_window"),
        ({"batch_window": 301}, "batch_window"),
        ({"max_concurrency": 1}, "max_concurrency"),
    ],
)
def test_consumer_limits_are_enforced(app: App, options: dict[str, int], fragment: str) -> None:
    from fanstack.core.errors import InvalidParameterValue

    queue = app.queue("limits")
    with pytest.raises(InvalidParameterValue, match=fragment):
        app.consumer(queue, **options)(handlers.record_all)


def test_invoke_async_can_send_its_record_to_a_function(app: App, work_dir: Path) -> None:
    note = app.function(handlers.note_destination)
    add = app.function(handlers.add, on_success=note)
    app.runtime.start()
    add.invoke_async({"a": 1, "b": 2, "dir": str(work_dir)})
    wait_for(lambda: list(work_dir.glob("dest-Success*")))


def test_events_older_than_max_event_age_are_dropped_to_on_failure(store: Store) -> None:
    # The store's clock runs 2 hours behind: every event it stamps is already 2 hours old.
    late = store.open(clock=lambda: time.time() - 7200)
    app = App("aged", backend=late)
    failures = app.queue("failures")
    add = app.function(handlers.add, max_event_age=3600, on_failure=failures)
    try:
        app.runtime.start()
        add.invoke_async({"a": 1, "b": 2})
        wait_for(lambda: failures.stats().visible == 1)
        record = json.loads(failures.receive()[0].body)
        assert record["requestContext"]["condition"] == "EventAgeExceeded"
        assert record["requestContext"]["approximateInvokeCount"] == 0
        assert "responsePayload" not in record
    finally:
        app.runtime.stop(grace=5)
        app.close()
