"""Workflow throughput: state transitions/s, and the wall time of a Map over 10,000 items.

Part 1: 100 concurrent executions of a 20-state chain (Pass, Choice and Task states; the Tasks
call a no-op function in worker processes), run by the step runner of this process on the
embedded store. Every write transaction the store makes is counted; the ceiling is the same
number of write transactions (a row of the same size each, WAL, synchronous=NORMAL, one
transaction per write as the engine makes them) done with plain sqlite3 in the same run, so
`ratio` compares the engine with the store's own best at the same durability.

Part 2: a Map over 10,000 items whose processor is a Task calling the no-op function, with
MaxConcurrency 100: its wall time from start to SUCCEEDED.

    python benchmarks/workflows.py --executions 100 --items 10000

An execution that ends other than SUCCEEDED (or, for the Map, without an output per item), or
does not end in time, or a part that counts no write transaction fails the run (exit 1, the
reason on stderr, no JSON line).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanstack import App
from fanstack.backends.sqlite import database
from fanstack.workflows.store import ExecutionRecord
from fanstack.workflows.workflow import Execution

STATES = 20
CHECK_EVERY = 5.0  # seconds between looks at the runtime's threads while waiting
APP = """
from fanstack import App
app = App("bench")


@app.function(concurrency=8)
def noop(event, context):
    return event
"""


def fail(text: str) -> NoReturn:
    raise SystemExit(f"workflows: FAILED: {text}")


THREAD_FAILURES: list[str] = []
"""What ended a thread of this process (a runtime poller, say): no execution can end then."""


def note_thread_failure(args: threading.ExceptHookArgs) -> None:
    """Keep what ended a thread, then print its traceback as threads do."""
    name = args.thread.name if args.thread is not None else "?"
    THREAD_FAILURES.append(f"thread {name} died: {args.exc_type.__name__}: {args.exc_value}")
    threading.__excepthook__(args)


def succeeded(execution: Execution, timeout: float, interval: float) -> ExecutionRecord:
    """The record of `execution` once it SUCCEEDED; fail if it ended otherwise, not within
    `timeout`, or a thread of the runtime died meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if THREAD_FAILURES:
            fail(f"execution {execution.key!r} cannot end: {'; '.join(THREAD_FAILURES)}")
        left = deadline - time.monotonic()
        try:
            record = execution.wait(timeout=max(0.0, min(left, CHECK_EVERY)), interval=interval)
            break
        except TimeoutError as error:
            if left <= CHECK_EVERY:
                fail(f"{error} after {timeout:g} s")
    if record.status != "SUCCEEDED":
        fail(f"execution {execution.key!r} ended {record.status}: {record}")
    return record


def chain() -> dict[str, Any]:
    """20 states: Pass, Choice and Task in turn, the Tasks calling `noop`."""
    states: dict[str, Any] = {}
    for i in range(STATES):
        name, following = f"S{i}", f"S{i + 1}"
        last = i + 1 == STATES
        kind = ("Pass", "Choice", "Task")[i % 3]
        if kind == "Pass":
            state: dict[str, Any] = {"Type": "Pass", "Result": i, "ResultPath": f"$.p{i}"}
        elif kind == "Task":
            state = {"Type": "Task", "Resource": "noop", "ResultPath": f"$.t{i}"}
        else:
            rule = {"Variable": "$.n", "NumericGreaterThanEquals": 0, "Next": following}
            state = {"Type": "Choice", "Choices": [rule], "Default": following}
            if last:
                state = {"Type": "Pass"}
        if state["Type"] != "Choice":
            state.update({"End": True} if last else {"Next": following})
        states[name] = state
    return {"StartAt": "S0", "States": states}


def big_map() -> dict[str, Any]:
    """A distributed Map over `$.items` with a Task calling `noop` per item, 100 at a time."""
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "N",
        "States": {"N": {"Type": "Task", "Resource": "noop", "End": True}},
    }
    each = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "MaxConcurrency": 100,
        "ItemProcessor": processor,
        "End": True,
    }
    return {"StartAt": "Each", "States": {"Each": each}}


