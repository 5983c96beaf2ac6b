"""Consumers: each polls one queue for one function, runs batches in its pool, settles them.

A poller leases messages only when a worker can take them now (a warm one is idle, or one batch
waits on a cold start); a batch that asks to be retried later is run again record by record; the
settlement policy (core/settlement.py) decides what is deleted, retried or handed back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.trace import SpanKind

from fanstack.core.errors import FanstackError
from fanstack.core.functions import ConsumerSpec
from fanstack.core.message import ReceivedMessage
from fanstack.core.outcome import Outcome
from fanstack.core.queue_rules import MAX_RECEIVE_BATCH
from fanstack.core.settlement import ConsumerPolicy, settle
from fanstack.core.specs import QueueSpec
from fanstack.observability import tracing
from fanstack.runtime.deferrals import Deferrals
from fanstack.runtime.functions import Function
from fanstack.runtime.host import Host
from fanstack.runtime.logs import log_context
from fanstack.runtime.polling import POLL_WAIT, poll
from fanstack.runtime.pool import Permit
from fanstack.runtime.records import pack_sqs_event

log = logging.getLogger("fanstack.dispatcher")



class ConsumerLoop:
    """Polls one queue for one consumer and runs its batches."""

    def __init__(
        self, runtime: Host, consumer: ConsumerSpec, function: Function, queue: QueueSpec
    ) -> None:
        self.runtime = runtime
        self.consumer = consumer
        self.function = function
        self.queue = queue
        self.name = f"{queue.name}->{function.name}"
        self.queue_name = queue.name
        self.max_concurrency = consumer.max_concurrency or function.spec.concurrency
        self.deferrals = Deferrals(consumer.retry_later_limit)
        self.policy = ConsumerPolicy(
            report_item_failures=consumer.report_batch_item_failures,
            retry=consumer.retry,
            max_receive_count=queue.max_receive_count,
            retry_later_limit=consumer.retry_later_limit,
        )

    def run(self) -> None:
        """Poll until the runtime stops."""
        poll(self.runtime, self)

    def pause(self) -> float:
        """While the function's circuit breaker is open, wait instead of leasing."""
        breaker = self.function.circuit_breaker
        if breaker is None or breaker.allows():
            return 0.0
        return max(breaker.retry_after(), 0.1)

    def gather(self) -> list[ReceivedMessage]:
        """Lease up to a batch, waiting up to the batch window for it to fill."""
        backend = self.runtime.backend
        size = self.consumer.batch_size
        batch = backend.receive(
            self.queue.name, max_messages=min(MAX_RECEIVE_BATCH, size), wait_seconds=POLL_WAIT
        )
        if not batch:
            return batch
        deadline = time.monotonic() + self.consumer.batch_window
        while len(batch) < size and not self.runtime.stopping.is_set():
            remaining = deadline - time.monotonic()
            more = backend.receive(
                self.queue.name,
                max_messages=min(MAX_RECEIVE_BATCH, size - len(batch)),
                wait_seconds=max(0.0, min(remaining, 20.0)),
            )
            batch.extend(more)
            if not more and remaining <= 0:
                break
        return batch

    def settle(
        self, batch: list[ReceivedMessage], received_at: float, permit: Permit
    ) -> None:
        """Invoke the function on a batch and settle every message by the outcome (a span of
        the trace of its first message that has one, linked to the others')."""
        carriers = tracing.batch_carriers(batch)
        with tracing.span(
            f"process {self.queue.name}",
            kind=SpanKind.CONSUMER,
            parent=carriers[0] if carriers else None,
            links=carriers[1:],
            attributes={
                "messaging.system": "fanstack",
                "messaging.operation.type": "process",
                "messaging.destination.name": self.queue.name,
                "messaging.batch.message_count": len(batch),
            },
        ) as span:
            outcome = self._process(batch, received_at, permit)
            if not outcome.ok and outcome.signal is None:
                tracing.fail(span, outcome.error_summary.partition("\n")[0])

    def _process(
        self, batch: list[ReceivedMessage], received_at: float, permit: Permit
    ) -> Outcome:
        fields = _batch_fields(self.queue.name, batch)
        outcome = self._invoke(batch, received_at, permit.run, fields)
        if outcome.signal is not None and len(batch) > 1 and not self.runtime.stopping.is_set():
            # One record asked to be retried later (say, its idempotency key is held by another
            # invocation): run each record alone, so the others do not wait with it.
            log.info(
                "batch asked to retry later; running its records one by one",
                extra={"queue": self.queue.name, "batch_size": len(batch)},
            )
            pool = self.runtime.pool(self.function)
            for message in batch:
                alone_fields = _batch_fields(self.queue.name, [message])
                alone = self._invoke([message], time.monotonic(), pool.invoke, alone_fields)
                self._settle([message], alone, alone_fields)
            return outcome
        self._settle(batch, outcome, fields)
        return outcome

    def _invoke(
        self,
        batch: list[ReceivedMessage],
        received_at: float,
        run: Callable[..., Outcome],
        fields: dict[str, Any],
    ) -> Outcome:
        handles = [m.receipt_handle for m in batch]
        with (
            log_context(function=self.function.name, **fields),
            self.runtime.heartbeat.keep_visible(
                self.queue.name, handles, self.queue.visibility_timeout, received_at
            ),
        ):
            outcome: Outcome = run(pack_sqs_event(batch, self.queue), log_fields=fields)
        return outcome

    def _settle(
        self, batch: Sequence[ReceivedMessage], outcome: Outcome, fields: dict[str, Any]
    ) -> None:
        """Apply the settlement policy's decisions to the queue (`fields`: the batch's, for
        log lines)."""
        backend = self.runtime.backend
        queue = self.queue.name
        expired: set[str] = set()
        if outcome.signal is not None:
            now = time.monotonic()
            expired = {m.id for m in batch if not self.deferrals.allow(m.id, now)}
        decision = settle(
            batch,
            outcome,
            self.policy,
            interrupted=self.runtime.forced.is_set(),
            deferral_expired=expired,
            rng=self.runtime.rng,
        )
        if decision.label not in ("retry-later", "interrupted"):
            self.deferrals.forget([m.id for m in batch])
        with log_context(function=self.function.name, **fields):
            if decision.delete:
                for result in backend.delete_messages(queue, list(decision.delete)):
                    if isinstance(result, FanstackError):
                        log.warning("delete failed", extra={"error": str(result)})
            for retry in decision.retry:
                backend.set_visibility(
                    queue, [(retry.receipt_handle, retry.delay)], failure=retry.reason
                )
            if decision.hand_back:
                backend.set_visibility(queue, list(decision.hand_back), uncount=True)
            _log_outcome(outcome, decision.label, len(batch), failed=decision.failed)


