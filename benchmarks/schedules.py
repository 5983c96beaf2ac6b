"""Schedules: N one-time schedules due at the same second, all delivered; and the leader's CPU
while N schedules wait.

Part 1: an app on the embedded store with N `at(...)` schedules (declared with `app.schedule`,
stored when the backend opens) due at the same second, each targeting one queue. The app's own
scheduler services (`app.schedules.services()`: the `Scheduler` and its `Retrier`) run in
threads of this process, as `fanstack run` runs them, with no function workers. One thing is
changed: the scheduler's clock runs ahead of real time by a shift set once its plan is loaded,
so that the due moment comes a second later rather than after a real wait (the scheduler sees
its time jump forward with nothing due in between, as if it had waited). Measured: from the
due moment (real time) to the moment the last of the N messages is visible in the queue
(`queue.stats()` polled every 50 ms once the leader has fired them all: a stats call holds the
store's writer for milliseconds, and no delivery can be the last before the last fire), and the
write transactions the store makes meanwhile.

The ceiling, same run: plain sqlite3 (WAL, synchronous=NORMAL) doing the durable writes an
occurrence needs, with rows of the sizes fanstack stores and grouped in transactions as the
engine groups them: the occurrence record (insert if absent) and the schedule's state (upsert),
one transaction each; the retry-queue messages, 500 to a transaction; then per 10 leased
messages one lease, one transaction of 10 target-queue messages and one of 10 deletes.
`ratio` = fanstack's deliveries/s / the ceiling's.

Part 2: N schedules due far ahead (`cron(0 0 1 1 ? 2199)`); the same scheduler service runs in
this process (nothing else does: no retrier, no function workers) on real time; once its plan
is loaded, this process's CPU time over `--idle-seconds` real seconds, scaled to CPU seconds per
minute (`idle_leader_start_cpu_s`: the CPU from the service's start to its plan loaded: its
connection, the lease, reading and planning the N schedules).

    python benchmarks/schedules.py --schedules 10000

A run fails (exit 1, the reason on stderr, no JSON line) when a scheduler service thread dies or
does not stop, the plan is not loaded, the N schedules are not fired or the N messages are not
visible within 600 s (or more than N are), or no write transaction is counted.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanstack import App
from fanstack.runtime.services import Service
from fanstack.schedules.delivery import scheduled_delivery
from fanstack.schedules.scheduler import HAND_OVER_BATCH, Scheduler, SchedulerClock
from fanstack.schedules.store import OCCURRENCES_TABLE, STATE_TABLE
from workflows import WriteCounter

LEAD = 1.0  # real seconds from the plan being loaded to the due moment
POLL = 0.05  # seconds between two looks at the target queue's depth
RETRY_LEASE_BATCH = 10  # the retrier receives up to 10 messages a lease
FAR_AHEAD = "cron(0 0 1 1 ? 2199)"
WAIT_S = 600.0  # the longest wait for a plan to load, all to fire, all to be delivered


def fail(text: str) -> NoReturn:
    raise SystemExit(f"schedules: FAILED: {text}")


def check_alive(threads: list[threading.Thread]) -> None:
    """Fail if a service thread has ended (its traceback, if it raised, is above)."""
    if dead := [thread.name for thread in threads if not thread.is_alive()]:
        fail(f"service threads ended while running: {dead}")


def wait_loaded(watched: Watched, threads: list[threading.Thread]) -> None:
    """Wait for the scheduler's plan; fail when a service thread dies or after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not watched.loaded.wait(POLL):
        check_alive(threads)
        if time.monotonic() > deadline:
            fail(f"the scheduler did not load its plan within {WAIT_S:.0f} s")


def stop(threads: list[threading.Thread], stopping: threading.Event) -> None:
    """Stop the service threads; fail if one does not end within WAIT_S."""
    stopping.set()
    for thread in threads:
        thread.join(WAIT_S)
        if thread.is_alive():
            fail(f"service thread {thread.name} did not stop within {WAIT_S:.0f} s")


class ShiftedClock(SchedulerClock):
    """Real time plus a shift the benchmark sets (so it can bring the due moment near)."""

    def __init__(self) -> None:
        super().__init__()
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


