"""Routing a bus's events to its rules' targets, and retrying what failed: two worker services.

`Router` leases batches of events from the bus's ingress queue, matches each against the bus's
rules at once (a `RuleIndex`, rebuilt only when the rules change), renders each target's input,
stores the queue-like deliveries of the whole batch in one commit, publishes to topic targets,
hands HTTP targets and failures to the retry queue, keeps matching events in the bus's
archives, and only then deletes the batch: a crash anywhere re-routes the batch (at least once,
never lost). `Retrier` works the retry queue. Several processes run both and share the work.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fanstack.backends.base import Backend
from fanstack.bus.api_destination import ApiCaller
from fanstack.bus.catalog import Catalog
from fanstack.bus.delivery import (
    MAX_AGE_EXHAUSTED,
    Delivery,
    commit_queue_deliveries,
    dead_letter,
    deliver,
    exhausted,
    is_queue_like,
    retry_queue,
    schedule_retry,
)
from fanstack.bus.failures import DeliveryFailed
from fanstack.core.archives import ArchiveSpec, archive_key
from fanstack.core.errors import FanstackError, InputTransformError
from fanstack.core.event_pattern import EventPattern
from fanstack.core.events import REPLAY_NAME, ingress_queue, iso_seconds
from fanstack.core.message import ReceivedMessage
from fanstack.core.rule_index import RuleIndex
from fanstack.core.rules import API, RuleSpec
from fanstack.observability.metrics import counting

log = logging.getLogger("fanstack.bus")

POLL_WAIT = 1.0
ROUTE_VISIBILITY = 10  # routing a batch takes milliseconds; a dead router's batch returns soon
RETRY_VISIBILITY = 30
RULES_ATTRIBUTE = "fanstack.rules"  # on a replayed event: the only rules it may reach
RETRY_CONCURRENCY = 8
ROUTE_BATCH = 100
ROUTE_WINDOW = 0.005  # seconds


@dataclass(frozen=True, slots=True)
class BusView:
    """A bus's enabled rules compiled into one index, and its archives, at one version."""

    version: int | None
    rules: dict[str, RuleSpec]
    index: RuleIndex[str]
    archives: tuple[tuple[ArchiveSpec, EventPattern | None], ...]

    @classmethod
    def load(cls, catalog: Catalog, bus: str, version: int | None) -> BusView:
        """Read and compile the bus's rules and archives."""
        rules = {rule.name: rule for rule in catalog.rules(bus) if rule.enabled}
        index = RuleIndex((name, rule.pattern) for name, rule in rules.items())
        archives = tuple(
            (spec, EventPattern.parse(spec.event_pattern) if spec.event_pattern else None)
            for spec in catalog.archives(bus)
        )
        return cls(version, rules, index, archives)


