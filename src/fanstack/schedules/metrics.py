"""The figures of every schedule, read from the store when `/metrics` is scraped.

A schedule's counts are kept with its progress (`store.ScheduleState`), so every process
reports the same, whichever of them fired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fanstack.backends.base import Backend
from fanstack.schedules.store import ScheduleStore


class ScheduleCollector(Collector):
    """Occurrences fired and skipped, next and last fire, and whether each schedule is on."""

    def __init__(self, backend: Callable[[], Backend]) -> None:
        self._backend = backend

    def collect(self) -> Iterator[Metric]:
        store = ScheduleStore(self._backend())
        states = store.states()
        fired = CounterMetricFamily(
            "fanstack_schedule_occurrences_fired",
            "Occurrences of a schedule that fired (each once, whichever process fired it).",
            labels=["schedule"],
        )
        skipped = CounterMetricFamily(
            "fanstack_schedule_occurrences_skipped",
            "Occurrences of a schedule that were missed and not owed (outside their window).",
            labels=["schedule"],
        )
        enabled = GaugeMetricFamily(
            "fanstack_schedule_enabled", "1 if a schedule is enabled, else 0.", labels=["schedule"]
        )
        last_fire = GaugeMetricFamily(
            "fanstack_schedule_last_fire_timestamp_seconds",
            "The scheduled time of a schedule's last fired occurrence (Unix seconds).",
            labels=["schedule"],
        )
        next_fire = GaugeMetricFamily(
            "fanstack_schedule_next_fire_timestamp_seconds",
            "When a schedule fires next (Unix seconds), as its scheduler last computed it.",
            labels=["schedule"],
        )
        for spec in store.schedules():
            state = states.get(spec.name)
            enabled.add_metric([spec.name], 1.0 if spec.enabled else 0.0)
            fired.add_metric([spec.name], state.fired if state else 0)
            skipped.add_metric([spec.name], state.skipped if state else 0)
            if state is not None and state.last_fire is not None:
                last_fire.add_metric([spec.name], state.last_fire)
            if state is not None and state.next_fire is not None and not state.done:
                next_fire.add_metric([spec.name], state.next_fire)
        yield from (fired, skipped, enabled, last_fire, next_fire)