class Watched:
    """When the scheduler has loaded its plan, and when it has fired everything due."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.loaded = threading.Event()
        self.load_seconds = 0.0
        self.all_fired_at: float | None = None
        load, fire_due = scheduler.load, scheduler.fire_due

        def timed_load(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            plan = load(*args, **kwargs)
            self.load_seconds = time.perf_counter() - started
            self.loaded.set()
            return plan

        def watched_fire_due(backend: Any, store: Any, plan: Any) -> None:
            fire_due(backend, store, plan)
            if self.all_fired_at is None and plan.states and not plan.due:
                self.all_fired_at = time.time()

        scheduler.load = timed_load  # type: ignore[method-assign]
        scheduler.fire_due = watched_fire_due  # type: ignore[method-assign]


def declare(directory: Path, count: int, expression: Callable[[int], str]) -> tuple[App, float]:
    """An app with `count` schedules to queue `ticks`, stored; and the seconds storing took."""
    app = App("bench", data_dir=directory)
    ticks = app.queue("ticks")
    for n in range(count):
        app.schedule(f"s-{n}", expression(n), ticks, input={"n": n})
    started = time.perf_counter()
    app.backend  # noqa: B018 - stores every schedule
    return app, time.perf_counter() - started


def start(services: list[Service], app: App, stopping: threading.Event) -> list[threading.Thread]:
    """Run each service in a thread, as the runtime does (a daemon: a failed run does not wait
    for it at exit)."""
    threads = [
        threading.Thread(target=s.run, args=(app.backend, stopping), name=s.name, daemon=True)
        for s in services
    ]
    for thread in threads:
        thread.start()
    return threads


def run_burst(directory: Path, count: int) -> dict[str, Any]:
    """Fire `count` schedules due at the same second; time the last delivery."""
    due = datetime.fromtimestamp(int(time.time()) + 3600, UTC)  # far enough to declare first
    expression = f"at({due.strftime('%Y-%m-%dT%H:%M:%S')})"
    app, provision_seconds = declare(directory, count, lambda n: expression)
    services = app.schedules.services()
    scheduler = services[0]
    if not isinstance(scheduler, Scheduler):
        fail(f"the first schedules service is {scheduler!r}, not the Scheduler")
    clock = ShiftedClock()
    scheduler.clock = clock
    watched = Watched(scheduler)
    stopping = threading.Event()
    ticks = app.queues["ticks"]
    polls = 0
    with WriteCounter() as writes:
        threads = start(services, app, stopping)
        wait_loaded(watched, threads)
        due_real = time.time() + LEAD
        clock.shift = due.timestamp() - due_real
        time.sleep(max(0.0, due_real - time.time()))
        writes_before_due = writes.count
        deadline = time.monotonic() + WAIT_S
        while watched.all_fired_at is None:  # no delivery is last before the last fire
            check_alive(threads)
            if time.monotonic() > deadline:
                fail(f"the {count} schedules were not all fired within {WAIT_S:.0f} s")
            time.sleep(POLL / 5)
        while (visible := ticks.stats().visible) < count:  # a stats call holds the writer for ms
            polls += 1
            check_alive(threads)
            if time.monotonic() > deadline:
                fail(f"{visible} of {count} messages visible after {WAIT_S:.0f} s")
            time.sleep(POLL)
        delivered_at = time.time()
        writes_in_burst = writes.count - writes_before_due - polls - 1  # minus the stats calls
        stop(threads, stopping)
    if visible != count:
        fail(f"{visible} messages visible for {count} schedules")
    if writes_in_burst <= 0:
        fail(f"{writes_in_burst} write transactions counted: WriteCounter misses the writes")
    spec = app.schedules.declared["s-0"]
    retry_body = scheduled_delivery(spec, "0" * 32, due.timestamp(), due_real).to_json()
    sizes = {
        "retry": len(retry_body),
        "target": len(spec.input or "{}"),
        "occurrence": stored_size(app, OCCURRENCES_TABLE),
        "state": stored_size(app, STATE_TABLE),
    }
    app.close()
    seconds = delivered_at - due_real
    fired = None if watched.all_fired_at is None else watched.all_fired_at - due_real
    return {
        "seconds": seconds,
        "fired_seconds": fired,
        "load_seconds": watched.load_seconds,
        "provision_seconds": provision_seconds,
        "writes_per_delivery": writes_in_burst / count,
        "sizes": sizes,
    }


def stored_size(app: App, table: str) -> int:
    """The JSON size of an item of a schedule table."""
    item = next(iter(app.backend.table_items(table)))
    return len(json.dumps(item.value, separators=(",", ":")))


CEILING_SCHEMA = (
    "CREATE TABLE items (tbl TEXT, key TEXT, value TEXT, version INTEGER, expires REAL, "
    "PRIMARY KEY (tbl, key))",
    "CREATE TABLE messages (seq INTEGER PRIMARY KEY, queue TEXT, body TEXT, visible_at REAL, "
    "receipt TEXT)",
    "CREATE INDEX messages_by_visibility ON messages (queue, visible_at)",
)
RECORD_OCCURRENCE = "INSERT INTO items VALUES ('occurrence', ?, ?, 1, 0) ON CONFLICT DO NOTHING"
SEND = "INSERT INTO messages VALUES (?, ?, ?, 0, NULL)"
SAVE_STATE = (
    "INSERT INTO items VALUES ('state', ?, ?, 1, NULL) "
    "ON CONFLICT DO UPDATE SET value = excluded.value, version = version + 1"
)
LEASE = "UPDATE messages SET visible_at = 30, receipt = 'r' WHERE seq IN ({marks})"
DELETE = "DELETE FROM messages WHERE seq = ? AND receipt = 'r'"


def run_ceiling(path: Path, count: int, sizes: dict[str, int]) -> float:
    """Occurrences/s of plain sqlite3 doing an occurrence's durable writes, grouped as the
    engine groups them: the occurrence record and the state one transaction each, the retry
    messages 500 to a transaction, then per 10 leased: one lease, one transaction of 10 target
    messages, one of 10 deletes."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    for statement in CEILING_SCHEMA:
        db.execute(statement)
    record, state = "r" * sizes["occurrence"], "s" * sizes["state"]
    retry, target = "d" * sizes["retry"], "t" * sizes["target"]

    def write(sql: str, *rows: tuple[Any, ...]) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(sql, rows)
        db.execute("COMMIT")

    started = time.perf_counter()
    for first in range(0, count, HAND_OVER_BATCH):
        handed = range(first, min(first + HAND_OVER_BATCH, count))
        for n in handed:
            write(RECORD_OCCURRENCE, (f"s-{n}/0", record))
        write(SEND, *((2 * n, "retry", retry) for n in handed))
        for n in handed:
            write(SAVE_STATE, (f"s-{n}", state))
    for first in range(0, count, RETRY_LEASE_BATCH):
        batch = range(first, min(first + RETRY_LEASE_BATCH, count))
        seqs = tuple(2 * n for n in batch)
        write(LEASE.format(marks=",".join("?" * len(seqs))), seqs)
        write(SEND, *((2 * n + 1, "ticks", target) for n in batch))
        write(DELETE, *((2 * n,) for n in batch))
    elapsed = time.perf_counter() - started
    db.close()
    return count / elapsed