class Router:
    """Routes the events of one bus (a worker service)."""

    def __init__(self, bus: str) -> None:
        self.bus = bus
        self.name = f"bus-{bus}-router"
        self.queue = ingress_queue(bus)
        self.rng = random.Random()
        self._view: BusView | None = None

    def run(self, backend: Backend, stopping: threading.Event) -> None:
        """Route batches until stopped."""
        catalog = Catalog(backend)
        spec = backend.get_queue(self.queue)
        while not stopping.is_set():
            # Up to ROUTE_BATCH events a lease: one lease, one commit and one delete for all.
            batch = backend.lease(spec, ROUTE_BATCH, ROUTE_VISIBILITY)
            if batch:
                self.route(backend, catalog, batch)
                if len(batch) < ROUTE_BATCH:
                    # A trickle: let a few milliseconds of events gather, so each lease,
                    # commit and delete serves many events rather than one request's worth.
                    stopping.wait(ROUTE_WINDOW)
            else:
                backend.wait(self.queue, POLL_WAIT)

    def view(self, catalog: Catalog) -> BusView:
        """The current rules and archives (reloaded when the bus's version moved)."""
        version = catalog.bus_version(self.bus)
        if self._view is None or self._view.version != version:
            self._view = BusView.load(catalog, self.bus, version)
        return self._view

    def route(self, backend: Backend, catalog: Catalog, batch: list[ReceivedMessage]) -> None:
        """Deliver one leased batch of events, then delete it."""
        view = self.view(catalog)
        now = backend.clock()
        local: list[Delivery] = []
        later: list[Delivery] = []
        for message in batch:
            event = json.loads(message.body)
            for delivery in self._deliveries(backend, view, message, event):
                (local if is_queue_like(delivery.target) else later).append(delivery)
            if REPLAY_NAME not in event:
                self._archive(catalog, view, message, event)
        _count_routed(self.bus, len(batch), [*local, *later])
        failures = commit_queue_deliveries(backend, local, now)
        for delivery in later:
            if delivery.target.kind == API:
                schedule_retry(backend, retry_queue(self.bus), delivery, self.rng, now=now)
                continue
            try:
                deliver(backend, delivery, ApiCaller(), now)
            except DeliveryFailed as error:
                failures.append((delivery, error))
        for delivery, failure in failures:
            settle_failure(backend, retry_queue(self.bus), delivery, failure, self.rng, now)
        backend.delete_messages(self.queue, [m.receipt_handle for m in batch])

    def _deliveries(
        self, backend: Backend, view: BusView, message: ReceivedMessage, event: dict[str, Any]
    ) -> list[Delivery]:
        only = _allowed_rules(message)
        ingested = message.sent_timestamp
        ingestion_time = iso_seconds(ingested)
        whole_event = message.body  # the event's JSON as stored: what most targets get
        deliveries: list[Delivery] = []
        for name in view.index.matching(event):
            if only is not None and name not in only:
                continue
            rule = view.rules[name]
            for target in rule.targets:
                try:
                    if target.input.whole_event:
                        text = whole_event
                    else:
                        text = target.input.render(
                            event,
                            rule_name=rule.name,
                            rule_arn=rule.arn,
                            ingestion_time=ingestion_time,
                        )
                except InputTransformError as error:
                    invalid = DeliveryFailed("INVALID_JSON", str(error), retryable=False)
                    failed = Delivery(rule.arn, target, event, "", ingested, attempts=1)
                    dead_letter(backend, failed, invalid, None)
                    continue
                deliveries.append(Delivery(rule.arn, target, event, text, ingested))
        return deliveries

    def _archive(
        self, catalog: Catalog, view: BusView, message: ReceivedMessage, event: dict[str, Any]
    ) -> None:
        for archive, pattern in view.archives:
            if pattern is None or pattern.matches(event):
                key = archive_key(event["time"], int(message.sent_timestamp * 1000), event["id"])
                catalog.archive_event(archive, key, event)


def _count_routed(bus: str, events: int, deliveries: Sequence[Delivery]) -> None:
    instruments = counting()
    if instruments is None:
        return
    instruments.events_routed.labels(bus).inc(events)
    for delivery in deliveries:
        instruments.event_deliveries.labels(*rule_labels(delivery.rule_arn)).inc()


def rule_labels(rule_arn: str) -> tuple[str, str]:
    """Bus and rule named by a rule's ARN (`...:rule/<bus>/<rule>`, `...:rule/<rule>` on the
    default bus)."""
    path = rule_arn.rpartition(":rule/")[2]
    bus, _, rule = path.rpartition("/")
    return bus or "default", rule


def settle_failure(
    backend: Backend,
    queue: str,
    delivery: Delivery,
    failure: DeliveryFailed,
    rng: random.Random,
    now: float,
) -> None:
    """After a failed attempt: retry later (through retry queue `queue`), or dead-letter when
    that cannot help or is over."""
    attempted = dataclasses.replace(delivery, attempts=delivery.attempts + 1)
    instruments = counting()
    if instruments is not None:
        instruments.event_delivery_failures.labels(*rule_labels(delivery.rule_arn)).inc()
    if not failure.retryable:
        dead_letter(backend, attempted, failure, None)
        return
    condition = exhausted(attempted, now)
    if condition is not None:
        dead_letter(backend, attempted, failure, condition)
        return
    schedule_retry(backend, queue, attempted, rng, now=now)


