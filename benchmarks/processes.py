"""Many processes on one data dir: does adding producers and consumers add throughput?

For each N in `--curve` (default 1,2,4): N producer processes send 1 KB messages to queue `work`
(send_batch of 10, each call timed) while N consumer processes receive 10 + delete_batch until
every message is deleted, all on one embedded store (SQLite, default durability). Reports the
aggregate messages/s from the first send to the last delete, the send latency p50 / p99 /
max, the CPU microseconds per message of the producers and of the consumers (each process's
own, timed part only), and the count of receives that came back empty. The same-run baseline
is 1 + 1. Target: at N = 4 at least the 1 + 1 throughput, send p99 under 20 ms and no send
over 250 ms.

Ceiling, same run (`plain_sqlite3`): the same curve done by processes using plain sqlite3 at its
best on one file (WAL, `synchronous=NORMAL`, checkpoints as fanstack's: `sqlite_best.py`): a
send stores 10 bodies and their rows in one transaction, a receive claims 10 with one `UPDATE
... RETURNING` and reads their bodies, a delete removes them in one transaction; writers queue
on an advisory lock (`flock`), as fanstack's do, not in SQLite's sleeping busy handler. Its
`vs_1_1` says what adding processes gives on this machine when the only work is the storage's;
`vs_plain` is fanstack's rate against it at each N.

Prints one JSON line; a process that fails or dies, a curve point not done within 600 s, or a
count of deletes other than the messages sent fails the run instead (exit 1, the reason on
stderr).

    python benchmarks/processes.py --messages 40000 --curve 1,2,4
"""

from __future__ import annotations

import argparse
import fcntl
import json
import multiprocessing as mp
import os
import queue as queue_module
import sqlite3
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from sqlite_best import PUBLICATIONS_SCHEMA, checkpoint_like_fanstack, store_publications

BODY = "x" * 1024
TIMEOUT = 600.0
T = TypeVar("T")
REPORT_WAIT = 3.0  # seconds a dead process's error report may still take to arrive


def fail(text: str) -> NoReturn:
    raise SystemExit(f"processes: FAILED: {text}")


def produce(send: Callable[[], None], count: int, go: Any, out: Any) -> None:
    """A producer's timed part: `send` (10 messages) until `count` are sent, each call timed;
    then its report."""
    if not go.wait(TIMEOUT):
        raise RuntimeError("never told to go")
    first = time.time()
    cpu = time.process_time()
    latencies = []
    for _ in range(0, count, 10):
        began = time.perf_counter()
        send()
        latencies.append(time.perf_counter() - began)
    out.put(
        {
            "kind": "producer",
            "first": first,
            "last": time.time(),
            "lat": latencies,
            "cpu": time.process_time() - cpu,
        }
    )


def consume(
    receive: Callable[[], list[T]],
    delete: Callable[[list[T]], None],
    total: int,
    deleted: Any,
    go: Any,
    out: Any,
) -> None:
    """A consumer's timed part: `receive` up to 10 and `delete` them until the consumers
    together deleted `total`; then its report."""
    if not go.wait(TIMEOUT):
        raise RuntimeError("never told to go")
    first = last = time.time()
    cpu = time.process_time()
    empty = 0
    deadline = time.monotonic() + TIMEOUT
    while deleted.value < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{deleted.value} of {total} deleted within {TIMEOUT:.0f} s")
        batch = receive()
        if not batch:
            empty += 1
            continue
        delete(batch)
        with deleted.get_lock():
            deleted.value += len(batch)
        last = time.time()
    out.put(
        {
            "kind": "consumer",
            "first": first,
            "last": last,
            "cpu": time.process_time() - cpu,
            "empty": empty,
        }
    )


def reporting(kind: str, out: Any, work: Callable[[], None]) -> None:
    """Run a process's `work`; an error is reported to the parent, and the process exits 1."""
    try:
        work()
    except BaseException:
        out.put({"kind": kind, "error": traceback.format_exc()})
        sys.exit(1)


