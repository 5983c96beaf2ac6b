"""Fan-out throughput: 1 topic -> 5 queues (one filtered to a third), ~1 KB JSON bodies.

Publishes N events in batches of 10, drains every queue with batch receive + batch delete, and
runs the same workload on plain sqlite3 in the same run as the ceiling: each body stored once
with a row per delivery, claims and deletes 10 at a time in single statements (`run_ceiling`),
the same file settings. Both durabilities by default ("normal" and "fsync"), median of
`--rounds`. Prints one JSON line.

    python benchmarks/fanout.py --events 20000
    python benchmarks/fanout.py --events 20000 --backend nats://127.0.0.1:4222

With `--backend nats://...` the ceiling is plain nats-py on the same servers: one stream, a
durable pull consumer per queue, fetch 10 and ack every message.

A run fails (exit 1, the reason on stderr, no JSON line) when a publish or delete fails, when a
drain ends with other than the expected deliveries (4 an event, 5 for market ru), or when no
NATS server of `--backend` accepts a connection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import NoReturn

from fanstack import App
from sqlite_best import PUBLICATIONS_SCHEMA, checkpoint_like_fanstack, store_publications

QUEUES = ("process", "notify", "delivery", "reports", "compliance")
MARKETS = ("eu", "us", "ru")
BATCH = 10
CONNECT_TIMEOUT = 5.0  # seconds to reach a NATS server before the run starts


def fail(text: str) -> NoReturn:
    raise SystemExit(f"fanout: FAILED: {text}")


def make_events(count: int) -> list[tuple[str, str]]:
    """(market, ~1 KB JSON body) per event."""
    filler = "x" * 880
    return [
        (
            MARKETS[n % 3],
            json.dumps({"order_id": f"o-{n}", "shop_id": n % 97, "total": n * 1.5, "note": filler}),
        )
        for n in range(count)
    ]


def expected_deliveries(events: list[tuple[str, str]]) -> int:
    """Deliveries the fan-out makes: every event to 4 queues, and market ru's to compliance."""
    return sum(4 + (market == "ru") for market, _ in events)


def run_fanstack(
    events: list[tuple[str, str]],
    data_dir: Path,
    backend: str | None = None,
    durability: str = "normal",
) -> dict[str, float]:
    app = App("bench", data_dir=data_dir, backend=backend, durability=durability)
    orders = app.topic("orders")
    queues = [app.queue(name) for name in QUEUES]
    for queue in queues:
        policy = {"market": ["ru"]} if queue.name == "compliance" else None
        orders.subscribe(queue, filter_policy=policy, raw=True)
    app.backend  # noqa: B018 - open and provision outside the timed part

    started = time.perf_counter()
    for start in range(0, len(events), BATCH):
        result = orders.publish_batch(
            [
                {"id": str(i), "body": body, "attributes": {"market": market}}
                for i, (market, body) in enumerate(events[start : start + BATCH])
            ]
        )
        if not result.ok:
            fail(f"fanstack: publish_batch failed: {result.failed}")
    published = time.perf_counter()
    deliveries = 0
    for queue in queues:
        while batch := queue.receive(max_messages=BATCH):
            deliveries += len(batch)
            deleted = queue.delete_batch([m.receipt_handle for m in batch])
            if not deleted.ok:
                fail(f"fanstack: delete_batch on {queue.name} failed: {deleted.failed}")
    drained = time.perf_counter()
    app.close()
    return _figures("fanstack", events, deliveries, started, published, drained)


