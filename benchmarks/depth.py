"""Work that grows with depth: stats() and receive latency at 10k / 100k / 1M messages (SQLite).

For each depth, fills queue `backlog` of an embedded store (send_batch of 10, 1 KB bodies, a
one-hour retention), the first half sent 1,801 s of fanstack clock before the second. Then:

- `stats_ms`: 20 calls of `stats()` on the whole backlog (median, max);
- the clock moves 1,800 s on: the first half has just expired and is not deleted yet, as after a
  quiet spell; `receive_delete_ms`: rounds of receive 10 + delete_batch (p50, p99, max) that
  take a fifth of the live half, while receives delete the expired half a bounded batch at a
  time; then `stats()` must count that half as expired and the rest as visible.

Beside them, in the same run and on a file of the same depth, the plain-sqlite3 baseline: a
table with one row per message (1 KB body) and an index on (queue, visible_at); `COUNT(*)` of
the queue (what a scan-based depth costs) and a claim of 10 (`UPDATE ... RETURNING` on the
index) + delete of those 10. Prints one JSON line; a failed send or delete, a receive short of
10 or a depth the stats miscount fails the run instead (exit 1, the reason on stderr).

    python benchmarks/depth.py --depths 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

from fanstack import App

BODY = "x" * 1024
RETENTION = 3600
ROUNDS = 2000
STATS_CALLS = 20


def log(text: str) -> None:
    print(f"[depth] {text}", file=sys.stderr, flush=True)


def fail(text: str) -> NoReturn:
    raise SystemExit(f"depth: FAILED: {text}")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": round(ordered[len(ordered) // 2] * 1000, 3),
        "p99": round(ordered[int(len(ordered) * 0.99)] * 1000, 3),
        "max": round(ordered[-1] * 1000, 3),
    }


def rounds(depth: int) -> int:
    """Receive rounds at a depth: a fifth of the live half, at most ROUNDS."""
    return min(ROUNDS, depth // 100)


def run_fanstack(depth: int, data_dir: Path) -> dict[str, Any]:
    app = App("depth", data_dir=data_dir)
    queue = app.queue("backlog", retention=RETENTION)
    base = time.time()
    offset = [0.0]
    app.backend.clock = lambda: time.time() + offset[0]
    started = time.perf_counter()
    for n in range(0, depth, 10):
        if n == depth // 2 // 10 * 10:
            offset[0] += RETENTION // 2 + 1  # the second half is sent later
        result = queue.send_batch([{"id": str(i), "body": BODY} for i in range(10)])
        if not result.ok:
            fail(f"send_batch failed: {result.failed}")
    fill_s = time.perf_counter() - started
    log(f"fanstack: filled {depth} in {fill_s:.1f} s (base {base:.0f})")
    stats_times = []
    for _ in range(STATS_CALLS):
        began = time.perf_counter()
        stats = queue.stats()
        stats_times.append(time.perf_counter() - began)
    if stats.visible != depth:
        fail(f"stats counted {stats} at depth {depth}")
    offset[0] += RETENTION // 2  # the first half is past its retention now, not deleted yet
    expired = depth // 2 // 10 * 10
    receive_times = []
    for _ in range(rounds(depth)):
        began = time.perf_counter()
        batch = queue.receive(max_messages=10)
        if len(batch) != 10:
            fail(f"a receive got {len(batch)} at depth {depth}")
        deleted = queue.delete_batch([m.receipt_handle for m in batch])
        receive_times.append(time.perf_counter() - began)
        if not deleted.ok:
            fail(f"delete_batch failed at depth {depth}: {deleted.failed}")
    stats = queue.stats()
    if (stats.expired, stats.visible) != (expired, depth - expired - rounds(depth) * 10):
        fail(f"stats counted {stats} at depth {depth} after the receives")
    app.close()
    return {
        "fill_msgs_per_s": round(depth / fill_s),
        "stats_ms": {
            "median": round(statistics.median(stats_times) * 1000, 3),
            "max": round(max(stats_times) * 1000, 3),
        },
        "receive_delete_ms": percentiles(receive_times),
    }


def run_baseline(depth: int, path: Path) -> dict[str, Any]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(
        "CREATE TABLE messages (seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, body TEXT NOT NULL,"
        " visible_at REAL NOT NULL, receipt TEXT);"
        "CREATE INDEX messages_by_visibility ON messages (queue, visible_at);"
    )
    now = time.time()
    for n in range(0, depth, 1000):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO messages (queue, body, visible_at) VALUES ('backlog', ?, ?)",
            [(BODY, now)] * min(1000, depth - n),
        )
        db.execute("COMMIT")
    count_times = []
    for _ in range(STATS_CALLS):
        began = time.perf_counter()
        (count,) = db.execute("SELECT COUNT(*) FROM messages WHERE queue = 'backlog'").fetchone()
        count_times.append(time.perf_counter() - began)
    if count != depth:
        fail(f"baseline: COUNT(*) found {count} rows at depth {depth}")
    receive_times = []
    for round_ in range(rounds(depth)):
        began = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        claimed = db.execute(
            "UPDATE messages SET visible_at = ?, receipt = ? WHERE seq IN (SELECT seq FROM "
            "messages WHERE queue = 'backlog' AND visible_at <= ? ORDER BY visible_at LIMIT 10)"
            " RETURNING seq, body",
            (now + 30, str(round_), time.time()),
        ).fetchall()
        db.execute("COMMIT")
        db.execute("BEGIN IMMEDIATE")
        db.executemany("DELETE FROM messages WHERE seq = ?", [(seq,) for seq, _ in claimed])
        db.execute("COMMIT")
        receive_times.append(time.perf_counter() - began)
        if len(claimed) != 10:
            fail(f"baseline: a claim got {len(claimed)} rows at depth {depth}")
    db.close()
    return {
        "count_ms": {
            "median": round(statistics.median(count_times) * 1000, 3),
            "max": round(max(count_times) * 1000, 3),
        },
        "receive_delete_ms": percentiles(receive_times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depths", default="10000,100000,1000000")
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    if any(depth < 100 or depth % 10 for depth in depths):
        parser.error("each depth must be a multiple of 10 and at least 100 (one receive round)")
    out: dict[str, Any] = {
        "benchmark": "depth",
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "targets": {"stats_ms_max": 5.0},
        "depths": {},
    }
    for depth in depths:
        with tempfile.TemporaryDirectory() as tmp:
            fanstack = run_fanstack(depth, Path(tmp) / "data")
            baseline = run_baseline(depth, Path(tmp) / "plain.db")
        log(f"{depth}: fanstack {fanstack} baseline {baseline}")
        out["depths"][str(depth)] = {
            "fanstack": fanstack,
            "baseline_sqlite3": baseline,
            "stats_met": fanstack["stats_ms"]["max"] < 5.0,
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
