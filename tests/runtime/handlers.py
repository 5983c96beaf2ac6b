"""Handlers the runtime tests run in real worker processes (module level, so workers import them).

Each handler records what it did as files under the directory named in the message body, so the
test process can see side effects that happened in another process.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from fanstack import idempotent

log = logging.getLogger("handlers")

# The environment variable naming the backend URL of the store handlers keep their tables in.
STATE_BACKEND = "HANDLER_STATE_BACKEND"
_state_apps: dict[str, Any] = {}  # one App per store URL, per process
_state_lock = threading.Lock()


def _body(record: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(record["body"])
    if document.get("Type") == "Notification":
        inner: dict[str, Any] = json.loads(document["Message"])
        return inner
    return document


def _mark(body: dict[str, Any], name: str, content: str = "") -> None:
    directory = Path(body["dir"])
    directory.mkdir(parents=True, exist_ok=True)
    _write_whole(directory / f"{name}.{os.getpid()}.{time.monotonic_ns()}", content)


def _write_whole(path: Path, content: str) -> None:
    """Write `path` so that a test that sees it sees all of it (written aside, then renamed:
    a test waiting for a marker could otherwise read it empty, before its content)."""
    aside = path.with_name(f".{path.name}.partial")
    aside.write_text(content)
    os.replace(aside, path)


def record_all(event: dict[str, Any], context: Any) -> None:
    """Succeeds, leaving one marker per record."""
    for record in event["Records"]:
        body = _body(record)
        log.info("handled %s", body["n"])
        _mark(body, f"done-{body['n']}", json.dumps(record))


def fail_always(event: dict[str, Any]) -> None:
    """Raises, after leaving a marker per attempt."""
    for record in event["Records"]:
        _mark(_body(record), "attempt")
    raise ValueError("payment service said no")


def fail_marked(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Fails only records whose body has `"fail": true`, via batchItemFailures."""
    failures = []
    for record in event["Records"]:
        body = _body(record)
        if body.get("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
        else:
            _mark(body, f"done-{body['n']}")
    return {"batchItemFailures": failures}


def sleep_for(event: dict[str, Any], context: Any) -> None:
    """Sleeps `seconds` from the first record's body, writing its pid first."""
    body = _body(event["Records"][0])
    _mark(body, "pid", str(os.getpid()))
    time.sleep(body["seconds"])
    for record in event["Records"]:
        _mark(_body(record), f"done-{_body(record)['n']}")


def crash_first(event: dict[str, Any], context: Any) -> None:
    """Crashes the worker the first time a record is seen (segfault or os._exit), then succeeds."""
    for record in event["Records"]:
        body = _body(record)
        if record["attributes"]["ApproximateReceiveCount"] == "1":
            if body["how"] == "segfault":
                ctypes.string_at(0)
            os._exit(3)
        _mark(body, f"done-{body['n']}")


def hog_memory(event: dict[str, Any], context: Any) -> None:
    """Allocates far more than its memory cap."""
    blocks = [bytearray(64 * 1024 * 1024) for _ in range(64)]
    del blocks


def kill_me_first(event: dict[str, Any], context: Any) -> None:
    """On the first receive, writes its pid and waits to be killed; later it succeeds."""
    for record in event["Records"]:
        body = _body(record)
        if record["attributes"]["ApproximateReceiveCount"] == "1":
            _mark(body, "pid", str(os.getpid()))
            time.sleep(60)
        _mark(body, f"done-{body['n']}")


def add(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Returns the sum of `a` and `b`; raises on bad input."""
    if not isinstance(event.get("a"), int):
        raise TypeError("a must be an int")
    time.sleep(event.get("sleep", 0))
    return {"sum": event["a"] + event["b"], "remaining_ms": context.get_remaining_time_in_millis()}


def chatty(event: dict[str, Any], context: Any) -> None:
    """Logs through the standard logging module and prints to stdout."""
    print("this goes to stderr, not into the channel")
    log.warning("handler says hello")


def state_app() -> Any:
    """The App of the handlers' own store, whose URL the test passes down in STATE_BACKEND."""
    url = os.environ[STATE_BACKEND]
    with _state_lock:
        if url not in _state_apps:
            from fanstack import App

            _state_apps[url] = App("handlers", backend=url)
        return _state_apps[url]


def close_state() -> None:
    """Close the handlers' stores this process opened (the test process, after a test)."""
    with _state_lock:
        apps = list(_state_apps.values())
        _state_apps.clear()
    for app in apps:
        app.close()


def charge_then_fail_first(event: dict[str, Any], context: Any) -> None:
    """Charges each order once (idempotent), but fails the batch on its first receive."""
    from fanstack import idempotent

    state = state_app()

    @idempotent(state.table("idempotency"), key="body.order_id")
    def charge(record: dict[str, Any]) -> dict[str, Any]:
        body = _body(record)
        time.sleep(body.get("seconds", 0))
        _mark(body, f"charged-{body['order_id']}")
        return {"charged": body["order_id"]}

    for record in event["Records"]:
        charge(record)
    if event["Records"][0]["attributes"]["ApproximateReceiveCount"] == "1":
        raise ConnectionError("the batch failed after charging")


def call_flaky_dependency(event: dict[str, Any], context: Any) -> None:
    """Calls a dependency through a breaker; the dependency is down while `down` exists."""
    from fanstack import CircuitBreaker

    state = state_app()
    breaker = CircuitBreaker(
        state.table("breakers"), "payments", failure_threshold=1, reset_timeout=2
    )
    for record in event["Records"]:
        body = _body(record)
        with breaker:
            _mark(body, "call")
            if (Path(body["dir"]) / "down").exists():
                raise ConnectionError("payments are down")
        _mark(body, f"done-{body['n']}", record["attributes"]["ApproximateReceiveCount"])


def note_destination(event: dict[str, Any], context: Any) -> None:
    """A destination function: records the condition of the record it was sent."""
    _mark({"dir": event["requestPayload"]["dir"]}, f"dest-{event['requestContext']['condition']}")


def _idempotency_table() -> Any:
    from fanstack.table import Table

    return Table(lambda: state_app().backend, "idempotency")


@idempotent(_idempotency_table(), key="body.order_id")
def charge_order(record: dict[str, Any]) -> dict[str, Any]:
    """Charges one order, once. On its first receive an order may `stall` (write the worker's
    pid, then hang until timed out or killed); any order may `hold` its claim for seconds."""
    body = _body(record)
    if body.get("stall") and record["attributes"]["ApproximateReceiveCount"] == "1":
        _mark(body, "pid", str(os.getpid()))
        time.sleep(600)
    time.sleep(body.get("hold", 0))
    _mark(body, f"charged-{body['order_id']}")
    return {"charged": body["order_id"]}


def charge_orders(event: dict[str, Any], context: Any) -> None:
    """Charges every order of the batch, in order."""
    for record in event["Records"]:
        charge_order(record)


def note_event(event: dict[str, Any], context: Any) -> None:
    """A bus target: mark the event's id under the directory its detail names."""
    _write_whole(Path(event["detail"]["dir"], f"event-{event['id']}"), json.dumps(event))


def double(event: Any, context: Any) -> Any:
    """A workflow task: twice its number."""
    return event * 2


def refuse(event: Any, context: Any) -> Any:
    """A workflow task that always fails."""
    raise PermissionError(f"refused {event!r}")


def note_tick(event: dict[str, Any], context: Any) -> None:
    """A schedule target: one marker file per invocation, under the directory its input names."""
    _write_whole(Path(event["dir"], f"tick-{context.aws_request_id}"), json.dumps(event))


def note_cpus(event: dict[str, Any], context: Any) -> None:
    """Notes the CPUs its worker process may run on (`cpus-<n>`, a JSON list)."""
    for record in event["Records"]:
        body = _body(record)
        _mark(body, f"cpus-{body['n']}", json.dumps(sorted(os.sched_getaffinity(0))))


class Unprintable(Exception):
    """An error whose message cannot be made."""

    def __str__(self) -> str:
        raise RuntimeError("no message")


def undecodable(event: dict[str, Any], context: Any) -> Any:
    """Fails, or returns, with a name that was not UTF-8 (a lone surrogate, as os gives it)."""
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    if event.get("fail"):
        raise ValueError(f"cannot open {name}")
    if event.get("unprintable"):
        raise Unprintable()
    if event.get("none_key"):
        return {None: "plain"}  # JSON to json.dumps ("null"), not to the worker's frames
    return {"name": name}
