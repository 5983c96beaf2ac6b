"""Does the NATS backend scale out? Memory and start-up vs backlog, idle CPU, multi-process fan-out.

Starts its own nats-server (JetStream, `max_payload` 8 MB, free port, store in a temp dir) unless
`--backend` names a running one. Each figure sits beside a baseline from the same run and server:

1. `rss` (`--depths`): `--publishers` fanstack processes fill queue `backlog` (send_batch of 10,
   1 KB bodies) to each depth (fill rate reported); then a fresh Python process imports fanstack,
   opens the App and receives one message: wall time from its spawn (`startup_s`) and peak RSS
   (`rss_mb`, VmHWM), median of 3; then the median of 5 `stats()` of the backlog (`stats_ms`).
   Baseline: a fresh process importing only nats-py that connects and fetches one message of the
   same stream with an ephemeral pull consumer, then reads its consumer info 5 times.
   Targets: RSS under 150 MB at every depth and within 10% across depths; start-up under 2 s;
   stats under 5 ms.
2. `idle_cpu`: `fanstack gateway` on an app declaring only its own queue sits idle while
   `--publishers` processes send and `--consumers` processes receive + delete `--idle-messages`
   through queue `work` of the same namespace. Its CPU seconds over that window (/proc/PID/stat)
   beside the working processes' (getrusage in each). Target: under 2% of theirs.
3. `fanout`: topic `orders` -> 5 queues (`compliance` filtered to market ru, a third), ~1 KB JSON
   bodies, `--events`; `--publishers` processes publish_batch 10 from 8 threads each,
   `--consumers` processes each drain all 5 queues (a thread per queue: receive 10 with a
   1 s long poll, delete_batch); events/s from the first publish to the last delete, and the
   CPU seconds of the publishers, the consumers and the nats-server. Ceiling with the same
   process counts: raw nats-py, one interest stream, each event
   published once on `<stream>.orders.<market>` (the market is in the subject: the filtered
   consumer filters server-side), 500 publishes in flight per process; 5 durable pull consumers,
   each consumer process fetching 100 at a time from all 5 at once and acking every message
   (an ack the server does not confirm; fanstack's delete is confirmed). Target: ratio >= 0.75.

Progress goes to stderr, one JSON object to stdout; a failed process fails the run (exit 1):

    python benchmarks/scale.py --depths 2000,20000 --events 10000 --idle-messages 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import queue as queue_module
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

# The same events as benchmarks/fanout.py.
from fanout import QUEUES, expected_deliveries, make_events, servers_of, unreachable

BATCH = 10
PUBLISH_THREADS = 8  # threads per fanstack publisher process, each publishing batches of 10
STALL_S = 120.0  # a drain that makes no progress this long fails the run
PHASE_TIMEOUT = 7200.0  # a whole phase (e.g. a 1,000,000 fill) must end within this
BIN = Path(sys.executable).parent
TARGETS = {
    "rss_mb_max": 150,
    "rss_spread_max": 0.10,
    "startup_s_max": 2.0,
    "stats_ms_max": 5.0,
    "idle_cpu_share_max": 0.02,
    "fanout_ratio_min": 0.75,
}
Job = Callable[[dict[str, Any], "Progress", Callable[[], None]], dict[str, Any]]

# A fresh process: argv[1] is the parent's clock at spawn, argv[2] the side. Peak RSS is VmHWM:
# ru_maxrss would also count the parent's pages the child shared before exec.
PROBE = """
import asyncio, json, sys, time
began = time.time()
if sys.argv[2] == "fanstack":
    from fanstack import App
    app = App("scale", backend=sys.argv[3])
    backlog = app.queue("backlog")
    got = backlog.receive(max_messages=1, wait_seconds=5)
    done = time.time()
    times = []
    for _ in range(5):
        t = time.perf_counter(); backlog.stats(); times.append(time.perf_counter() - t)
else:
    import nats
    async def fetch():
        nc = await nats.connect(servers=sys.argv[3].split(","))
        subscription = await nc.jetstream().pull_subscribe(sys.argv[4], stream=sys.argv[5])
        got = await subscription.fetch(1, timeout=5)
        done = time.time()
        times = []
        for _ in range(5):
            t = time.perf_counter(); await subscription.consumer_info()
            times.append(time.perf_counter() - t)
        return got, done, times
    got, done, times = asyncio.run(fetch())
if not got:
    sys.exit(f"{sys.argv[2]} probe: no message from the backlog")