def producer(data_dir: str, count: int, go: Any, out: Any) -> None:
    def work() -> None:
        from fanstack import App

        app = App("procs", data_dir=data_dir)
        queue = app.queue("work")
        app.backend  # noqa: B018 - open before the timed part

        def send() -> None:
            result = queue.send_batch([{"id": str(i), "body": BODY} for i in range(10)])
            if not result.ok:
                raise RuntimeError(f"send_batch failed: {result.failed}")

        produce(send, count, go, out)
        app.close()

    reporting("producer", out, work)


def consumer(data_dir: str, total: int, deleted: Any, go: Any, out: Any) -> None:
    def work() -> None:
        from fanstack import App

        app = App("procs", data_dir=data_dir)
        queue = app.queue("work")
        app.backend  # noqa: B018

        def delete(batch: list[Any]) -> None:
            result = queue.delete_batch([m.receipt_handle for m in batch])
            if not result.ok:
                raise RuntimeError(f"delete_batch failed: {result.failed}")

        consume(
            lambda: queue.receive(max_messages=10, wait_seconds=1), delete, total, deleted, go, out
        )
        app.close()

    reporting("consumer", out, work)


class PlainStore:
    """The ceiling's file: plain sqlite3, write transactions queued on an flock."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(PUBLICATIONS_SCHEMA)
        self.checkpoints = checkpoint_like_fanstack(self.db, path)
        self._lock = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT, 0o600)

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                result = work(self.db)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            return result
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)


def plain_producer(path: str, count: int, go: Any, out: Any) -> None:
    def work() -> None:
        store = PlainStore(path)

        def send(db: sqlite3.Connection) -> None:
            (last,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM payloads").fetchone()
            ids = range(last + 1, last + 11)
            # No attributes: "" rather than None, which sqlite3 binds through its adapters.
            payloads = [(i, str(uuid.uuid4()), BODY, "", 1) for i in ids]
            store_publications(db, payloads, [("work", i) for i in ids])

        produce(lambda: store.write(send), count, go, out)

    reporting("producer", out, work)


def plain_consumer(path: str, total: int, deleted: Any, go: Any, out: Any) -> None:
    def work() -> None:
        store = PlainStore(path)

        def claim(db: sqlite3.Connection) -> list[tuple[int, int]]:
            now = time.time()
            leased: list[tuple[int, int]] = db.execute(
                "UPDATE messages SET visible_at = ?, receipt = ?, receive_count = receive_count + 1"
                " WHERE seq IN (SELECT seq FROM messages WHERE queue = 'work' AND visible_at <= ?"
                " AND expires_at > ? ORDER BY visible_at LIMIT 10) RETURNING seq, payload",
                (now + 30, uuid.uuid4().hex, now, now),
            ).fetchall()
            if leased:
                marks = ",".join("?" * len(leased))
                db.execute(
                    f"SELECT id, message_id, body FROM payloads WHERE id IN ({marks})",
                    [payload for _seq, payload in leased],
                ).fetchall()
            return leased

        def receive() -> list[tuple[int, int]]:
            leased = store.write(claim)
            if not leased:
                time.sleep(0.001)  # as a long poll would wait for the producers
            return leased

        def delete(db: sqlite3.Connection, batch: list[tuple[int, int]]) -> None:
            marks = ",".join("?" * len(batch))
            db.execute(f"DELETE FROM messages WHERE seq IN ({marks})", [s for s, _ in batch])
            db.execute(f"DELETE FROM payloads WHERE id IN ({marks})", [p for _, p in batch])

        consume(
            receive,
            lambda batch: store.write(lambda db: delete(db, batch)),
            total,
            deleted,
            go,
            out,
        )

    reporting("consumer", out, work)


def collect(procs: list[Any], out: Any, label: str) -> list[dict[str, Any]]:
    """Every process's report; fail on an error report, a process that died without one, a
    non-zero exit, or TIMEOUT."""
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + TIMEOUT
    while len(results) < len(procs):
        if time.monotonic() > deadline:
            fail(f"{label}: not finished within {TIMEOUT:.0f} s")
        try:
            item = out.get(timeout=1)
        except queue_module.Empty:
            dead = next((proc for proc in procs if proc.exitcode not in (None, 0)), None)
            if dead is None:
                continue
            try:  # its error report may still be on the way
                item = out.get(timeout=REPORT_WAIT)
            except queue_module.Empty:
                fail(f"{label}: a process (pid {dead.pid}) exited with {dead.exitcode}, no report")
        if "error" in item:
            fail(f"{label}: a {item['kind']} failed:\n{item['error']}")
        results.append(item)
    for proc in procs:
        proc.join(30)
        if proc.exitcode != 0:
            fail(f"{label}: a process (pid {proc.pid}) exited with {proc.exitcode} after reporting")
    return results


def run(n: int, messages: int, *, plain: bool = False) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    go, deleted, out = ctx.Event(), ctx.Value("q", 0), ctx.Queue()
    per = messages // n // 10 * 10
    total = per * n
    label = f"{'plain ' if plain else ''}{n}+{n}"
    with tempfile.TemporaryDirectory() as tmp:
        target = str(Path(tmp) / "data")
        make, take = producer, consumer
        if plain:
            target = str(Path(tmp) / "plain.db")
            PlainStore(target).checkpoints.set()  # the file and its tables, before the start
            make, take = plain_producer, plain_consumer
        else:
            from fanstack import App

            App("procs", data_dir=target).queue("work")  # declared before anyone starts
        procs = [ctx.Process(target=make, args=(target, per, go, out)) for _ in range(n)]
        procs += [
            ctx.Process(target=take, args=(target, total, deleted, go, out)) for _ in range(n)
        ]
        try:
            for proc in procs:
                proc.start()
            time.sleep(2.0)  # every process opens the store before the start
            # Event.set waits for every waiter to wake: forever for one that died waiting, so it
            # runs aside and `collect` notices the dead process.
            threading.Thread(target=go.set, daemon=True).start()
            results = collect(procs, out, label)
        finally:
            for proc in procs:  # a failed run leaves none behind (nor waits on them at exit)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(10)
    if deleted.value != total:
        fail(f"{label}: consumers deleted {deleted.value} messages, {total} were sent")
    latencies = sorted(x for r in results if r["kind"] == "producer" for x in r["lat"])
    span = max(r["last"] for r in results) - min(r["first"] for r in results)
    cpu = {
        kind: round(sum(r["cpu"] for r in results if r["kind"] == kind) / total * 1e6, 1)
        for kind in ("producer", "consumer")
    }
    return {
        "msgs_per_s": round(total / span),
        "cpu_us_per_msg": cpu,
        "empty_receives": sum(r.get("empty", 0) for r in results),
        "send_ms": {
            "p50": round(latencies[len(latencies) // 2] * 1000, 2),
            "p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
            "max": round(latencies[-1] * 1000, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=40000)
    parser.add_argument("--curve", default="1,2,4")
    args = parser.parse_args()
    curve = [int(x) for x in args.curve.split(",")]
    if min(curve) < 1 or args.messages < 10 * max(curve):
        parser.error("each N must be at least 1, and --messages at least 10 per producer")
    out: dict[str, Any] = {
        "benchmark": "processes",
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "messages": args.messages,
        "targets": {"send_p99_ms": 20, "send_max_ms": 250},
        "curve": {},
    }
    out["plain_sqlite3"] = {}
    for n in curve:
        figures = run(n, args.messages)
        print(f"[processes] {n}+{n}: {figures}", file=sys.stderr, flush=True)
        out["curve"][f"{n}+{n}"] = figures
        plain = run(n, args.messages, plain=True)
        print(f"[processes] plain sqlite3 {n}+{n}: {plain}", file=sys.stderr, flush=True)
        out["plain_sqlite3"][f"{n}+{n}"] = plain
        figures["vs_plain"] = round(figures["msgs_per_s"] / plain["msgs_per_s"], 2)
    for points in (out["curve"], out["plain_sqlite3"]):
        base = points.get("1+1")
        if base:
            for figures in points.values():
                figures["vs_1_1"] = round(figures["msgs_per_s"] / base["msgs_per_s"], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
