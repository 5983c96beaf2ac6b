"""Prometheus metrics of fanstack processes: what they published, delivered, invoked and served.

Counters and histograms are counted where things happen, with `prometheus_client`. Processes
that serve one app (the server processes of `--workers N`, the one running consumers, the
function workers it starts) share one multiprocess directory (`share_between_processes`, the
library's `PROMETHEUS_MULTIPROC_DIR`), so whichever of them answers `/metrics` reports the sum.
Queue figures are not counted at all: `QueueCollector` reads them from the store when scraped,
so every process, on every machine, reports the same depths.

Set `FANSTACK_METRICS=off` to count nothing (the cost of counting is measured in
`benchmarks/`).
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import shutil
import tempfile
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from fanstack.backends.base import Backend
from fanstack.observability.batched_values import batched_value_class, flush

log = logging.getLogger("fanstack.metrics")

METRICS_ENV = "FANSTACK_METRICS"
DIRECTORY_PREFIX = "fanstack-metrics-"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

# Seconds: an invocation from a few milliseconds to Lambda's 15 minutes.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def enabled() -> bool:
    """Whether this process counts (`FANSTACK_METRICS` is not `off`, `0` or `false`)."""
    return os.environ.get(METRICS_ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


def shared_directory() -> str | None:
    """The multiprocess directory this process writes its figures to, if any."""
    return os.environ.get(MULTIPROCESS_ENV) or None


def share_between_processes(directory: str) -> None:
    """Count into files in `directory`, as will every process started from this one after.

    Call it before anything is counted: figures counted before stay out of the sum.
    """
    os.makedirs(directory, exist_ok=True)
    os.environ[MULTIPROCESS_ENV] = directory
    values.ValueClass = batched_value_class()


def share_while_serving() -> None:
    """Share counts with the processes this one starts (unless already shared, or metrics are
    off), in a directory of its own, removed when this process exits."""
    if not enabled() or shared_directory() is not None:
        return
    _remove_orphaned_directories()
    directory = tempfile.mkdtemp(prefix=f"{DIRECTORY_PREFIX}{os.getpid()}-")
    share_between_processes(directory)
    atexit.register(shutil.rmtree, directory, ignore_errors=True)


def _remove_orphaned_directories() -> None:
    """Remove the directories of serving processes that died without cleaning up (kill -9)."""
    root = Path(tempfile.gettempdir())
    for directory in root.glob(f"{DIRECTORY_PREFIX}*-*"):
        pid = directory.name.removeprefix(DIRECTORY_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class Metrics:
    """The instruments of one process; `metrics()` gives the process's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._collectors: list[Collector] = []
        registry = self.registry
        self.published = Counter(
            "fanstack_topic_messages_published",
            "Messages published to a topic (each once, whatever its fan-out).",
            ["topic"],
            registry=registry,
        )
        self.sent = Counter(
            "fanstack_queue_messages_sent",
            "Messages stored in a queue: sent to it, or delivered to it by a topic.",
            ["queue"],
            registry=registry,
        )
        self.delivered = Counter(
            "fanstack_queue_messages_delivered",
            "Messages handed out by receives (each receive of a message counts).",
            ["queue"],
            registry=registry,
        )
        self.deleted = Counter(
            "fanstack_queue_messages_deleted",
            "Messages deleted by their receipt handle.",
            ["queue"],
            registry=registry,
        )
        self.redriven = Counter(
            "fanstack_queue_messages_redriven",
            "Messages moved back from a queue's dead-letter queue to it.",
            ["queue"],
            registry=registry,
        )
        self.invocations = Counter(
            "fanstack_function_invocations",
            "Function invocations, whatever their outcome.",
            ["function"],
            registry=registry,
        )
        self.errors = Counter(
            "fanstack_function_errors",
            "Failed invocations, by error type (the handler's exception, Runtime.Timeout, ...).",
            ["function", "error_type"],
            registry=registry,
        )
        self.throttles = Counter(
            "fanstack_function_throttles",
            "Invocations refused at the function's concurrency limit.",
            ["function"],
            registry=registry,
        )
        self.duration = Histogram(
            "fanstack_function_duration_seconds",
            "Invocation duration, cold starts included.",
            ["function"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.cold_starts = Histogram(
            "fanstack_function_cold_start_duration_seconds",
            "Cold starts (a new worker process) and how long each took.",
            ["function"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.concurrency = Gauge(
            "fanstack_function_concurrency",
            "Invocations running now.",
            ["function"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.requests = Counter(
            "fanstack_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "fanstack_http_request_duration_seconds",
            "Time from a request's arrival to its response's start.",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )

        self.events_routed = Counter(
            "fanstack_bus_events_routed",
            "Events a bus routed (matched against its rules), replays included.",
            ["bus"],
            registry=registry,
        )
        self.event_deliveries = Counter(
            "fanstack_bus_deliveries",
            "Events bound for a rule's targets, one per matched target (first attempts).",
            ["bus", "rule"],
            registry=registry,
        )
        self.event_delivery_failures = Counter(
            "fanstack_bus_delivery_failures",
            "Failed delivery attempts to a rule's targets (retried or dead-lettered after).",
            ["bus", "rule"],
            registry=registry,
        )
        self.executions_started = Counter(
            "fanstack_workflow_executions_started",
            "Workflow executions started.",
            ["workflow"],
            registry=registry,
        )
        self.executions_ended = Counter(
            "fanstack_workflow_executions_ended",
            "Workflow executions ended, by status (SUCCEEDED, FAILED, TIMED_OUT, ABORTED).",
            ["workflow", "status"],
            registry=registry,
        )

    def add_collector(self, collector: Collector) -> None:
        """Report `collector`'s figures too (read when scraped: queue depths, buses, ...)."""
        self._collectors.append(collector)

    def remove_collector(self, collector: Collector) -> None:
        """Stop reporting `collector`'s figures."""
        if collector in self._collectors:
            self._collectors.remove(collector)

    def exposition(self) -> bytes:
        """Every figure in Prometheus' text format: all processes' counts, then collectors'."""
        registry = self._counted()
        for collector in list(self._collectors):
            registry.register(_Guarded(collector))
        return prometheus_client.generate_latest(registry)

    def function_figures(self) -> dict[str, FunctionFigures]:
        """Each function's counts, summed over the processes that share them (the dashboard's
        view where the invoking process is another one)."""
        figures: dict[str, dict[str, Any]] = {}

        def of(function: str) -> dict[str, Any]:
            return figures.setdefault(function, {"buckets": {}})

        for family in self._counted().collect():
            for sample in family.samples:
                function = sample.labels.get("function")
                if function is None:
                    continue
                field = _FUNCTION_SAMPLES.get(sample.name)
                if field is not None:
                    of(function)[field] = of(function).get(field, 0) + int(sample.value)
                elif sample.name == "fanstack_function_duration_seconds_bucket":
                    upper = float(sample.labels["le"])
                    buckets = of(function)["buckets"]
                    buckets[upper] = buckets.get(upper, 0) + int(sample.value)
        return {
            function: FunctionFigures(
                invocations=found.get("invocations", 0),
                errors=found.get("errors", 0),
                throttles=found.get("throttles", 0),
                cold_starts=found.get("cold_starts", 0),
                buckets=tuple(sorted(found["buckets"].items())),
            )
            for function, found in figures.items()
        }

    def _counted(self) -> CollectorRegistry:
        """A registry of what was counted: every process's, when they share a directory
        (this one's written to its file first)."""
        directory = shared_directory()
        registry = CollectorRegistry(auto_describe=False)
        if directory is not None:
            flush()
            MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        else:
            registry.register(_Forward(self.registry))
        return registry


_FUNCTION_SAMPLES = {
    "fanstack_function_invocations_total": "invocations",
    "fanstack_function_errors_total": "errors",
    "fanstack_function_throttles_total": "throttles",
    "fanstack_function_cold_start_duration_seconds_count": "cold_starts",
}


@dataclass(frozen=True, slots=True)
class FunctionFigures:
    """A function's counts and its duration histogram (cumulative counts by upper bound)."""

    invocations: int
    errors: int
    throttles: int
    cold_starts: int
    buckets: tuple[tuple[float, int], ...]

    def quantile(self, fraction: float) -> float | None:
        """The duration below which `fraction` of invocations fell, estimated from the
        histogram as Prometheus' histogram_quantile does (None before any invocation)."""
        return histogram_quantile(fraction, self.buckets)


def histogram_quantile(fraction: float, buckets: Sequence[tuple[float, int]]) -> float | None:
    """Linear interpolation inside the bucket holding the rank (the +Inf bucket answers with
    the highest finite bound)."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = fraction * buckets[-1][1]
    lower, below = 0.0, 0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


class _Forward(Collector):
    """Another registry's figures, inside the registry being exposed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


class _Guarded(Collector):
    """A collector whose failure costs only its own figures, never the scrape."""

    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    def collect(self) -> Iterable[Metric]:
        try:
            return list(self._collector.collect())
        except Exception:  # a store that is down must not take the other figures with it
            log.warning("a metrics collector failed", exc_info=True)
            return []


class QueueCollector(Collector):
    """Depths, ages and counts of every queue, read from the store when scraped."""

    def __init__(self, backend: Callable[[], Backend]) -> None:
        self._backend = backend

    def collect(self) -> Iterator[Metric]:
        backend = self._backend()
        messages = GaugeMetricFamily(
            "fanstack_queue_messages",
            "Messages in a queue by state: visible, in_flight (received, not deleted), delayed.",
            labels=["queue", "state"],
        )
        oldest = GaugeMetricFamily(
            "fanstack_queue_oldest_message_age_seconds",
            "Age of the oldest message in a queue (0 when it is empty).",
            labels=["queue"],
        )
        expired = CounterMetricFamily(
            "fanstack_queue_messages_expired",
            "Messages dropped at the end of the queue's retention period, since it was created.",
            labels=["queue"],
        )
        dead_lettered = CounterMetricFamily(
            "fanstack_queue_messages_dead_lettered",
            "Messages moved from a queue to its dead-letter queue, since it was created.",
            labels=["queue"],
        )
        for spec in backend.list_queues():
            stats = backend.stats(spec.name)
            messages.add_metric([spec.name, "visible"], stats.visible)
            messages.add_metric([spec.name, "in_flight"], stats.in_flight)
            messages.add_metric([spec.name, "delayed"], stats.delayed)
            oldest.add_metric([spec.name], stats.oldest_age or 0.0)
            expired.add_metric([spec.name], stats.expired)
            dead_lettered.add_metric([spec.name], stats.dead_lettered)
        yield from (messages, oldest, expired, dead_lettered)


if shared_directory() is not None:  # started by a process that shares its counts
    # prometheus_client made its multiprocess class at import, and instruments made before
    # this one use it: batching that class keeps one writer of this process's file.
    existing = values.ValueClass
    values.ValueClass = batched_value_class(
        existing if getattr(existing, "_multiprocess", False) else None
    )

_lock = threading.Lock()
_metrics: Metrics | None = None


def metrics() -> Metrics:
    """This process's instruments, created on first use."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = Metrics()
    return _metrics


def counting() -> Metrics | None:
    """This process's instruments, or None when metrics are off."""
    return metrics() if enabled() else None


def label_cache(counter: Any) -> Callable[..., Callable[[float], None]]:
    """Per label values, what adds an amount to that child of `counter`: its value's own `inc`,
    remembered per label values (`labels()` takes a lock each call), without the checks
    prometheus_client's `Counter.inc` makes on every call (the child has all its labels, and
    fanstack never adds a negative amount). With batched values (`batched_values`) that is an
    append in memory."""
    children: dict[tuple[str, ...], Callable[[float], None]] = {}

    def child(*labels: str) -> Callable[[float], None]:
        found = children.get(labels)
        if found is None:
            found = children[labels] = counter.labels(*labels)._value.inc
        return found

    return child


def observer(histogram: Any) -> Callable[[float], None]:
    """What observes an amount in `histogram` (a child with all its labels), as its `observe`
    does without its checks: the sum, and the first bucket whose bound holds the amount."""
    add_to_sum = histogram._sum.inc
    buckets = [bucket.inc for bucket in histogram._buckets]
    bounds = list(histogram._upper_bounds)  # ascending, +Inf last

    def observe(amount: float) -> None:
        add_to_sum(amount)
        if amount == amount:  # NaN is in no bucket, as prometheus_client has it
            buckets[bisect_left(bounds, amount)](1.0)

    return observe