class Retrier:
    """Retries failed deliveries and makes HTTP deliveries from a retry queue (a worker service):
    a bus's (`Retrier(bus)`), or another one's, such as the scheduler's (`queue`, `name`)."""

    def __init__(
        self,
        bus: str,
        caller: ApiCaller | None = None,
        *,
        queue: str | None = None,
        name: str | None = None,
    ) -> None:
        self.bus = bus
        self.name = name or f"bus-{bus}-retrier"
        self.queue = queue or retry_queue(bus)
        self.caller = caller or ApiCaller()
        self.rng = random.Random()

    def run(self, backend: Backend, stopping: threading.Event) -> None:
        """Work the retry queue until stopped."""
        with ThreadPoolExecutor(RETRY_CONCURRENCY, thread_name_prefix=self.name) as pool:
            while not stopping.is_set():
                batch = backend.receive(
                    self.queue,
                    max_messages=10,
                    wait_seconds=POLL_WAIT,
                    visibility_timeout=RETRY_VISIBILITY,
                )
                rest = self.attempt_queue_writes(backend, batch)
                list(pool.map(lambda pair: self.attempt(backend, *pair), rest))

    def attempt_queue_writes(
        self, backend: Backend, batch: list[ReceivedMessage]
    ) -> list[tuple[ReceivedMessage, Delivery]]:
        """Make the batch's due queue-like deliveries in one commit (as the router does) and
        delete them together; the deliveries left to attempt one by one."""
        now = backend.clock()
        together: list[tuple[ReceivedMessage, Delivery]] = []
        rest: list[tuple[ReceivedMessage, Delivery]] = []
        for message in batch:
            delivery = Delivery.from_json(message.body)
            due = delivery.not_before is None or delivery.not_before <= now
            fresh = now - delivery.ingested <= delivery.target.maximum_event_age
            if due and fresh and is_queue_like(delivery.target):
                together.append((message, delivery))
            else:
                rest.append((message, delivery))
        if not together:
            return rest
        try:
            failures = commit_queue_deliveries(backend, [d for _, d in together], now)
            for delivery, failure in failures:
                settle_failure(backend, self.queue, delivery, failure, self.rng, now)
            backend.delete_messages(self.queue, [message.receipt_handle for message, _ in together])
        except FanstackError:
            log.exception("retrying %d deliveries failed; they will be tried again", len(together))
        return rest

    def attempt(
        self, backend: Backend, message: ReceivedMessage, delivery: Delivery | None = None
    ) -> None:
        """Try one delivery again; on failure retry later or dead-letter; then delete it."""
        delivery = delivery or Delivery.from_json(message.body)
        now = backend.clock()
        try:
            if delivery.not_before is not None and now < delivery.not_before:
                wait = delivery.not_before - now  # a timer longer than one delay: next link
                schedule_retry(backend, self.queue, delivery, self.rng, now=now, delay=wait)
            elif now - delivery.ingested > delivery.target.maximum_event_age:
                too_old = DeliveryFailed(
                    "TIMEOUT", "the event is older than the target's maximum_event_age",
                    retryable=False,
                )
                dead_letter(backend, delivery, too_old, MAX_AGE_EXHAUSTED)
            else:
                try:
                    deliver(backend, delivery, self.caller, now)
                except DeliveryFailed as failure:
                    settle_failure(backend, self.queue, delivery, failure, self.rng, now)
            backend.delete_messages(self.queue, [message.receipt_handle])
        except FanstackError:
            log.exception("retrying a delivery failed; it will be tried again", extra={
                "bus": self.bus, "target": delivery.target.id,
            })


def _allowed_rules(message: ReceivedMessage) -> set[str] | None:
    attribute = message.message_attributes.get(RULES_ATTRIBUTE)
    if attribute is None or attribute.string_value is None:
        return None
    return set(json.loads(attribute.string_value))