def run_ceiling(events: list[tuple[str, str]], path: Path, durability: str) -> dict[str, float]:
    """The same workload in plain sqlite3 at its best: each body stored once (a payload row that
    counts its deliveries) and a row per delivery, one transaction per publish batch; drained
    10 at a time with one claiming UPDATE ... RETURNING (bodies joined) and one batched delete
    that releases the payloads. One index (the claim's); the file settings fanstack uses, and
    its checkpoints (`sqlite_best.py`)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={'FULL' if durability == 'fsync' else 'NORMAL'}")
    db.executescript(PUBLICATIONS_SCHEMA)
    checkpoints = checkpoint_like_fanstack(db, path)
    started = time.perf_counter()
    next_payload = 1
    for start in range(0, len(events), BATCH):
        payloads, queued = [], []
        for market, body in events[start : start + BATCH]:
            attributes = json.dumps({"market": {"DataType": "String", "StringValue": market}})
            queues = [q for q in QUEUES if q != "compliance" or market == "ru"]
            payloads.append((next_payload, str(uuid.uuid4()), body, attributes, len(queues)))
            queued.extend((queue, next_payload) for queue in queues)
            next_payload += 1
        db.execute("BEGIN IMMEDIATE")
        store_publications(db, payloads, queued)
        db.execute("COMMIT")
    published = time.perf_counter()
    deliveries = 0
    for queue in QUEUES:
        while True:
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            leased = db.execute(
                "UPDATE messages SET visible_at = ?, receipt = ?, receive_count = receive_count + 1"
                " WHERE seq IN (SELECT seq FROM messages WHERE queue = ? AND visible_at <= ? "
                "AND expires_at > ? ORDER BY visible_at LIMIT ?) RETURNING seq, payload",
                (now + 30, uuid.uuid4().hex, queue, now, now, BATCH),
            ).fetchall()
            bodies = (
                db.execute(
                    "SELECT id, message_id, body, attributes FROM payloads WHERE id IN "
                    f"({','.join('?' * len(leased))})",
                    [payload for _seq, payload in leased],
                ).fetchall()
                if leased
                else []
            )
            db.execute("COMMIT")
            if not leased:
                break
            if len(bodies) != len(leased):
                fail(f"ceiling: {len(leased)} messages claimed from {queue}, {len(bodies)} bodies")
            deliveries += len(leased)
            marks = ",".join("?" * len(leased))
            db.execute("BEGIN IMMEDIATE")
            released = db.execute(
                f"DELETE FROM messages WHERE seq IN ({marks}) RETURNING payload",
                [seq for seq, _payload in leased],
            ).fetchall()
            db.executemany("UPDATE payloads SET refs = refs - 1 WHERE id = ?", released)
            db.execute(
                f"DELETE FROM payloads WHERE id IN ({marks}) AND refs <= 0",
                [payload for (payload,) in released],
            )
            db.execute("COMMIT")
    drained = time.perf_counter()
    checkpoints.set()
    db.close()
    return _figures("sqlite3 ceiling", events, deliveries, started, published, drained)


def run_nats_ceiling(events: list[tuple[str, str]], url: str) -> dict[str, float]:
    """The same workload in plain nats-py: one stream, a subject and a durable pull consumer
    per queue, publishes awaited per batch, fetch 10 and ack every message."""
    return asyncio.run(_nats_ceiling(events, url))


async def _nats_ceiling(events: list[tuple[str, str]], url: str) -> dict[str, float]:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

    servers = servers_of(url)
    replicas = 3 if len(servers) >= 3 else 1
    nc = await nats.connect(servers=servers)
    js = nc.jetstream(timeout=30)
    name = "CEIL" + uuid.uuid4().hex[:12]
    await js.add_stream(
        StreamConfig(
            name=name, subjects=[f"{name}.>"], storage=StorageType.FILE, num_replicas=replicas
        )
    )
    consumers = {}
    for queue in QUEUES:
        await js.add_consumer(
            name,
            ConsumerConfig(
                durable_name=queue,
                filter_subject=f"{name}.{queue}",
                ack_policy=AckPolicy.EXPLICIT,
                max_ack_pending=-1,
            ),
        )
        consumers[queue] = await js.pull_subscribe_bind(queue, stream=name)
    started = time.perf_counter()
    for start in range(0, len(events), BATCH):
        publishes = []
        for market, body in events[start : start + BATCH]:
            message_id = str(uuid.uuid4())
            for queue in QUEUES:
                if queue != "compliance" or market == "ru":
                    publishes.append(
                        js.publish(
                            f"{name}.{queue}",
                            body.encode(),
                            headers={"Nats-Msg-Id": f"{message_id}.{queue}", "market": market},
                        )
                    )
        await asyncio.gather(*publishes)
    published = time.perf_counter()
    deliveries = 0
    for subscription in consumers.values():
        while True:
            try:
                batch = await subscription.fetch(BATCH, timeout=0.5)
            except nats.errors.TimeoutError:
                break
            for message in batch:
                await message.ack()
            deliveries += len(batch)
    await nc.flush()
    drained = time.perf_counter()
    await js.delete_stream(name)
    await nc.close()
    return _figures("nats-py ceiling", events, deliveries, started, published, drained)


def _figures(
    side: str,
    events: list[tuple[str, str]],
    deliveries: int,
    started: float,
    published: float,
    drained: float,
) -> dict[str, float]:
    """A side's figures, once its drain took every delivery the fan-out made, and no more."""
    expected = expected_deliveries(events)
    if deliveries != expected:
        fail(f"{side}: drained {deliveries} deliveries of {len(events)} events, not {expected}")
    return {
        "publish_events_per_s": round(len(events) / (published - started), 1),
        "drain_deliveries_per_s": round(deliveries / (drained - published), 1),
        "end_to_end_events_per_s": round(len(events) / (drained - started), 1),
        "deliveries": deliveries,
    }