mb = int([x for x in open("/proc/self/status") if x.startswith("VmHWM")][0].split()[1]) / 1024
print(json.dumps({"startup_s": done - float(sys.argv[1]), "in_process_s": done - began,
                  "rss_mb": mb, "stats_ms": sorted(times)[2] * 1000}))
"""


def log(text: str) -> None:
    print(f"[scale] {text}", file=sys.stderr, flush=True)


def fail(text: str) -> NoReturn:
    raise SystemExit(f"scale: FAILED: {text}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


def spawn(command: list[str], what: str, port: int, logfile: Path) -> subprocess.Popen[bytes]:
    """Start a server process logging to `logfile`; return once it listens on `port`."""
    with logfile.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, cwd=logfile.parent)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            fail(f"{what} exited with {process.returncode}: {tail(logfile)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    fail(f"{what} did not listen on port {port} within 60 s: {tail(logfile)}")


def start_server(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private nats-server with JetStream on a free port (never the shared 4222)."""
    binary = BIN / "nats-server"
    found = str(binary) if binary.exists() else shutil.which("nats-server")
    if found is None:
        fail("nats-server not found beside this Python nor on PATH")
    port = free_port()
    config = directory / "nats.conf"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nmax_payload: {8 * 1024 * 1024}\n"
        f'jetstream {{ store_dir: "{directory / "store"}" }}\n'
    )
    server = spawn([found, "-c", str(config)], "nats-server", port, directory / "nats.log")
    return server, f"nats://127.0.0.1:{port}"


def namespaced(base: str, stream: str, partitions: int | None) -> str:
    url = f"{base}{'&' if '?' in base else '?'}stream={stream}"
    return f"{url}&partitions={partitions}" if partitions else url


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a live process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- worker processes (spawned; each reports a dict of figures on the results queue) -----------


class Progress:
    """Deliveries done by all consumer processes together, with a stall check."""

    def __init__(self, counter: Any, expected: int) -> None:
        self.counter, self.expected = counter, expected
        self.seen, self.since = -1, time.monotonic()

    def add(self, count: int) -> None:
        with self.counter.get_lock():
            self.counter.value += count

    def done(self) -> bool:
        value = self.counter.value
        if value >= self.expected:
            return True
        if value != self.seen:
            self.seen, self.since = value, time.monotonic()
        elif time.monotonic() - self.since > STALL_S:
            raise RuntimeError(f"drain stalled at {value} of {self.expected} for {STALL_S:.0f} s")
        return False


def fs_app(url: str, what: str) -> Any:
    """The App every process declares alike: the fan-out topic and queues, or one queue."""
    from fanstack import App

    app = App("scale", backend=url)
    if what == "fanout":
        orders = app.topic("orders")
        for name in QUEUES:
            policy = {"market": ["ru"]} if name == "compliance" else None
            orders.subscribe(app.queue(name), filter_policy=policy, raw=True)
    else:
        app.queue(what)
    app.backend  # noqa: B018 - open and provision before the timed part
    return app


def fs_produce(p: dict[str, Any], progress: Progress, go: Callable[[], None]) -> dict[str, Any]:
    """Send 1 KB bodies to a queue (send_batch) or publish events to `orders` (publish_batch),
    from PUBLISH_THREADS threads at once (as a server handling concurrent requests would)."""
    app = fs_app(p["url"], p["what"])
    if p["what"] == "fanout":
        events = make_events(p["events"])[p["index"] :: p["procs"]]
        items = [{"body": body, "attributes": {"market": market}} for market, body in events]
        submit = app.topics["orders"].publish_batch
    else:
        items, submit = [{"body": "x" * 1024}] * p["count"], app.queues[p["what"]].send_batch
    batches = [items[start : start + BATCH] for start in range(0, len(items), BATCH)]

    def publish(share: list[list[dict[str, Any]]]) -> None:
        for batch in share:
            result = submit([{**e, "id": str(i)} for i, e in enumerate(batch)])
            if not result.ok:
                raise RuntimeError(f"{submit.__name__} failed: {result.failed}")

    go()
    first = time.time()
    with ThreadPoolExecutor(PUBLISH_THREADS) as pool:
        shares = [batches[n::PUBLISH_THREADS] for n in range(PUBLISH_THREADS)]
        for done in [pool.submit(publish, share) for share in shares]:
            done.result()
    last = time.time()
    app.close()
    return {"first": first, "last": last, "count": len(items)}


