"""Consumers: one queue read for one function, what its batches run inside, how they settle.

The driver (runtime/driver.py) leases and runs every consumer's batches; a consumer says how:
what it leases, the span and log fields of a batch, the heartbeat around its invocation, and
how the settlement policy (core/settlement.py) decides what is deleted, retried or handed back.
A batch that asks to be retried later is run again record by record.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry.trace import Span, SpanKind

from fanstack.core.errors import FanstackError
from fanstack.core.functions import ConsumerSpec
from fanstack.core.message import ReceivedMessage
from fanstack.core.outcome import Outcome
from fanstack.core.settlement import ConsumerPolicy, settle
from fanstack.core.specs import QueueSpec
from fanstack.observability import tracing
from fanstack.runtime.deferrals import Deferrals
from fanstack.runtime.functions import Function
from fanstack.runtime.host import Host
from fanstack.runtime.logs import log_context
from fanstack.runtime.records import pack_sqs_event

log = logging.getLogger("fanstack.dispatcher")

DELETE_AT = 50  # a queue's settled messages deleted in one call, once this many wait
DELETE_WAIT = 0.05  # seconds a settled message waits for its delete, at most, while busy


class ConsumerLoop:
    """One queue read for one consumer's function."""

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

    def pause(self) -> float:
        """While the function's circuit breaker is open, wait instead of leasing."""
        breaker = self.function.circuit_breaker
        if breaker is None or breaker.allows():
            return 0.0
        return max(breaker.retry_after(), 0.1)

    def lease(self, count: int, ahead: int = 0) -> tuple[list[ReceivedMessage], int]:
        """Lease up to `count` messages now, without waiting, for the queue's visibility
        timeout of the moment; and up to `ahead` more for later batches (the driver's
        stock), unless that timeout is 0 (they would stay visible meanwhile). Returns them
        and the timeout they were leased for."""
        backend = self.runtime.backend
        spec = backend.get_queue(self.queue_name)
        if spec.visibility_timeout > 0:
            count += ahead
        return backend.lease(spec, count, spec.visibility_timeout), spec.visibility_timeout

    def span(self, batch: Sequence[ReceivedMessage]) -> AbstractContextManager[Span | None]:
        """The span of a batch, from its lease to its settlement: a span of the trace of its
        first message that has one, linked to the others'."""
        carriers = tracing.batch_carriers(batch)
        return tracing.span(
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
        )

    def fields(self, batch: Sequence[ReceivedMessage]) -> dict[str, Any]:
        """What every log line about the batch says (inside its span: its trace ids)."""
        return _batch_fields(self.queue.name, batch)

    def invoking(
        self,
        batch: Sequence[ReceivedMessage],
        received_at: float,
        fields: dict[str, Any],
        visibility_timeout: int | None = None,
    ) -> list[AbstractContextManager[Any]]:
        """What an invocation of the batch runs inside: its log fields, and the heartbeat that
        keeps its messages invisible while it runs (for the timeout they were leased for,
        the queue's when the consumer started if not given)."""
        handles = [m.receipt_handle for m in batch]
        if visibility_timeout is None:
            visibility_timeout = self.queue.visibility_timeout
        return [
            log_context(function=self.function.name, **fields),
            self.runtime.heartbeat.keep_visible(
                self.queue.name, handles, visibility_timeout, received_at
            ),
        ]

    def retries_alone(self, batch: Sequence[ReceivedMessage], outcome: Outcome) -> bool:
        """Whether the batch is to be run again record by record (`run_alone`): one record
        asked to be retried later (say, its idempotency key is held by another invocation),
        and the others need not wait with it."""
        return outcome.signal is not None and len(batch) > 1 and not self.runtime.stopping.is_set()

    def run_alone(self, batch: Sequence[ReceivedMessage]) -> None:
        """Run and settle each record of the batch on its own (blocking: a thread's work)."""
        log.info(
            "batch asked to retry later; running its records one by one",
            extra={"queue": self.queue.name, "batch_size": len(batch)},
        )
        pool = self.runtime.pool(self.function)
        for message in batch:
            fields = _batch_fields(self.queue.name, [message])
            received_at = time.monotonic()
            with contextlib.ExitStack() as invoking:
                for manager in self.invoking([message], received_at, fields):
                    invoking.enter_context(manager)
                outcome = pool.invoke(pack_sqs_event([message], self.queue), log_fields=fields)
            self.settle([message], outcome, fields)

    def settle(
        self,
        batch: Sequence[ReceivedMessage],
        outcome: Outcome,
        fields: dict[str, Any],
        deletions: Deletions | None = None,
    ) -> None:
        """Apply the settlement policy's decisions to the queue (`fields`: the batch's, for
        log lines); what is to be deleted joins `deletions` if given, else goes at once (on
        a FIFO queue always: the group's next message waits for it; and on a queue whose
        visibility timeout is 0, whose messages are visible again meanwhile)."""
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
            waits = not self.queue.fifo and self.queue.visibility_timeout > 0
            if decision.delete and deletions is not None and waits:
                deletions.add(self, decision.delete, fields)
            elif decision.delete:
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


class Deletions:
    """Settled batches' messages to delete, deleted together: one call per queue for several
    batches (the driver's, on a store whose calls are local).

    A lease or delete of 50 messages costs a third less per message than five of 10, and the
    messages wait invisible meanwhile: `flush` deletes what waits when the driver has nothing
    else to do, and `flush_due` a queue's when DELETE_AT of its messages, or one for
    DELETE_WAIT, waited. A process that dies first leaves them to come back when their
    visibility timeout ends, as one that died before its delete did.
    """

    def __init__(self, runtime: Host) -> None:
        self._runtime = runtime
        # By queue: when its first waited since, and each message's handle with its batch's
        # consumer and log fields (for the line a failed delete logs).
        self._waiting: dict[str, tuple[float, list[tuple[str, ConsumerLoop, dict[str, Any]]]]] = {}

    @property
    def pending(self) -> bool:
        """Whether any message waits to be deleted."""
        return bool(self._waiting)

    def add(self, loop: ConsumerLoop, handles: Sequence[str], fields: dict[str, Any]) -> None:
        """Delete the batch's messages of these receipt handles with the next flush."""
        entry = self._waiting.get(loop.queue_name)
        if entry is None:
            entry = self._waiting[loop.queue_name] = (time.monotonic(), [])
        entry[1].extend((handle, loop, fields) for handle in handles)

    def flush_due(self, now: float) -> None:
        """Delete the messages of each queue with DELETE_AT waiting, or one for DELETE_WAIT."""
        for queue, (since, waiting) in list(self._waiting.items()):
            if len(waiting) >= DELETE_AT or now - since >= DELETE_WAIT:
                self._delete(queue)

    def flush(self) -> None:
        """Delete every waiting message."""
        for queue in list(self._waiting):
            self._delete(queue)

    def _delete(self, queue: str) -> None:
        _, waiting = self._waiting.pop(queue)
        handles = [handle for handle, _, _ in waiting]
        try:
            results = self._runtime.backend.delete_messages(queue, handles)
        except FanstackError as error:  # they come back when their visibility timeout ends
            results = [error] * len(waiting)
        for result, (_, loop, fields) in zip(results, waiting, strict=True):
            if isinstance(result, FanstackError):
                with log_context(function=loop.function.name, **fields):
                    log.warning("delete failed", extra={"error": str(result)})


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
