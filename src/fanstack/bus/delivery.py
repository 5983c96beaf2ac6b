"""Delivering routed events to targets: writes to the store, retries, and the target DLQ.

A queue, function (its asynchronous-invocation queue) or bus (its ingress queue) target is a
queue write, so the router stores all of a batch's queue deliveries in one `commit`, the event
stored once for the targets that get the same text. A topic target is a publish. An HTTP target,
and any delivery that failed, goes to the bus's retry queue, where `Retrier` tries again with
exponential backoff and full jitter until the target's `maximum_retry_attempts` or
`maximum_event_age` runs out; then, as EventBridge does, the event goes to the target's DLQ with
`RULE_ARN`, `TARGET_ARN`, `ERROR_CODE`, `ERROR_MESSAGE`, `RETRY_ATTEMPTS` and
`EXHAUSTED_RETRY_CONDITION`. A missing target or an input that cannot be rendered is not retried.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fanstack.backends.base import Backend
from fanstack.bus.api_destination import ApiCaller
from fanstack.bus.failures import DeliveryFailed, classify
from fanstack.core.errors import (
    ExecutionAlreadyExists,
    FanstackError,
    StateMachineDoesNotExist,
)
from fanstack.core.events import INGRESS_PREFIX, ingress_queue
from fanstack.core.fanout import Delivery as QueueDelivery
from fanstack.core.fanout import Publication
from fanstack.core.functions import ASYNC_QUEUE_PREFIX
from fanstack.core.message import MessageAttribute, OutgoingMessage
from fanstack.core.queue_rules import check_send
from fanstack.core.records import PublishRequest
from fanstack.core.retry import RetryPolicy
from fanstack.core.rules import API, BUS, FUNCTION, QUEUE, TOPIC, WORKFLOW, TargetSpec
from fanstack.core.specs import QueueSpec
from fanstack.workflows.starts import start_stored

log = logging.getLogger("fanstack.bus")

RETRY_SUFFIX = "-retry"
RETRY_BACKOFF = RetryPolicy(base_delay=1, max_delay=300, max_attempts=186)
MAX_ATTEMPTS_EXHAUSTED = "MaximumRetryAttempts"
MAX_AGE_EXHAUSTED = "MaximumEventAgeInSeconds"


def retry_queue(bus: str) -> str:
    """The queue that holds a bus's deliveries to retry (and its HTTP deliveries)."""
    return INGRESS_PREFIX + bus + RETRY_SUFFIX


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event bound for one target of one rule, with its input rendered."""

    rule_arn: str
    target: TargetSpec
    event: dict[str, Any]
    text: str
    ingested: float
    attempts: int = 0  # attempts made before this one
    not_before: float | None = None  # a scheduled delivery inside its flexible window

    def to_json(self) -> str:
        """The body of its message in the retry queue."""
        return json.dumps(
            {
                "rule_arn": self.rule_arn,
                "target": self.target.to_dict(),
                "event": self.event,
                "text": self.text,
                "ingested": self.ingested,
                "attempts": self.attempts,
                "not_before": self.not_before,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, body: str) -> Delivery:
        """A delivery read back from the retry queue."""
        data = json.loads(body)
        return cls(
            rule_arn=data["rule_arn"],
            target=TargetSpec.from_dict(data["target"]),
            event=data["event"],
            text=data["text"],
            ingested=data["ingested"],
            attempts=data["attempts"],
            not_before=data.get("not_before"),
        )


@dataclass(frozen=True, slots=True)
class QueueWrite:
    """Where a queue-like delivery goes and what it stores (its message id still to be made)."""

    queue: str
    body: str
    group_id: str | None = None
    deduplication_id: str | None = None

    def message(self) -> OutgoingMessage:
        """The message to store, with a fresh id."""
        return OutgoingMessage(
            id=str(uuid.uuid4()),
            body=self.body,
            group_id=self.group_id,
            deduplication_id=self.deduplication_id,
        )


def queue_write(delivery: Delivery, now: float) -> QueueWrite:
    """The queue a queue-like target writes to, and the body it stores there."""
    target = delivery.target
    if target.kind == QUEUE:
        if not target.resource.endswith(".fifo"):
            return QueueWrite(target.resource, delivery.text)
        event_id = delivery.event.get("id")
        return QueueWrite(target.resource, delivery.text, target.message_group_id, event_id)
    if target.kind == FUNCTION:
        try:
            payload: Any = json.loads(delivery.text)
        except ValueError:
            payload = delivery.text  # a string template's output reaches the handler as a str
        request = {"requestId": str(uuid.uuid4()), "payload": payload, "enqueuedAt": now}
        return QueueWrite(ASYNC_QUEUE_PREFIX + target.resource, json.dumps(request))
    assert target.kind == BUS
    return QueueWrite(ingress_queue(target.resource), delivery.text)


def is_queue_like(target: TargetSpec) -> bool:
    """Whether delivering to the target is a queue write (the router does those in one go)."""
    return target.kind in (QUEUE, FUNCTION, BUS)


GroupKey = tuple[int, str] | int


def commit_queue_deliveries(
    backend: Backend, deliveries: Sequence[Delivery], now: float
) -> list[tuple[Delivery, DeliveryFailed]]:
    """Store queue-like deliveries, in one commit when all are valid; returns the failures.

    Deliveries of the same body of the same event to standard queues share one stored message,
    checked once per queue size limit.
    """
    failures: list[tuple[Delivery, DeliveryFailed]] = []
    specs = QueueSpecs(backend)
    groups: dict[GroupKey, tuple[OutgoingMessage, list[QueueDelivery], list[Delivery]]] = {}
    checked: dict[tuple[GroupKey, int], OutgoingMessage] = {}
    for position, delivery in enumerate(deliveries):
        write = queue_write(delivery, now)
        shared = write.group_id is None and write.deduplication_id is None
        key: GroupKey = (id(delivery.event), write.body) if shared else position
        group = groups.get(key)
        message = write.message() if group is None else group[0]
        try:
            spec = specs.get(write.queue)
            check_key = (key, spec.max_message_size if shared else -1)
            stored = checked.get(check_key) if shared else None
            if stored is None:
                stored = checked[check_key] = check_send(spec, message)
        except FanstackError as error:
            failures.append((delivery, classify(error)))
            continue
        if group is None:
            group = groups[key] = (stored, [], [])
        group[1].append(QueueDelivery(write.queue, deduplication_id=stored.deduplication_id))
        group[2].append(delivery)
    publications = [(Publication(msg, queues), members) for msg, queues, members in groups.values()]
    if not publications:
        return failures
    try:
        backend.commit([publication for publication, _ in publications])
    except FanstackError:
        for publication, members in publications:  # find out which one failed
            try:
                backend.commit([publication])
            except FanstackError as error:
                failures.extend((delivery, classify(error)) for delivery in members)
    return failures


class QueueSpecs:
    """Queue specs read once per routed batch, however many deliveries go to each queue."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._specs: dict[str, QueueSpec | FanstackError] = {}

    def get(self, name: str) -> QueueSpec:
        """The queue's spec (its error, such as QueueDoesNotExist, raised again each time)."""
        spec = self._specs.get(name)
        if spec is None:
            try:
                spec = self.backend.get_queue(name)
            except FanstackError as error:
                spec = error
            self._specs[name] = spec
        if isinstance(spec, FanstackError):
            raise spec
        return spec


