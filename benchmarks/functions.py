"""Functions throughput and latency: the fan-out workload consumed by no-op handlers.

1 topic -> 5 subscriber queues (one filtered to a third), ~1 KB JSON bodies, each queue consumed
by a no-op function through the worker pool (batches of 10). Measures:

- end-to-end events/s: publish N events in batches of 10, until every delivery was handled;
- publish-to-handler latency p50/p99 at a fixed offered rate;
- the ceiling beside it: the same publish and drain with batch receive + batch delete and no
  functions, in the same run.

    python benchmarks/functions.py --events 5000 --rate 1000

A run fails (exit 1, the reason on stderr, no JSON line) when a publish or delete fails, a
handler fails, crashes or times out, the queues do not empty for 120 s, or the handled records
or drained deliveries are not the ones published.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

from fanstack import App
from fanstack.runtime.logs import configure_logging

QUEUES = ("process", "notify", "delivery", "reports", "compliance")
MARKETS = ("eu", "us", "ru")
BATCH = 10
LATENCY_DIR = "FANSTACK_BENCH_LATENCY_DIR"
STALL_S = 120.0  # queues that do not shrink this long fail the run


def fail(text: str) -> NoReturn:
    raise SystemExit(f"functions: FAILED: {text}")


def expected_deliveries(start: int, count: int) -> int:
    """Deliveries of events start..start+count: 4 queues each, and compliance for market ru."""
    return sum(4 + (MARKETS[n % 3] == "ru") for n in range(start, start + count))


def noop(event: dict[str, Any], context: Any) -> None:
    """A no-op handler that only notes how long each record took to arrive."""
    directory = os.environ.get(LATENCY_DIR)
    if not directory:
        return
    now = time.time()
    lines = "".join(f"{now - json.loads(r['body'])['t']:.6f}\n" for r in event["Records"])
    with open(Path(directory) / f"{os.getpid()}.txt", "a") as sink:
        sink.write(lines)


def body(n: int) -> str:
    filler = "x" * 860
    return json.dumps({"order_id": f"o-{n}", "t": time.time(), "note": filler})


def build(data_dir: Path, *, functions: bool, concurrency: int) -> tuple[App, Any]:
    app = App("bench-functions", data_dir=data_dir)
    orders = app.topic("orders")
    for name in QUEUES:
        policy = {"market": ["ru"]} if name == "compliance" else None
        if functions:
            app.subscriber(
                orders, queue=name, filter_policy=policy, raw=True, concurrency=concurrency
            )(HANDLERS[name])
        else:
            queue = app.queue(name)
            orders.subscribe(queue, filter_policy=policy, raw=True)
    app.backend  # noqa: B018 - provision outside the timed part
    return app, orders


def noop_process(event: dict[str, Any], context: Any) -> None:
    """No-op consumer of `process`."""
    noop(event, context)


def noop_notify(event: dict[str, Any], context: Any) -> None:
    """No-op consumer of `notify`."""
    noop(event, context)


def noop_delivery(event: dict[str, Any], context: Any) -> None:
    """No-op consumer of `delivery`."""
    noop(event, context)


def noop_reports(event: dict[str, Any], context: Any) -> None:
    """No-op consumer of `reports`."""
    noop(event, context)


def noop_compliance(event: dict[str, Any], context: Any) -> None:
    """No-op consumer of `compliance`."""
    noop(event, context)


HANDLERS = {
    "process": noop_process,
    "notify": noop_notify,
    "delivery": noop_delivery,
    "reports": noop_reports,
    "compliance": noop_compliance,
}


def publish(orders: Any, start: int, count: int) -> None:
    for first in range(start, start + count, BATCH):
        entries = [
            {"id": str(n), "body": body(n), "attributes": {"market": MARKETS[n % 3]}}
            for n in range(first, min(first + BATCH, start + count))
        ]
        result = orders.publish_batch(entries)
        if not result.ok:
            fail(f"publish_batch failed: {result.failed}")


def pending(app: App) -> int:
    total = 0
    for name in QUEUES:
        stats = app.queue_for(name).stats()
        total += stats.visible + stats.in_flight + stats.delayed
    return total


def wait_handled(app: App, interval: float) -> None:
    """Poll every `interval` until every queue is empty; fail (its workers stopped) when a
    handler failed, crashed or timed out, or when the queues did not shrink for STALL_S."""
    least, progressed = None, time.monotonic()
    while left := pending(app):
        failing = {}
        for name, pool in app.runtime.pools().items():
            stats = pool.stats
            if stats.errors or stats.crashes or stats.timeouts:
                failing[name] = (
                    f"{stats.errors} errors, {stats.crashes} crashes, {stats.timeouts} timeouts"
                )
        stalled = time.monotonic() - progressed > STALL_S
        if failing or stalled:
            app.runtime.stop(grace=0)
            if failing:
                fail(f"handlers failed (the log above says why): {failing}")
            fail(f"{left} deliveries still pending after {STALL_S:.0f} s without progress")
        if least is None or left < least:
            least, progressed = left, time.monotonic()
        time.sleep(interval)


def run_functions(events: int, concurrency: int, root: Path) -> dict[str, float]:
    app, orders = build(root / "functions", functions=True, concurrency=concurrency)
    app.runtime.start()
    publish(orders, 0, 100)  # warm the pools: cold starts are not throughput
    wait_handled(app, 0.05)
    started = time.perf_counter()
    publish(orders, 0, events)
    wait_handled(app, 0.02)
    elapsed = time.perf_counter() - started
    app.runtime.stop(grace=10)
    app.close()
    return {"end_to_end_events_per_s": round(events / elapsed, 1)}


def run_latency(rate: float, seconds: float, concurrency: int, root: Path) -> dict[str, float]:
    latency_dir = root / "latency"
    latency_dir.mkdir()
    os.environ[LATENCY_DIR] = str(latency_dir)
    app, orders = build(root / "latency-state", functions=True, concurrency=concurrency)
    app.runtime.start()
    publish(orders, 0, 50)
    wait_handled(app, 0.05)
    for path in latency_dir.iterdir():
        path.unlink()
    interval = BATCH / rate
    began = time.perf_counter()
    sent = 0
    while time.perf_counter() - began < seconds:
        publish(orders, sent, BATCH)
        sent += BATCH
        delay = began + (sent / BATCH) * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    wait_handled(app, 0.02)
    app.runtime.stop(grace=10)
    app.close()
    del os.environ[LATENCY_DIR]
    samples = sorted(
        float(line) for path in latency_dir.iterdir() for line in path.read_text().split()
    )
    if len(samples) != expected_deliveries(0, sent):
        fail(f"handlers noted {len(samples)} records of {expected_deliveries(0, sent)} published")
    quantiles = statistics.quantiles(samples, n=100)
    return {
        "offered_events_per_s": rate,
        "handled_records": len(samples),
        "latency_p50_ms": round(quantiles[49] * 1000, 1),
        "latency_p99_ms": round(quantiles[98] * 1000, 1),
    }


def run_ceiling(events: int, root: Path) -> dict[str, float]:
    app, orders = build(root / "ceiling", functions=False, concurrency=1)
    backend = app.backend
    started = time.perf_counter()
    publish(orders, 0, events)
    deliveries = 0
    for name in QUEUES:
        while True:
            messages = backend.receive(name, max_messages=10, wait_seconds=0)
            if not messages:
                break
            results = backend.delete_messages(name, [m.receipt_handle for m in messages])
            if errors := [r for r in results if isinstance(r, Exception)]:
                fail(f"ceiling: delete_messages on {name} failed: {errors}")
            deliveries += len(messages)
    elapsed = time.perf_counter() - started
    app.close()
    if deliveries != expected_deliveries(0, events):
        fail(f"ceiling: drained {deliveries} deliveries, {expected_deliveries(0, events)} expected")
    return {"end_to_end_events_per_s": round(events / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered events/s for latency")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency phase length")
    parser.add_argument("--concurrency", type=int, default=2, help="workers per function")
    args = parser.parse_args()
    if args.events < 1 or args.concurrency < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("--events and --concurrency must be at least 1, --rate and --seconds above 0")
    configure_logging(level=logging.WARNING)  # a failed invocation's error, as a JSON line
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ceiling = run_ceiling(args.events, root)
        functions = run_functions(args.events, args.concurrency, root)
        latency = run_latency(args.rate, args.seconds, args.concurrency, root)
    ratio = functions["end_to_end_events_per_s"] / ceiling["end_to_end_events_per_s"]
    print(
        json.dumps(
            {
                "benchmark": "functions",
                "backend": "sqlite",
                "events": args.events,
                "concurrency_per_function": args.concurrency,
                "fanstack_functions": {**functions, **latency},
                "ceiling_drain_without_functions": ceiling,
                "ratio_end_to_end": round(ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
