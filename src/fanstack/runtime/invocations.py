"""Asynchronous invocations: a durable queue per function, retries, event age, destinations.

`Function.invoke_async` stores the event in the function's async queue. `AsyncInvoker` runs each
event in the pool; a failure is retried up to `retry_attempts` times with backoff, an event older
than `max_event_age` is dropped, and the outcome is sent as Lambda's destination record to the
function's `on_success` / `on_failure` target (a queue, topic or function).
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from fanstack.core.functions import DEFAULT_RETRY_LATER_LIMIT
from fanstack.core.message import ReceivedMessage
from fanstack.core.outcome import Outcome
from fanstack.core.retry import RetryPolicy
from fanstack.runtime.deferrals import Deferrals
from fanstack.runtime.functions import Function
from fanstack.runtime.host import Host
from fanstack.runtime.logs import log_context
from fanstack.runtime.polling import POLL_WAIT, poll
from fanstack.runtime.pool import Permit

log = logging.getLogger("fanstack.invocations")

SUCCESS, RETRIES_EXHAUSTED, EVENT_AGE_EXCEEDED = "Success", "RetriesExhausted", "EventAgeExceeded"
# Lambda waits about a minute, then two, between asynchronous attempts; scaled down to seconds.
ASYNC_RETRY = RetryPolicy(base_delay=2, max_delay=60, max_attempts=3)


def destination_record(
    function: Function,
    request: dict[str, Any],
    outcome: Outcome | None,
    condition: str,
    invoke_count: int,
    now: float,
) -> dict[str, Any]:
    """Lambda's destination record for one asynchronous invocation."""
    response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if outcome is not None and not outcome.ok:
        response_context["functionError"] = "Unhandled"
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
        "requestContext": {
            "requestId": request["requestId"],
            "functionArn": f"{function.spec.arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": request["payload"],
        "responseContext": response_context,
    }
    if outcome is not None:
        record["responsePayload"] = outcome.result if outcome.ok else outcome.error
    return record


class AsyncInvoker:
    """Polls one function's async queue and runs each event, one per invocation."""

    def __init__(self, runtime: Host, function: Function) -> None:
        self.runtime = runtime
        self.function = function
        self.name = function.spec.async_queue
        self.queue_name = self.name
        self.max_concurrency = function.spec.concurrency
        self.deferrals = Deferrals(DEFAULT_RETRY_LATER_LIMIT)

    def run(self) -> None:
        """Poll until the runtime stops."""
        poll(self.runtime, self)

    def pause(self) -> float:
        """Never paused."""
        return 0.0

    def gather(self) -> list[ReceivedMessage]:
        """Lease the next event (one per invocation)."""
        return self.runtime.backend.receive(self.name, max_messages=1, wait_seconds=POLL_WAIT)

    def settle(self, batch: list[ReceivedMessage], received_at: float, permit: Permit) -> None:
        """Run one event and send its outcome where it belongs."""
        (message,) = batch
        backend = self.runtime.backend
        function = self.function
        request = json.loads(message.body)
        now = time.time()
        attempt = message.receive_count
        with log_context(function=function.name, request_id=request["requestId"]):
            if now - message.sent_timestamp > function.spec.max_event_age:
                permit.cancel()
                self._finish(message, request, None, EVENT_AGE_EXCEEDED, attempt - 1, now)
                return
            with self.runtime.heartbeat.keep_visible(
                self.name, [message.receipt_handle], self._visibility(), received_at
            ):
                outcome = permit.run(request["payload"])
            if outcome.signal is not None and self.deferrals.allow(message.id, time.monotonic()):
                backend.set_visibility(
                    self.name, [(message.receipt_handle, math.ceil(outcome.delay))], uncount=True
                )
                return
            self.deferrals.forget([message.id])
            if self.runtime.forced.is_set() and not outcome.ok:
                # Stopped by the operator, not failed: the receive does not count.
                backend.set_visibility(self.name, [(message.receipt_handle, 0)], uncount=True)
                return
            if outcome.ok:
                self._finish(message, request, outcome, SUCCESS, attempt, time.time())
            elif attempt > function.spec.retry_attempts:
                self._finish(message, request, outcome, RETRIES_EXHAUSTED, attempt, time.time())
            else:
                delay = math.ceil(ASYNC_RETRY.delay(attempt, self.runtime.rng))
                backend.set_visibility(
                    self.name, [(message.receipt_handle, delay)], failure=outcome.error_summary
                )
                log.warning(
                    "async invocation failed; will retry",
                    extra={"attempt": attempt, "retry_in_s": delay},
                )

    def _visibility(self) -> int:
        return math.ceil(self.function.spec.timeout) + 30

    def _finish(
        self,
        message: ReceivedMessage,
        request: dict[str, Any],
        outcome: Outcome | None,
        condition: str,
        invoke_count: int,
        now: float,
    ) -> None:
        function = self.function
        target = function.on_success if condition == SUCCESS else function.on_failure
        if target is not None:
            record = destination_record(function, request, outcome, condition, invoke_count, now)
            send_to_destination(target, record)
        level = logging.INFO if condition == SUCCESS else logging.ERROR
        log.log(level, "async invocation %s", condition, extra={"invoke_count": invoke_count})
        self.runtime.backend.delete_messages(self.name, [message.receipt_handle])


def send_to_destination(target: Any, record: dict[str, Any]) -> None:
    """Deliver a destination record to a queue, a topic or a function (asynchronously)."""
    if isinstance(target, Function):
        target.invoke_async(record)
        return
    body = json.dumps(record)
    if hasattr(target, "publish"):
        target.publish(body)
    else:
        target.send(body)