def run_idle(directory: Path, count: int, seconds: float) -> dict[str, float]:
    """The leader's CPU seconds per real minute with `count` schedules due far ahead."""
    app, _ = declare(directory, count, lambda n: FAR_AHEAD)
    scheduler = app.schedules.services()[0]  # on real time
    if not isinstance(scheduler, Scheduler):
        fail(f"the first schedules service is {scheduler!r}, not the Scheduler")
    watched = Watched(scheduler)
    stopping = threading.Event()
    cpu_started = time.process_time()
    threads = start([scheduler], app, stopping)
    wait_loaded(watched, threads)
    start_cpu = time.process_time() - cpu_started
    cpu_started, started = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu, elapsed = time.process_time() - cpu_started, time.perf_counter() - started
    check_alive(threads)  # a dead leader would spend no CPU: its figure would mean nothing
    stop(threads, stopping)
    app.close()
    return {"cpu_per_min": cpu / elapsed * 60, "start_cpu": start_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()
    if args.schedules < 1 or args.idle_seconds <= 0:
        parser.error("--schedules must be at least 1 and --idle-seconds above 0")
    with tempfile.TemporaryDirectory() as tmp:
        burst = run_burst(Path(tmp) / "burst", args.schedules)
        ceiling = run_ceiling(Path(tmp) / "ceiling.db", args.schedules, burst["sizes"])
        idle = run_idle(Path(tmp) / "idle", args.schedules, args.idle_seconds)
    rate = args.schedules / burst["seconds"]
    fired = burst["fired_seconds"]
    print(
        json.dumps(
            {
                "workload": f"{args.schedules} at() schedules due at the same second -> 1 queue",
                "schedules": args.schedules,
                "due_to_last_delivery_s": round(burst["seconds"], 2),
                "due_to_all_fired_s": None if fired is None else round(fired, 2),
                "deliveries_per_s": round(rate),
                "write_transactions_per_delivery": round(burst["writes_per_delivery"], 2),
                "ceiling": "plain sqlite3 (WAL, NORMAL), the same rows in the same transactions: "
                "occurrence insert and state upsert one each, retry messages 500 a transaction, "
                "per 10: a lease, the 10 target messages, the 10 deletes (2.3 per occurrence)",
                "ceiling_deliveries_per_s": round(ceiling),
                "ratio": round(rate / ceiling, 3),
                "leader_plan_load_s": round(burst["load_seconds"], 2),
                "declare_and_store_s": round(burst["provision_seconds"], 1),
                "idle_seconds": args.idle_seconds,
                "idle_leader_cpu_s_per_min": round(idle["cpu_per_min"], 3),
                "idle_leader_start_cpu_s": round(idle["start_cpu"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
