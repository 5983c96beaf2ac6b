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

A run fails (exit 1, the reason on stderr, no JSON line) when an event or message is refused,
the router thread or process dies or does not start, a drain takes nothing for 120 s or takes
other than the expected deliveries, or the curve's routing leaves events unrouted.
"""

from __future__ import annotations

import argparse
import json
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from fanstack import App
from fanstack.bus.bus import PutEventsResult
from fanstack.bus.catalog import Catalog
from fanstack.bus.delivery import retry_queue
from fanstack.bus.router import Router
from fanstack.core.events import ingress_queue

QUEUES = ("process", "notify", "delivery", "reports", "compliance")
BATCH = 10
MARKETS = ("eu", "us", "ru")
STALL_S = 120.0  # a drain that takes nothing this long fails the run
READY_TIMEOUT = 60.0  # seconds for the router process to open the store


def fail(text: str) -> NoReturn:
    raise SystemExit(f"eventbus: FAILED: {text}")


def check_put(result: PutEventsResult) -> None:
    """Fail if put_events refused an entry."""
    if result.failed_entry_count:
        refused = [entry for entry in result.entries if entry.event_id is None]
        fail(f"put_events refused {len(refused)} entries, the first: {refused[0]}")


def details(count: int) -> list[dict[str, Any]]:
    """~1 KB event details, a third of them in the `ru` market."""
    filler = "x" * 880
    return [
        {"order_id": f"o-{n}", "market": MARKETS[n % 3], "total": n * 1.5, "note": filler}
        for n in range(count)
    ]


def drain(app: App, expected: int, check_router: Callable[[], None] = lambda: None) -> None:
    """Receive and delete from every queue until `expected` messages were taken in all; fail
    when the router stops, nothing comes for STALL_S, or more than `expected` come."""
    taken = 0
    queues = [app.queues[name] for name in QUEUES]
    progressed = time.monotonic()
    while taken < expected:
        moved = 0
        for queue in queues:
            while batch := queue.receive(max_messages=10):
                deleted = queue.delete_batch([m.receipt_handle for m in batch])
                if not deleted.ok:
                    fail(f"delete_batch on {queue.name} failed: {deleted.failed}")
                moved += len(batch)
        taken += moved
        if moved:
            progressed = time.monotonic()
        else:
            check_router()
            if time.monotonic() - progressed > STALL_S:
                fail(
                    f"the drain took {taken} of {expected} deliveries, then none in {STALL_S:.0f} s"
                )
            time.sleep(0.001)
    if taken != expected:
        fail(f"the drain took {taken} deliveries, {expected} expected")


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
    # A daemon: a failed run does not wait for it at exit.
    router = threading.Thread(target=Router("orders").run, args=(backend, stopping), daemon=True)
    process = start_router_process(data_dir) if own_process else None

    def check_router() -> None:
        if process is not None and process.poll() is not None:
            fail(f"the router process exited with {process.returncode} (its stderr is above)")
        if process is None and not router.is_alive():
            fail("the router thread died (its traceback is above)")

    try:
        started = time.perf_counter()
        if process is None:
            router.start()
        for start in range(0, len(events), BATCH):
            entries = [
                {"source": "shop", "detail_type": "OrderPlaced", "detail": detail}
                for detail in events[start : start + BATCH]
            ]
            check_put(bus.put_events(entries))
        drain(app, expected_deliveries(len(events)), check_router)
        elapsed = time.perf_counter() - started
        stop_router(router, stopping, process)
    finally:  # a failed run leaves no router process behind
        if process is not None and process.poll() is None:
            process.kill()
    app.close()
    return len(events) / elapsed


def stop_router(
    router: threading.Thread, stopping: threading.Event, process: subprocess.Popen[str] | None
) -> None:
    """Stop the router (SIGTERM to its process); fail unless it stops, and cleanly."""
    if process is not None:
        process.terminate()
        try:
            process.wait(READY_TIMEOUT)
        except subprocess.TimeoutExpired:
            fail(f"the router process did not stop within {READY_TIMEOUT:.0f} s of SIGTERM")
        if process.returncode != 0:
            fail(f"the router process exited with {process.returncode} on SIGTERM")
    else:
        stopping.set()
        router.join(READY_TIMEOUT)
        if router.is_alive():
            fail(f"the router thread did not stop within {READY_TIMEOUT:.0f} s")


def start_router_process(data_dir: Path) -> subprocess.Popen[str]:
    """The router in a process of its own, once it says it has opened the store."""
    process = subprocess.Popen(
        [sys.executable, "-c", ROUTER_PROCESS, str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    said = ""
    if process.stdout is not None and select.select([process.stdout], [], [], READY_TIMEOUT)[0]:
        said = process.stdout.readline().strip()
    if said != "ready":
        process.kill()
        fail(
            f"the router process did not start within {READY_TIMEOUT:.0f} s (exit status "
            f"{process.wait()}, said {said!r}; its stderr is above)"
        )
    return process


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
        if not result.ok:
            fail(f"publish_batch failed: {result.failed}")
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
        check_put(
            bus.put_events(
                [
                    {"source": f"source-{n % rules}", "detail_type": "Tick", "detail": {"n": n}}
                    for n in range(start, start + BATCH)
                ]
            )
        )
    router = Router("curve")
    router.view(catalog)  # compile outside the timed part
    started = time.perf_counter()
    while batch := backend.receive(ingress_queue("curve"), max_messages=10):
        router.route(backend, catalog, batch)
    elapsed = time.perf_counter() - started
    check_routed(app, rules, -(-events // BATCH) * BATCH)
    app.close()
    return events / elapsed


def check_routed(app: App, rules: int, put: int) -> None:
    """Fail unless every event put was routed: none left in the ingress queue, no delivery
    waiting for a retry, and the sink holding one per event (the catch-all) at least."""
    left = {}
    for queue in (ingress_queue("curve"), retry_queue("curve")):
        stats = app.backend.stats(queue)
        left[queue] = stats.visible + stats.in_flight + stats.delayed
    sink = app.backend.stats("sink").visible
    if any(left.values()) or not put <= sink <= 2 * put:
        fail(
            f"{rules} rules: {put} events put, {sink} in the sink (not {put} to {2 * put}), {left}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--curve-events", type=int, default=3_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if min(args.events, args.curve_events, args.repeats) < 1:
        parser.error("--events, --curve-events and --repeats must be at least 1")
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