def fs_drain(p: dict[str, Any], progress: Progress, go: Callable[[], None]) -> dict[str, Any]:
    """Receive 10 and delete them, a thread per queue, until all consumers deleted `expected`."""
    app = fs_app(p["url"], p["what"])
    queues = [app.queues[name] for name in (QUEUES if p["what"] == "fanout" else [p["what"]])]
    lock = threading.Lock()
    span = {"first": time.time(), "last": time.time(), "count": 0}

    def drain(queue: Any) -> None:
        while not progress.done():
            # A long poll, as fanstack's own consumers and the ceiling's fetches wait.
            batch = queue.receive(max_messages=BATCH, wait_seconds=1)
            if not batch:
                continue
            result = queue.delete_batch([m.receipt_handle for m in batch])
            if not result.ok:
                raise RuntimeError(f"delete_batch on {queue.name} failed: {result.failed}")
            with lock:
                progress.add(len(batch))
                span["count"] += len(batch)
                span["last"] = time.time()

    go()
    span["first"] = time.time()
    with ThreadPoolExecutor(len(queues)) as pool:
        for done in [pool.submit(drain, queue) for queue in queues]:
            done.result()
    app.close()
    return span


def raw_publish(p: dict[str, Any], progress: Progress, go: Callable[[], None]) -> dict[str, Any]:
    """The ceiling's publisher: every event once, 500 publishes in flight."""

    async def run() -> dict[str, Any]:
        import nats

        nc = await nats.connect(servers=p["servers"])
        js = nc.jetstream(timeout=30)
        events = make_events(p["events"])[p["index"] :: p["procs"]]
        go()
        first = time.time()
        for start in range(0, len(events), 500):
            chunk = events[start : start + 500]
            subject = p["stream"] + ".orders."
            await asyncio.gather(*(js.publish(subject + m, body.encode()) for m, body in chunk))
        last = time.time()
        await nc.close()
        return {"first": first, "last": last, "count": len(events)}

    return asyncio.run(run())


def raw_drain(p: dict[str, Any], progress: Progress, go: Callable[[], None]) -> dict[str, Any]:
    """The ceiling's consumer: fetch 100 from each of the 5 consumers at once, ack each."""

    async def run() -> dict[str, Any]:
        import nats

        nc = await nats.connect(servers=p["servers"])
        js = nc.jetstream(timeout=30)
        subscriptions = [await js.pull_subscribe_bind(n, stream=p["stream"]) for n in QUEUES]
        state = {"count": 0, "last": 0.0}

        async def drain(subscription: Any) -> None:
            while not progress.done():
                try:
                    batch = await subscription.fetch(100, timeout=0.5)
                except TimeoutError:  # nats-py raises both its own and asyncio's
                    continue
                for message in batch:
                    await message.ack()
                state["count"] += len(batch)
                state["last"] = time.time()
                progress.add(len(batch))

        go()
        first = time.time()
        await asyncio.gather(*(drain(s) for s in subscriptions))
        await nc.flush()
        await nc.close()
        return {"first": first, "last": state["last"] or first, "count": state["count"]}

    return asyncio.run(run())


JOBS: dict[str, Job] = {
    "fanstack produce": fs_produce,
    "fanstack drain": fs_drain,
    "nats-py publish": raw_publish,
    "nats-py drain": raw_drain,
}


def worker(kind: str, p: dict[str, Any], ready: Any, go: Any, counter: Any, out: Any) -> None:
    """A spawned process: set up, say ready, wait for go, run, report its figures or error."""
    marks: dict[str, float] = {}

    def start() -> None:
        with ready.get_lock():
            ready.value += 1
        if not go.wait(PHASE_TIMEOUT):
            raise RuntimeError("never told to go")
        marks["cpu"] = self_cpu()

    try:
        figures = JOBS[kind](p, Progress(counter, p.get("expected", 0)), start)
        out.put({**figures, "kind": kind, "cpu_s": self_cpu() - marks["cpu"]})
    except BaseException:
        out.put({"kind": kind, "error": traceback.format_exc()})
        sys.exit(1)