class WriteCounter:
    """Counts the store's write transactions in this process."""

    def __init__(self) -> None:
        self.count = 0
        self.original = database.Database.write
        self.original_statement = database.Database.write_statement

    def __enter__(self) -> WriteCounter:
        counter = self
        original, original_statement = self.original, self.original_statement

        # Whatever the arguments: a counter that breaks a store call would stop the run.
        def counted(db: database.Database, *args: Any, **kwargs: Any) -> Any:
            counter.count += 1
            return original(db, *args, **kwargs)

        def counted_statement(db: database.Database, *args: Any, **kwargs: Any) -> Any:
            counter.count += 1
            return original_statement(db, *args, **kwargs)

        database.Database.write = counted  # type: ignore[method-assign,assignment]
        database.Database.write_statement = counted_statement  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        database.Database.write = self.original  # type: ignore[method-assign]
        database.Database.write_statement = self.original_statement  # type: ignore[method-assign]


def load_app(directory: Path) -> Any:
    module_path = directory / "bench_app.py"
    module_path.write_text(APP)
    sys.path.insert(0, str(directory))
    import bench_app  # type: ignore[import-not-found]

    return bench_app.app


def run_transitions(app: App, executions: int) -> tuple[float, int, int]:
    """(transitions/s, transitions, write transactions) for `executions` concurrent runs."""
    workflow = app.workflow("chain", chain())
    app.runtime.start()
    warm = workflow.start({"n": 0}, name="warm-up")  # start the worker processes first
    succeeded(warm, timeout=120, interval=0.05)
    with WriteCounter() as writes:
        started = time.perf_counter()
        runs = [workflow.start({"n": n}, name=f"run-{n}") for n in range(executions)]
        for run in runs:
            succeeded(run, timeout=600, interval=0.05)
        elapsed = time.perf_counter() - started
    transitions = executions * STATES
    return transitions / elapsed, transitions, writes.count


def run_map(app: App, items: int) -> float:
    """Seconds from start to SUCCEEDED of a Map over `items` items."""
    workflow = app.workflow("map", big_map())
    started = time.perf_counter()
    record = succeeded(workflow.start({"items": list(range(items))}), timeout=3600, interval=0.2)
    if len(record.output) != items:
        fail(f"the Map over {items} items output {len(record.output)}")
    return time.perf_counter() - started


def run_ceiling(path: Path, writes: int) -> float:
    """Write transactions/s of plain sqlite3, one ~400-byte row per transaction."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
    row = "x" * 400
    started = time.perf_counter()
    for n in range(writes):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?, ?)", (f"k{n}", row))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return writes / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=100)
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    if args.executions < 1 or args.items < 1:
        parser.error("--executions and --items must be at least 1")
    threading.excepthook = note_thread_failure
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        app = load_app(directory)
        app.configure(data_dir=directory / "data")
        rate, transitions, writes = run_transitions(app, args.executions)
        if writes == 0:
            fail("no write transaction counted: WriteCounter no longer sees the store's writes")
        map_seconds = run_map(app, args.items)
        app.runtime.stop(grace=10)
        app.close()
        ceiling_tx = run_ceiling(directory / "ceiling.db", writes)
    per_transition = writes / transitions
    ceiling_rate = ceiling_tx / per_transition
    print(
        json.dumps(
            {
                "workload": f"{args.executions} concurrent executions of a {STATES}-state "
                "Pass/Choice/Task chain",
                "transitions_per_s": round(rate),
                "write_transactions_per_transition": round(per_transition, 2),
                "ceiling": "the same write transactions with plain sqlite3 (WAL, NORMAL)",
                "ceiling_transitions_per_s": round(ceiling_rate),
                "ratio": round(rate / ceiling_rate, 3),
                "aws_standard_quota_transitions_per_s": 2000,
                "map_items": args.items,
                "map_seconds": round(map_seconds, 1),
                "map_items_per_s": round(args.items / map_seconds),
            }
        )
    )


if __name__ == "__main__":
    main()