def median_figures(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per-metric median over rounds (the machine is shared; one round can be unlucky)."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--backend", default="sqlite", help="sqlite (default) or nats://host:4222[,host2...]"
    )
    parser.add_argument(
        "--durability", default="both", choices=["normal", "fsync", "both"], help="SQLite only"
    )
    args = parser.parse_args()
    if args.events < 1 or args.rounds < 1:
        parser.error("--events and --rounds must be at least 1")
    events = make_events(args.events)
    if args.backend.startswith("nats://"):
        if reason := unreachable(args.backend):
            fail(reason)
        run_nats(args, events)
        return
    out: dict[str, object] = {
        "benchmark": "fanout",
        "backend": args.backend,
        "events": args.events,
        "rounds": args.rounds,
    }
    for durability in ("normal", "fsync") if args.durability == "both" else (args.durability,):
        ours: list[dict[str, float]] = []
        ceiling: list[dict[str, float]] = []
        for round_number in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                # Alternate which side goes first, so neither always gets the warmer machine.
                first_ours = bool(round_number % 2)
                if not first_ours:
                    ceiling.append(run_ceiling(events, Path(tmp) / "ceiling.db", durability))
                ours.append(run_fanstack(events, Path(tmp) / "fanstack", durability=durability))
                if first_ours:
                    ceiling.append(run_ceiling(events, Path(tmp) / "ceiling.db", durability))
        fanstack, raw = median_figures(ours), median_figures(ceiling)
        out[durability] = {
            "fanstack": fanstack,
            "ceiling_sqlite3": raw,
            "ratio_end_to_end": round(
                fanstack["end_to_end_events_per_s"] / raw["end_to_end_events_per_s"], 3
            ),
        }
    print(json.dumps(out))


def servers_of(url: str) -> list[str]:
    """The server URLs of a `nats://host:port[,host:port...][?options]` backend."""
    return [f"nats://{host}" for host in url.removeprefix("nats://").split("?")[0].split(",")]


def unreachable(url: str) -> str | None:
    """Why no server of `url` accepts a TCP connection, or None if one does: checked before a
    run, as nats-py would retry for minutes before giving up."""
    errors = []
    for server in servers_of(url):
        host, _, port = server.removeprefix("nats://").partition(":")
        try:
            socket.create_connection((host, int(port or 4222)), timeout=CONNECT_TIMEOUT).close()
            return None
        except (OSError, ValueError) as error:
            errors.append(f"{server}: {error}")
    return f"no NATS server of {url} accepts a connection: {'; '.join(errors)}"


def run_nats(args: argparse.Namespace, events: list[tuple[str, str]]) -> None:
    """The NATS variant: fanstack on its journal beside plain nats-py on the same servers."""
    ours: list[dict[str, float]] = []
    ceiling: list[dict[str, float]] = []
    separator = "&" if "?" in args.backend else "?"
    for round_number in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"{args.backend}{separator}stream=BENCH{uuid.uuid4().hex[:12]}"
            if round_number % 2:
                ours.append(run_fanstack(events, Path(tmp), backend=url))
                ceiling.append(run_nats_ceiling(events, args.backend))
            else:
                ceiling.append(run_nats_ceiling(events, args.backend))
                ours.append(run_fanstack(events, Path(tmp), backend=url))
    fanstack, raw = median_figures(ours), median_figures(ceiling)
    print(
        json.dumps(
            {
                "benchmark": "fanout",
                "backend": "nats",
                "events": args.events,
                "rounds": args.rounds,
                "fanstack": fanstack,
                "ceiling_nats_py": raw,
                "ratio_end_to_end": round(
                    fanstack["end_to_end_events_per_s"] / raw["end_to_end_events_per_s"], 3
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