def deliver(backend: Backend, delivery: Delivery, caller: ApiCaller, now: float) -> None:
    """Deliver one event to its target now; raises DeliveryFailed."""
    target = delivery.target
    if target.kind == TOPIC:
        try:
            [result] = backend.publish(target.resource, [PublishRequest(body=delivery.text)])
        except FanstackError as error:
            raise classify(error) from error
        if isinstance(result, FanstackError):
            raise classify(result)
    elif target.kind == API:
        caller.call(target, delivery.text)
    elif target.kind == WORKFLOW:
        start_workflow(backend, delivery)
    else:
        failures = commit_queue_deliveries(backend, [delivery], now)
        if failures:
            raise failures[0][1]


def start_workflow(backend: Backend, delivery: Delivery) -> None:
    """Start an execution with the event as its input, named after the event and the target
    (a delivery made twice starts it once)."""
    try:
        payload: Any = json.loads(delivery.text)
    except ValueError:
        payload = delivery.text
    target = delivery.target
    digest = hashlib.sha256(f"{delivery.rule_arn}|{target.id}".encode()).hexdigest()[:12]
    name = f"{digest}-{delivery.event.get('id', '')}"[:80]
    try:
        start_stored(backend, target.resource, payload, name)
    except StateMachineDoesNotExist as error:
        raise DeliveryFailed("NO_RESOURCE", str(error), retryable=False) from error
    except ExecutionAlreadyExists:
        pass  # started by an earlier delivery of this event, with another input: it stands
    except FanstackError as error:
        raise classify(error) from error


