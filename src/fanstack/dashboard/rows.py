"""What each dashboard page shows, read from the app and its store as plain rows.

Every function here does blocking I/O on the backend: call it off the event loop. Queues named
`fanstack-...` are fanstack's own (async invocations, scheduler retries, ...) and are listed
apart from the app's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fanstack.core.message import ReceivedMessage
from fanstack.core.records import QueueStats
from fanstack.core.specs import QueueSpec, SubscriptionSpec
from fanstack.dashboard.figures import percentile
from fanstack.observability.metrics import FunctionFigures, metrics, shared_directory
from fanstack.observability.metrics import enabled as metrics_enabled

if TYPE_CHECKING:
    from fanstack.app import App

INTERNAL_PREFIX = "fanstack-"
RECENT_EXECUTIONS = 20


@dataclass(frozen=True, slots=True)
class QueueRow:
    """A queue with its depths, and the queues it dead-letters for."""

    spec: QueueSpec
    stats: QueueStats
    dead_letter_for: tuple[str, ...] = ()

    @property
    def internal(self) -> bool:
        """Whether fanstack made the queue for itself."""
        return self.spec.name.startswith(INTERNAL_PREFIX)


@dataclass(frozen=True, slots=True)
class FunctionRow:
    """A function's counts since this process started, and its latency percentiles."""

    name: str
    concurrency: int
    timeout: float
    invocations: int = 0
    errors: int = 0
    timeouts: int = 0
    crashes: int = 0
    throttles: int = 0
    cold_starts: int = 0
    p50: float | None = None
    p99: float | None = None
    workers: int = 0


@dataclass(frozen=True, slots=True)
class Failure:
    """One recent failed invocation."""

    function: str
    time: float
    invocation_id: str
    error_type: str
    error_message: str


