"""Event bus throughput: put_events -> 5 rules -> 5 queue targets, beside a topic fan-out.

Part 1 (end to end): N events of ~1 KB detail put in batches of 10 while a router routes them
(a thread of the same process, as in `fanstack run`; and, second figure, a process of its own,
as a `fanstack worker` beside the API), then every target queue drained with batch receive +
batch delete. In the same run, on a fresh data dir, the same fan-out done with a topic and 5
subscriptions (one filtered to a third, as one rule is): publish_batch of 10, then the same
drain. The ratio is bus / topic end to end; the issue's target is at least 0.75.

Part 2 (rule-count curve): a bus with 10, 100, 1,000 and 10,000 rules (exact sources, prefixes,
numeric ranges, anything-but, some $or), each event matching two of them; events routed per
second by the router, store writes included. The target: 1,000 rules at least half the
events/s of 10.

    python benchmarks/eventbus.py --events 10000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fanstack import App
from fanstack.bus.catalog import Catalog
from fanstack.bus.router import Router
from fanstack.core.events import ingress_queue

QUEUES = ("process", "notify", "delivery", "reports", "compliance")
BATCH = 10
MARKETS = ("eu", "us", "ru")


def details(count: int) -> list[dict[str, Any]]:
    """~1 KB event details, a third of them in the `ru` market."""
    filler = "x" * 880
    return [
        {"order_id": f"o-{n}", "market": MARKETS[n % 3], "total": n * 1.5, "note": filler}
        for n in range(count)
    ]


def drain(app: App, expected: int) -> None:
    """Receive and delete from every queue until `expected` messages were taken in all."""
    taken = 0
    queues = [app.queues[name] for name in QUEUES]
    while taken < expected:
        moved = 0
        for queue in queues:
            while batch := queue.receive(max_messages=10):
                queue.delete_batch([m.receipt_handle for m in batch])
                moved += len(batch)
        taken += moved
        if not moved:
            time.sleep(0.001)


def expected_deliveries(count: int) -> int:
    return 4 * count + sum(1 for n in range(count) if n % 3 == 2)


ROUTER_PROCESS = """
import signal, sys, threading
from fanstack import App
from fanstack.bus.router import Router
stopping = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopping.set())
backend = App("bench", data_dir=sys.argv[1]).backend
print("ready", flush=True)
Router("orders").run(backend, stopping)
"""


def run_bus(events: list[dict[str, Any]], data_dir: Path, *, own_process: bool = False) -> float:
    """End-to-end events/s through a bus with 5 rules to 5 queues.

    The router runs in a thread of this process (as in `fanstack run`), or in a process of its
    own (as `fanstack worker` beside a `fanstack gateway`).
    """
    app = App("bench", data_dir=data_dir)
    bus = app.bus("orders")
    for name in QUEUES:
        pattern: dict[str, Any] = {"source": ["shop"]}
        if name == "compliance":
            pattern["detail"] = {"market": ["ru"]}
        bus.rule(name, event_pattern=pattern, targets=[app.queue(name)])
    backend = app.backend
    stopping = threading.Event()
    router = threading.Thread(target=Router("orders").run, args=(backend, stopping))
    process = None
    if own_process:
        process = subprocess.Popen(
            [sys.executable, "-c", ROUTER_PROCESS, str(data_dir)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    if process is None:
        router.start()
    for start in range(0, len(events), BATCH):
        entries = [
            {"source": "shop", "detail_type": "OrderPlaced", "detail": detail}
            for detail in events[start : start + BATCH]
        ]
        assert bus.put_events(entries).failed_entry_count == 0
    drain(app, expected_deliveries(len(events)))
    elapsed = time.perf_counter() - started
    if process is not None:
        process.terminate()
        process.wait()
    else:
        stopping.set()
        router.join()
    app.close()
    return len(events) / elapsed


def run_topic(events: list[dict[str, Any]], data_dir: Path) -> float:
    """End-to-end events/s through a topic with 5 raw subscriptions (one filtered)."""
    app = App("bench", data_dir=data_dir)
    orders = app.topic("orders")
    for name in QUEUES:
        policy = {"market": ["ru"]} if name == "compliance" else None
        orders.subscribe(app.queue(name), filter_policy=policy, raw=True)
    app.backend  # noqa: B018 - open and provision outside the timed part
    started = time.perf_counter()
    for start in range(0, len(events), BATCH):
        result = orders.publish_batch(
            [
                {"id": str(i), "body": json.dumps(d), "attributes": {"market": d["market"]}}
                for i, d in enumerate(events[start : start + BATCH])
            ]
        )
        assert result.ok
    drain(app, expected_deliveries(len(events)))
    elapsed = time.perf_counter() - started
    app.close()
    return len(events) / elapsed


def rule_patterns(count: int) -> list[dict[str, Any]]:
    """`count` varied patterns; event n matches `source-{n % count}` and the catch-all."""
    patterns: list[dict[str, Any]] = [{"detail-type": ["Tick"]}]
    for i in range(1, count):
        kind = i % 5
        if kind == 0:
            patterns.append({"source": [f"source-{i}"]})
        elif kind == 1:
            patterns.append({"source": [f"source-{i}"], "detail": {"n": [{"numeric": [">=", 0]}]}})
        elif kind == 2:
            patterns.append({"source": [{"prefix": f"source-{i}."}]})
        elif kind == 3:
            patterns.append(
                {"source": [f"source-{i}"], "detail": {"tier": [{"anything-but": "free"}]}}
            )
        else:
            patterns.append({"$or": [{"source": [f"source-{i}"]}, {"account": [f"acct-{i}"]}]})
    return patterns


def run_curve(rules: int, events: int, data_dir: Path) -> float:
    """Events/s the router routes with `rules` rules on the bus."""
    app = App("bench", data_dir=data_dir)
    bus = app.bus("curve", max_rules=max(rules, 300))
    target = app.queue("sink")
    backend = app.backend
    catalog = Catalog(backend)
    for i, pattern in enumerate(rule_patterns(rules)):
        bus.rule(f"r{i}", event_pattern=pattern, targets=[target])
    for start in range(0, events, BATCH):
        bus.put_events(
            [
                {"source": f"source-{n % rules}", "detail_type": "Tick", "detail": {"n": n}}
                for n in range(start, start + BATCH)
            ]
        )
    router = Router("curve")
    router.view(catalog)  # compile outside the timed part
    started = time.perf_counter()
    while batch := backend.receive(ingress_queue("curve"), max_messages=10):
        router.route(backend, catalog, batch)
    elapsed = time.perf_counter() - started
    app.close()
    return events / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--curve-events", type=int, default=3_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    events = details(args.events)
    bus_runs, process_runs, topic_runs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            bus_runs.append(run_bus(events, Path(tmp) / f"bus-{repeat}"))
            process_runs.append(
                run_bus(events, Path(tmp) / f"bus-process-{repeat}", own_process=True)
            )
            topic_runs.append(run_topic(events, Path(tmp) / f"topic-{repeat}"))
        curve = {
            str(rules): round(run_curve(rules, args.curve_events, Path(tmp) / f"curve-{rules}"))
            for rules in (10, 100, 1_000, 10_000)
        }
    bus_rate, topic_rate = statistics.median(bus_runs), statistics.median(topic_runs)
    process_rate = statistics.median(process_runs)
    print(
        json.dumps(
            {
                "workload": "put_events -> 5 rules -> 5 queues (~1 KB), end to end",
                "events": args.events,
                "bus_events_per_s": round(bus_rate),
                "bus_router_in_own_process_events_per_s": round(process_rate),
                "ceiling": "same fan-out through a topic with 5 raw subscriptions, same run",
                "topic_events_per_s": round(topic_rate),
                "ratio": round(bus_rate / topic_rate, 3),
                "ratio_router_in_own_process": round(process_rate / topic_rate, 3),
                "routing_events_per_s_by_rule_count": curve,
                "ratio_1000_to_10_rules": round(curve["1000"] / curve["10"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