def schedule_retry(
    backend: Backend,
    queue: str,
    delivery: Delivery,
    rng: random.Random,
    *,
    now: float,
    delay: float | None = None,
) -> None:
    """Put a delivery in retry queue `queue`: after `delay` seconds if given, else after a
    backoff if it was attempted, else at once."""
    if delay is None:
        delay = 0 if delivery.attempts == 0 else RETRY_BACKOFF.delay(delivery.attempts, rng)
    message = OutgoingMessage(
        id=str(uuid.uuid4()), body=delivery.to_json(), delay_seconds=min(math.ceil(delay), 900)
    )
    [result] = backend.send(queue, [message])
    if isinstance(result, FanstackError):
        raise result


def queue_deliveries(
    backend: Backend, queue: str, deliveries: Sequence[tuple[Delivery, float]]
) -> None:
    """Put deliveries in retry queue `queue` together, each after its delay (seconds)."""
    messages = [
        OutgoingMessage(
            id=str(uuid.uuid4()),
            body=delivery.to_json(),
            delay_seconds=min(math.ceil(delay), 900) if delay > 0 else None,
        )
        for delivery, delay in deliveries
    ]
    for result in backend.send(queue, messages):
        if isinstance(result, FanstackError):
            raise result


def exhausted(delivery: Delivery, now: float) -> str | None:
    """Which limit ends this delivery's retries, if one does (before another attempt)."""
    if now - delivery.ingested > delivery.target.maximum_event_age:
        return MAX_AGE_EXHAUSTED
    if delivery.attempts > delivery.target.maximum_retry_attempts:
        return MAX_ATTEMPTS_EXHAUSTED
    return None


def dead_letter(
    backend: Backend, delivery: Delivery, failure: DeliveryFailed, condition: str | None
) -> None:
    """Send the event to the target's DLQ with EventBridge's attributes (or log its loss)."""
    target = delivery.target
    fields = {
        "rule": delivery.rule_arn,
        "target": target.arn,
        "event_id": delivery.event.get("id"),
        "error_code": failure.code,
        "error": str(failure),
        "attempts": delivery.attempts,
    }
    if target.dead_letter is None:
        log.error("event not delivered and the target has no dead-letter queue", extra=fields)
        return
    attributes = {
        "RULE_ARN": delivery.rule_arn,
        "TARGET_ARN": target.arn,
        "ERROR_CODE": failure.code,
        "ERROR_MESSAGE": str(failure)[:1000],
        "RETRY_ATTEMPTS": str(max(delivery.attempts - 1, 0)),
    }
    if condition is not None:
        attributes["EXHAUSTED_RETRY_CONDITION"] = condition
    message = OutgoingMessage(
        id=str(uuid.uuid4()),
        body=json.dumps(delivery.event, separators=(",", ":")),
        attributes={k: MessageAttribute("String", v) for k, v in attributes.items()},
    )
    try:
        [result] = backend.send(target.dead_letter, [message])
    except FanstackError as error:
        result = error
    if isinstance(result, FanstackError):
        log.error("event not delivered and not dead-lettered: %s", result, extra=fields)
    else:
        log.warning("event dead-lettered", extra=fields)