def run_workers(
    jobs: list[tuple[str, dict[str, Any]]], on_go: Callable[[], None] | None = None
) -> list[dict[str, Any]]:
    """Run each job in a spawned process, all starting together; fail on any failure."""
    ctx = mp.get_context("spawn")
    ready, counter, go, out = ctx.Value("i", 0), ctx.Value("q", 0), ctx.Event(), ctx.Queue()
    args = [(kind, p, ready, go, counter, out) for kind, p in jobs]
    procs = [ctx.Process(target=worker, args=a, name=a[0]) for a in args]
    results: list[dict[str, Any]] = []

    def collect(item: dict[str, Any]) -> None:
        if "error" in item:
            fail(f"a '{item['kind']}' process failed:\n{item['error']}")
        results.append(item)

    deadline = time.monotonic() + PHASE_TIMEOUT
    going = False
    try:
        for proc in procs:
            proc.start()
        while len(results) < len(procs):
            if not going and ready.value == len(procs):
                if on_go is not None:
                    on_go()
                # Event.set waits for every waiter to wake: forever for one that died waiting,
                # so it runs aside and the loop below notices the dead process.
                threading.Thread(target=go.set, daemon=True).start()
                going = True
            try:
                collect(out.get(timeout=0.1))
                continue
            except queue_module.Empty:
                pass
            dead = next((proc for proc in procs if proc.exitcode not in (None, 0)), None)
            if dead is not None:
                try:  # its error report may still be on the way
                    while True:
                        collect(out.get(timeout=3))
                except queue_module.Empty:
                    fail(f"a '{dead.name}' process exited with {dead.exitcode} and no report")
            if time.monotonic() > deadline:
                fail(f"workers did not finish within {PHASE_TIMEOUT:.0f} s")
        for proc in procs:
            proc.join(60)
            if proc.exitcode != 0:
                fail(f"a '{proc.name}' process exited with {proc.exitcode} after reporting")
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(10)
    return results


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def window(results: list[dict[str, Any]]) -> float:
    return float(max(r["last"] for r in results) - min(r["first"] for r in results))


def cleanup(base: str, prefix: str) -> None:
    """Delete the streams and buckets of a namespace this run made."""

    async def run() -> None:
        import nats

        nc = await nats.connect(servers=servers_of(base))
        js = nc.jetstream(timeout=30)
        for info in await js.streams_info():
            name = info.config.name or ""
            if name == prefix or name.startswith((f"{prefix}_", f"KV_{prefix}_")):
                await js.delete_stream(name)
        await nc.close()

    asyncio.run(run())


# -- the three parts ----------------------------------------------------------------------------