@dataclass(frozen=True, slots=True)
class TopicRow:
    """A topic and its subscriptions."""

    name: str
    fifo: bool
    subscriptions: list[SubscriptionRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    """A subscription, its filter policy pretty-printed."""

    queue: str
    filter_scope: str
    filter_policy: str | None
    raw: bool


def queue_rows(app: App) -> list[QueueRow]:
    """Every queue in the store, by name."""
    backend = app.backend
    specs = sorted(backend.list_queues(), key=lambda spec: spec.name)
    sources: dict[str, list[str]] = {}
    for spec in specs:
        if spec.dead_letter is not None:
            sources.setdefault(spec.dead_letter, []).append(spec.name)
    return [
        QueueRow(spec, backend.stats(spec.name), tuple(sources.get(spec.name, ())))
        for spec in specs
    ]


def queue_row(app: App, name: str) -> QueueRow:
    """One queue (QueueDoesNotExist if absent)."""
    backend = app.backend
    spec = backend.get_queue(name)
    sources = tuple(s.name for s in backend.list_queues() if s.dead_letter == name)
    return QueueRow(spec, backend.stats(name), sources)


def peek(app: App, queue: str, limit: int) -> list[ReceivedMessage]:
    """Up to `limit` messages of the queue, oldest first, left exactly as they were."""
    return app.backend.peek(queue, limit)


def topic_rows(app: App) -> list[TopicRow]:
    """Every topic in the store with its subscriptions, by name."""
    backend = app.backend
    subscriptions: dict[str, list[SubscriptionRow]] = {}
    for spec in backend.list_subscriptions():
        subscriptions.setdefault(spec.topic, []).append(_subscription_row(spec))
    return [
        TopicRow(topic.name, topic.fifo, subscriptions.get(topic.name, []))
        for topic in sorted(backend.list_topics(), key=lambda t: t.name)
    ]


def _subscription_row(spec: SubscriptionSpec) -> SubscriptionRow:
    policy = None
    if spec.filter_policy:
        try:
            policy = json.dumps(json.loads(spec.filter_policy), indent=2, sort_keys=True)
        except ValueError:
            policy = spec.filter_policy
    return SubscriptionRow(spec.queue, spec.filter_scope, policy, spec.raw)


def function_rows(app: App) -> list[FunctionRow]:
    """Every declared function with what its worker pool in this process counted or, where
    another process invokes it (the server processes of `--workers N`), what all processes
    counted together (percentiles estimated from the duration histogram)."""
    pools = app.runtime.pools()
    shared = _shared_figures(pools)
    rows = []
    for name, function in sorted(app.functions.items()):
        pool = pools.get(name)
        base = FunctionRow(name, function.spec.concurrency, function.spec.timeout)
        if pool is None:
            figures = shared.get(name)
            if figures is None:
                rows.append(base)
                continue
            rows.append(
                FunctionRow(
                    name,
                    base.concurrency,
                    base.timeout,
                    invocations=figures.invocations,
                    errors=figures.errors,
                    throttles=figures.throttles,
                    cold_starts=figures.cold_starts,
                    p50=figures.quantile(0.5),
                    p99=figures.quantile(0.99),
                )
            )
            continue
        stats = pool.stats
        durations = list(stats.durations)
        rows.append(
            FunctionRow(
                name,
                base.concurrency,
                base.timeout,
                invocations=stats.invocations,
                errors=stats.errors,
                timeouts=stats.timeouts,
                crashes=stats.crashes,
                throttles=stats.throttles,
                cold_starts=stats.cold_starts,
                p50=percentile(durations, 0.5),
                p99=percentile(durations, 0.99),
                workers=pool.size,
            )
        )
    return rows


def _shared_figures(pools: Mapping[str, Any]) -> dict[str, FunctionFigures]:
    """Functions counted by other processes sharing this one's metrics (none otherwise)."""
    if shared_directory() is None or not metrics_enabled():
        return {}
    return {name: f for name, f in metrics().function_figures().items() if name not in pools}


def recent_failures(app: App) -> list[Failure]:
    """The recent failed invocations of every function, newest first."""
    failures = [
        Failure(
            function=name,
            time=float(entry.get("time", 0.0)),
            invocation_id=str(entry.get("invocation_id", "")),
            error_type=str(entry.get("error_type", "")),
            error_message=str(entry.get("error_message", "")),
        )
        for name, pool in app.runtime.pools().items()
        for entry in list(pool.stats.recent_failures)
    ]
    return sorted(failures, key=lambda failure: failure.time, reverse=True)


def throughput(app: App) -> dict[str, Any]:
    """Cumulative counts for the live chart and tables (the browser turns them into rates)."""
    pools = app.runtime.pools()
    functions = {
        name: {"invocations": figures.invocations, "errors": figures.errors}
        for name, figures in _shared_figures(pools).items()
    }
    functions.update(
        {
            name: {"invocations": pool.stats.invocations, "errors": pool.stats.errors}
            for name, pool in pools.items()
        }
    )
    queues = {row.spec.name: row.stats.to_dict() for row in queue_rows(app)}
    return {
        "time": time.time(),
        "invocations": sum(f["invocations"] for f in functions.values()),
        "errors": sum(f["errors"] for f in functions.values()),
        "functions": functions,
        "queues": queues,
    }


def bus_rows(app: App) -> list[dict[str, Any]]:
    """Every declared bus with its rules (pattern, targets, state) and archives."""
    rows = []
    for name, bus in sorted(app.buses.declared.items()):
        rules = [
            {
                "name": rule.name,
                "enabled": rule.enabled,
                "pattern": rule.schedule_expression or _pretty(rule.event_pattern),
                "targets": [f"{t.kind}:{t.resource}" for t in rule.targets],
            }
            for rule in bus.rules()
        ]
        archives = [archive.name for archive in bus.archives()]
        rows.append({"name": name, "rules": rules, "archives": archives})
    return rows


def schedule_rows(app: App) -> list[dict[str, Any]]:
    """Every stored schedule: expression, target, state and next fire."""
    rows = []
    for schedule in app.schedules.all():
        spec = schedule.describe()
        state = schedule.state()
        rows.append(
            {
                "name": spec.name,
                "expression": spec.expression,
                "timezone": spec.timezone,
                "target": f"{spec.target.kind}:{spec.target.resource}",
                "enabled": spec.enabled,
                "fired": state.fired,
                "skipped": state.skipped,
                "last_fire": state.last_fire,
                "next_fire": None if state.done or not spec.enabled else state.next_fire,
            }
        )
    return rows


def workflow_rows(app: App) -> list[dict[str, Any]]:
    """Every declared workflow: its type, executions by status and the latest executions."""
    rows = []
    for name, workflow in sorted(app.workflows.declared.items()):
        executions = sorted(workflow.executions(), key=lambda r: r.start, reverse=True)
        counts: dict[str, int] = {}
        for record in executions:
            counts[record.status] = counts.get(record.status, 0) + 1
        rows.append(
            {
                "name": name,
                "type": workflow.type,
                "states": len(workflow.machine.states),
                "counts": dict(sorted(counts.items())),
                "recent": executions[:RECENT_EXECUTIONS],
            }
        )
    return rows


def _pretty(pattern: str | Mapping[str, Any]) -> str:
    value = json.loads(pattern) if isinstance(pattern, str) else pattern
    return json.dumps(value, indent=2, sort_keys=True)
