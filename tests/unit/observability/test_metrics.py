"""Figures read back from the process's own metrics: counts by function, duration quantiles."""

from __future__ import annotations

import math

import pytest

from fanstack.core.outcome import Outcome
from fanstack.observability.function_meter import FunctionMeter
from fanstack.observability.metrics import Metrics, histogram_quantile


def test_histogram_quantile_interpolates_inside_the_bucket_as_prometheus_does() -> None:
    buckets = [(0.1, 10), (0.5, 30), (1.0, 40), (math.inf, 40)]
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.3)
    assert histogram_quantile(1.0, buckets) == pytest.approx(1.0)
    assert histogram_quantile(0.5, [(0.1, 0), (math.inf, 0)]) is None
    assert histogram_quantile(0.99, [(0.1, 0), (math.inf, 5)]) == pytest.approx(0.1)


def test_function_figures_add_up_what_the_meter_counted() -> None:
    instruments = Metrics()
    meter = FunctionMeter("quote", instruments)
    for duration in (0.004, 0.02, 0.02, 0.2):
        meter.started()
        meter.finished(Outcome(ok=True, duration=duration))
    meter.started()
    failed = {"errorType": "ValueError", "errorMessage": "no", "stackTrace": []}
    meter.finished(Outcome(ok=False, error=failed, duration=0.01))
    meter.throttled()
    meter.cold_start(0.5)
    figures = instruments.function_figures()["quote"]
    assert (figures.invocations, figures.errors, figures.throttles, figures.cold_starts) == (
        5, 1, 1, 1,
    )  # fmt: skip
    p50 = figures.quantile(0.5)
    assert p50 is not None and 0.01 <= p50 <= 0.025
    text = instruments.exposition().decode()
    assert 'fanstack_function_errors_total{error_type="ValueError",function="quote"} 1.0' in text
    assert 'fanstack_function_concurrency{function="quote"} 0.0' in text