def _request_ids(carriers: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """The request id (or ids) that led to a batch's messages, for its log lines."""
    ids = list(dict.fromkeys(c["request_id"] for c in carriers if "request_id" in c))
    if not ids:
        return {}
    return {"request_id": ids[0]} if len(ids) == 1 else {"request_ids": ids}


def _batch_fields(queue: str, batch: Sequence[ReceivedMessage]) -> dict[str, Any]:
    """What every log line about a batch says: its queue, message ids and receive counts, and
    the request that led to it, if any."""
    return {
        "queue": queue,
        "message_ids": [m.id for m in batch],
        "receive_counts": [m.receive_count for m in batch],
        **_request_ids(tracing.batch_carriers(batch)),
        **tracing.current_ids(),
    }


def _log_outcome(outcome: Outcome, label: str, size: int, failed: int = 0) -> None:
    extra = {
        "invocation_id": outcome.invocation_id,
        "outcome": label,
        "duration_ms": round(outcome.duration * 1000, 1),
        "cold_start": outcome.cold_start,
        "batch_size": size,
        "failed": failed,
    }
    if outcome.error is not None:
        extra["error_type"] = outcome.error.get("errorType")
        extra["error_message"] = outcome.error.get("errorMessage")
    level = logging.INFO if label in ("success", "retry-later", "interrupted") else logging.ERROR
    log.log(level, "invocation %s", label, extra=extra)