def probe(argv: list[str], cwd: Path) -> dict[str, float]:
    """Median start-up and peak RSS of 3 fresh processes running PROBE."""
    runs = []
    for _ in range(3):
        command = [sys.executable, "-c", PROBE, repr(time.time()), *argv]
        try:
            done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)
        except subprocess.TimeoutExpired as error:
            fail(f"{argv[0]} probe did not end within 120 s: {str(error.stderr)[-2000:]}")
        if done.returncode != 0 or not done.stdout.strip():
            fail(f"{argv[0]} probe exited with {done.returncode}: {done.stderr[-2000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}


def part_rss(args: argparse.Namespace, base: str, tmp: Path) -> dict[str, Any]:
    """Start-up and peak RSS of a fresh fanstack process at each backlog depth, beside a fresh
    nats-py process fetching from the same stream; the backlog is filled by fanstack senders."""
    stream = "RSS" + uuid.uuid4().hex[:10].upper()
    url = namespaced(base, stream, args.partitions)
    fs_app(url, "backlog").close()
    rows: list[dict[str, Any]] = []
    filled = 0
    for depth in sorted(args.depths):
        more = [n for n in split(depth - filled, args.publishers) if n]
        log(f"rss: filling backlog to {depth} with {len(more)} processes")
        jobs = [("fanstack produce", {"url": url, "what": "backlog", "count": n}) for n in more]
        rate, filled = (depth - filled) / window(run_workers(jobs)), depth
        app = fs_app(url, "backlog")
        stats = app.queues["backlog"].stats()
        app.close()
        if stats.visible + stats.in_flight < depth:
            fail(f"backlog holds {stats.visible} + {stats.in_flight} in flight, not {depth}")
        log(f"rss: filled at {rate:.0f} msgs/s; probing start-up")
        ours = probe(["fanstack", url], tmp)
        # The baseline reads partition 0 (all of the backlog unless --partitions > 1).
        where = [",".join(servers_of(base)), f"fs.{stream}.0.q.backlog.m", f"{stream}_P0"]
        raw = probe(["nats-py", *where], tmp)
        log(f"rss: depth {depth}: fanstack {ours}, nats-py {raw}")
        rows.append(
            {"depth": depth, "fill_msgs_per_s": round(rate), "fanstack": ours, "nats_py": raw}
        )
    cleanup(base, stream)
    rss = [row["fanstack"]["rss_mb"] for row in rows]
    spread = (max(rss) - min(rss)) / min(rss)
    slowest = max(row["fanstack"]["startup_s"] for row in rows)
    met = max(rss) < TARGETS["rss_mb_max"] and spread <= TARGETS["rss_spread_max"]
    met = met and slowest < TARGETS["startup_s_max"]
    met = met and max(row["fanstack"]["stats_ms"] for row in rows) < TARGETS["stats_ms_max"]
    return {"depths": rows, "rss_spread": round(spread, 3), "met": met}


def part_idle(args: argparse.Namespace, base: str, tmp: Path, server: int | None) -> Any:
    """CPU of an idle `fanstack gateway` while other processes move messages through a queue it
    does not serve, beside the CPU those working processes used (and the server's, if ours)."""
    stream = "IDLE" + uuid.uuid4().hex[:10].upper()
    url = namespaced(base, stream, args.partitions)
    fs_app(url, "work").close()
    app_file = tmp / "idle_app.py"
    app_file.write_text('from fanstack import App\n\napp = App("idle")\napp.queue("idle-inbox")\n')
    port = free_port()
    command = [str(BIN / "fanstack"), "--backend", url, "gateway", str(app_file)]
    gateway = spawn([*command, "--port", str(port)], "gateway", port, tmp / "gateway.log")
    try:
        time.sleep(1.0)  # let it finish starting before the window opens
        marks: dict[str, float] = {}

        def on_go() -> None:
            marks["idle"], marks["server"] = (
                proc_cpu(gateway.pid),
                proc_cpu(server) if server else 0,
            )

        total = args.idle_messages
        send = [{"url": url, "what": "work", "count": n} for n in split(total, args.publishers)]
        drain = {"url": url, "what": "work", "expected": total}
        jobs = [("fanstack produce", p) for p in send] + [
            ("fanstack drain", drain)
        ] * args.consumers
        log(f"idle: moving {total} messages past an idle gateway (pid {gateway.pid})")
        results = run_workers(jobs, on_go)
        idle = proc_cpu(gateway.pid) - marks["idle"]
        nats_cpu = proc_cpu(server) - marks["server"] if server else None
        if gateway.poll() is not None:
            fail(f"fanstack gateway exited during the window: {tail(tmp / 'gateway.log')}")
    finally:
        gateway.terminate()
        gateway.wait(30)
    cleanup(base, stream)
    working = sum(r["cpu_s"] for r in results)
    moved = sum(r["count"] for r in results if r["kind"] == "fanstack drain")
    if moved != total:
        fail(f"idle: consumers deleted {moved} messages, {total} were sent")
    seconds = window(results)
    log(f"idle: gateway {idle:.2f} CPU s, workers {working:.2f} CPU s, in {seconds:.1f} s")
    return {
        "messages": total,
        "deliveries": moved,
        "window_s": round(seconds, 2),
        "msgs_per_s": round(total / seconds, 1),
        "idle_gateway_cpu_s": round(idle, 3),
        "working_processes_cpu_s": round(working, 2),
        "nats_server_cpu_s": None if nats_cpu is None else round(nats_cpu, 2),
        "idle_share": round(idle / working, 4),
        "met": idle / working < TARGETS["idle_cpu_share_max"],
    }


def fanout_run(
    jobs: list[tuple[str, dict[str, Any]]], events: int, expected: int, server: int | None
) -> Any:
    """Run one side of the fan-out; events/s from the first publish to the last delete, and
    CPU seconds: publishers', consumers' and (a private one's) the nats-server's."""
    server_before = proc_cpu(server) if server else 0.0
    results = run_workers(jobs)
    server_cpu = proc_cpu(server) - server_before if server else None
    deliveries = sum(r["count"] for r in results if r["kind"].endswith("drain"))
    if deliveries != expected:  # more means duplicates: the drains may have stopped too soon
        fail(f"fanout: {deliveries} deliveries, {expected} expected")
    publishers = [r for r in results if not r["kind"].endswith("drain")]
    return {
        "events_per_s": round(events / window(results), 1),
        "publish_events_per_s": round(events / window(publishers), 1),
        "deliveries": deliveries,
        "cpu_s": round(sum(r["cpu_s"] for r in results), 2),
        "publish_cpu_s": round(sum(r["cpu_s"] for r in publishers), 2),
        "drain_cpu_s": round(sum(r["cpu_s"] for r in results if r not in publishers), 2),
        "nats_server_cpu_s": None if server_cpu is None else round(server_cpu, 2),
    }


def part_fanout(args: argparse.Namespace, base: str, server: int | None) -> dict[str, Any]:
    """Events/s of the 5-queue fan-out across processes, beside raw nats-py doing the same."""
    events = args.events
    expected = expected_deliveries(make_events(events))
    stream = "FAN" + uuid.uuid4().hex[:10].upper()
    url = namespaced(base, stream, args.partitions)
    fs_app(url, "fanout").close()
    common = {"events": events, "procs": args.publishers, "expected": expected}
    ours = {**common, "url": url, "what": "fanout"}
    jobs = [("fanstack produce", {**ours, "index": i}) for i in range(args.publishers)]
    jobs += [("fanstack drain", ours)] * args.consumers
    log(f"fanout: fanstack, {events} events, {expected} deliveries")
    fanstack = fanout_run(jobs, events, expected, server)
    cleanup(base, stream)
    log(f"fanout: fanstack {fanstack}")
    ceiling = "CEIL" + uuid.uuid4().hex[:10].upper()
    theirs = {**common, "servers": servers_of(base), "stream": ceiling}
    asyncio.run(make_ceiling(theirs["servers"], ceiling))
    jobs = [("nats-py publish", {**theirs, "index": i}) for i in range(args.publishers)]
    jobs += [("nats-py drain", theirs)] * args.consumers
    log("fanout: nats-py ceiling")
    raw = fanout_run(jobs, events, expected, server)
    cleanup(base, ceiling)
    log(f"fanout: nats-py {raw}")
    ratio = fanstack["events_per_s"] / raw["events_per_s"]
    return {
        "events": events,
        "fanstack": fanstack,
        "ceiling_nats_py": raw,
        "ratio": round(ratio, 3),
        "met": ratio >= TARGETS["fanout_ratio_min"],
    }


async def make_ceiling(servers: list[str], name: str) -> None:
    """One interest stream, a durable pull consumer per queue, compliance's filtered to ru."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

    nc = await nats.connect(servers=servers)
    js = nc.jetstream(timeout=30)
    replicas = 3 if len(servers) >= 3 else 1
    retention, storage = RetentionPolicy.INTEREST, StorageType.FILE
    config = StreamConfig(name=name, subjects=[f"{name}.>"], storage=storage, retention=retention)
    config.num_replicas = replicas
    await js.add_stream(config)
    for queue in QUEUES:
        market = "ru" if queue == "compliance" else "*"
        await js.add_consumer(
            name,
            ConsumerConfig(
                durable_name=queue,
                filter_subject=f"{name}.orders.{market}",
                ack_policy=AckPolicy.EXPLICIT,
                max_ack_pending=-1,
            ),
        )
    await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="rss,idle,fanout")
    parser.add_argument("--depths", default="10000,1000000")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--idle-messages", type=int, default=100_000)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--backend", help="nats://host:port[,...]: a running server to use")
    parser.add_argument("--partitions", type=int, default=None)
    args = parser.parse_args()
    args.depths = [int(depth) for depth in args.depths.split(",")]
    parts = set(args.parts.split(","))
    if unknown := parts - {"rss", "idle", "fanout"}:
        parser.error(f"unknown parts: {sorted(unknown)}")
    counts = [args.events, args.idle_messages, args.publishers, args.consumers]
    if min(args.depths) < 1 or len(set(args.depths)) < len(args.depths) or min(counts) < 1:
        parser.error("depths must be distinct and, like every count, at least 1")
    if args.backend and (reason := unreachable(args.backend)):
        fail(reason)
    report: dict[str, Any] = {
        "benchmark": "scale",
        "backend": args.backend or "private nats-server",
        "partitions": args.partitions,
        "publishers": args.publishers,
        "consumers": args.consumers,
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "targets": TARGETS,
    }
    with tempfile.TemporaryDirectory(prefix="fanstack-scale-") as name:
        tmp = Path(name)
        server, base = (None, args.backend) if args.backend else start_server(tmp)
        try:
            if "rss" in parts:
                report["rss"] = part_rss(args, base, tmp)
            if "idle" in parts:
                report["idle_cpu"] = part_idle(args, base, tmp, server.pid if server else None)
            if "fanout" in parts:
                report["fanout"] = part_fanout(args, base, server.pid if server else None)
        finally:
            if server is not None:
                server.terminate()
                server.wait(30)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
