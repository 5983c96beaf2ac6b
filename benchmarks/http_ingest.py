"""HTTP ingest: marketplace order POSTs at rising concurrency, beside a constant-answer ceiling.

Load comes from `wrk` (compiled; installed with apt-get when missing and run as root), not from
Python, so the figures are the servers' and not the load generator's. For each server, wrk POSTs
the same JSON order (a Lua script sets method, body and content-type, checks that every answer
is 202 and reports its summary) from `-t 2` threads and `-c` connections for `--seconds`:

- fanstack: `fanstack gateway examples/marketplace/app.py` (the API alone, as on a gateway node)
  on the embedded SQLite store in a temp data dir; each 202 means the order was published to
  topic `orders`, whose subscription queues take it;
- the ceiling: the same ASGI server with the same options (uvicorn, fanstack's httptools
  protocol and connection limit, uvloop) serving a bare ASGI app that reads the body and
  answers a constant 202 JSON. `ratio` = fanstack requests/s / the ceiling's;
- the durable ceiling (`durable_ceiling.py`): the same server, with an ASGI app doing in plain
  Python the least a 202 stands for (the order checked against the same schema, stored in
  plain sqlite3 as a publish to the five queues, one transaction per turn of the loop, 202
  after the commit). `ratio_to_durable` = fanstack / it; `durable_vs_ceiling` = it / the
  constant answer: how much of that rate a durable answer can keep on this machine.

Beside each figure, in cores (CPU seconds / wall seconds; the machine has `cpus`): wrk's CPU,
the server's (the kernel's loopback TCP work included, charged to the process it ran in) and
the rest of the machine's busy time (`other_cpu_cores`: other processes competing; within
+-0.2 of 0 on a quiet machine, as /proc/stat is sampled at clock ticks), so one sees which side
was saturated and whether the run had the machine to itself.

After the fanstack run the gateway is stopped and the data dir opened again: every unfiltered
queue of topic `orders` must hold at least the 202s wrk counted (and at most one more per
connection: a request answered after wrk stopped counting); the durable ceiling's file must
hold every order it answered 202. Any failure (a server that does not start, wrk failing, a
socket error or a non-202 answer, an acknowledged order missing) exits non-zero. Prints one
JSON line.

    python benchmarks/http_ingest.py --concurrency 1,8,32 --seconds 5
    python benchmarks/http_ingest.py --concurrency 32 --workers 2   # a server process per core

With `--workers N`, both sides run N server processes sharing the port (fanstack's
`--workers`, and the same for the ceiling), and the server CPU counts them all.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "examples/marketplace/app.py"
ORDERS_PATH = "/market/eu/shops/s-1/orders"
ORDER = {
    "customer": {"id": "c-1", "email": "ada@example.com"},
    "items": [{"sku": "TEA-1", "qty": 2, "price": 7.5}, {"sku": "MUG-1", "qty": 1, "price": 3}],
    "currency": "EUR",
    "shipping": {"country": "DE", "city": "Berlin", "address": "Unter den Linden 1"},
}
WRK_THREADS = 2
WRK_INSTALL = "apt-get install -y wrk"
WARM_UP_SECONDS = 1
PORT_RANGE = (20_000, 32_000)  # below Linux's ephemeral range, where client sockets bind
PORT_ATTEMPTS = 5
READY_TIMEOUT = 60.0
SUMMARY_MARK = "HTTP_INGEST_SUMMARY "
SOCKET_ERRORS = ("connect_errors", "read_errors", "write_errors", "timeouts")

# The order body goes in a Lua long string; `done` prints wrk's own totals as one JSON line.
# `response` makes wrk hand every answer to Lua, the only way it tells 202 from another 2xx.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"

local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  not_202 = 0
  first_status = 0
end

function response(status, headers, body)
  if status ~= 202 then
    not_202 = not_202 + 1
    if first_status == 0 then first_status = status end
  end
end

function done(summary, latency, requests)
  local not_202, first_status = 0, 0
  for _, thread in ipairs(threads) do
    not_202 = not_202 + thread:get("not_202")
    if first_status == 0 then first_status = thread:get("first_status") end
  end
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, '
    .. '"write_errors": %d, "timeouts": %d, "status_over_399": %d, "not_202": %d, '
    .. '"first_other_status": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    not_202, first_status, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


async def constant_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ceiling: read the body, answer a constant 202 JSON."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = b'{"order_id":"o-1","message_id":"00000000-0000-0000-0000-000000000000"}'
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve_ceiling(port: int, workers: int, durable: Path | None) -> None:
    """Serve `constant_app` (or, given a file, `durable_ceiling.DurableOrders` storing there)
    with the uvicorn options `fanstack gateway` uses (`fanstack.serve`), in as many processes
    sharing the port as fanstack gets (`fanstack.server_processes`)."""
    import signal

    import uvicorn

    from fanstack.gateway.limits import ServerLimits
    from fanstack.gateway.protocol import uvicorn_options
    from fanstack.server_processes import ServerProcesses, bind, inherited_socket

    inherited = inherited_socket()
    if workers > 1 and inherited is None:
        children = ServerProcesses(bind("127.0.0.1", port), workers, [sys.executable, *sys.argv])
        children.start()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()
        children.stop(timeout=10)
        return
    app: Any = constant_app
    if durable is not None:
        from durable_ceiling import DurableOrders

        app = DurableOrders(durable)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        **uvicorn_options(ServerLimits()),
    )
    uvicorn.Server(config).run(sockets=[inherited] if inherited is not None else None)


# -- plumbing ---------------------------------------------------------------------------------


def log(text: str) -> None:
    print(f"[http_ingest] {text}", file=sys.stderr, flush=True)


def fail(text: str) -> NoReturn:
    raise SystemExit(f"http_ingest: FAILED: {text}")


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def ensure_wrk() -> str:
    """The wrk binary; installed with apt-get when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        fail(f"wrk is not installed and installing it needs root: run `sudo {WRK_INSTALL}`")
    if shutil.which("apt-get") is None:
        fail(f"wrk is not installed and there is no apt-get here: install wrk ({WRK_INSTALL})")
    log(f"wrk not found: {WRK_INSTALL}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = WRK_INSTALL.split()
    done = subprocess.run(install, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        log("install failed; apt-get update, then install again")
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env)
        done = subprocess.run(install, capture_output=True, text=True, env=env)
    found = shutil.which("wrk")
    if found is None:
        output = (done.stdout + done.stderr)[-2000:]
        fail(
            f"could not install wrk (`{WRK_INSTALL}` exited with {done.returncode}):\n{output}\n"
            f"install it (`apt-get update && {WRK_INSTALL}`) and run again"
        )
    return found


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def pick_port() -> int:
    """A port in `PORT_RANGE` that nothing listens on now (checked by binding it)."""
    for _ in range(200):
        port = random.randint(*PORT_RANGE)
        if port_is_free(port):
            return port
    fail(f"no free port found in {PORT_RANGE[0]}-{PORT_RANGE[1]}")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a live process and its live children (the
    server processes of `--workers`), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return own + sum(_cpu_or_zero(child) for child in children)


def _cpu_or_zero(pid: int) -> float:
    try:
        return proc_cpu(pid)
    except OSError:  # it exited meanwhile
        return 0.0


def children_cpu() -> float:
    """CPU seconds of the child processes waited for so far (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (not idle nor waiting on I/O), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


# -- servers ----------------------------------------------------------------------------------


@dataclass
class Server:
    """A server process under test: its port, its log, and what it was started as."""

    what: str
    process: subprocess.Popen[bytes]
    port: int
    logfile: Path

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            fail(f"{self.what} exited with {self.process.returncode}:\n{tail(self.logfile)}")

    def stop(self) -> int:
        """SIGTERM, and its exit status once it has shut down."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def start_server(what: str, command: list[str], ready_path: str, directory: Path) -> Server:
    """Start `command` (with `--port N` appended) on a free port; retry on another port when
    it could not bind; return once it answers HTTP on `ready_path`."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = pick_port()
        logfile = directory / f"{what}-{port}.log"
        with logfile.open("ab") as out:
            process = subprocess.Popen(
                [*command, "--port", str(port)], stdout=out, stderr=out, cwd=directory
            )
        server = Server(what, process, port, logfile)
        if wait_ready(server, ready_path):
            log(f"{what} ready on port {port} (pid {process.pid})")
            return server
        text = tail(logfile)
        if "address already in use" not in text.lower():
            fail(f"{what} exited with {process.returncode} on port {port}:\n{text}")
        log(f"{what}: port {port} taken meanwhile (attempt {attempt}); trying another")
    fail(f"{what} could not bind a port in {PORT_ATTEMPTS} attempts:\n{tail(logfile)}")


def wait_ready(server: Server, path: str) -> bool:
    """True once the server listens on its port and answers HTTP on `path`; False if it exited
    (say, the port was taken meanwhile); fail after `READY_TIMEOUT`."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        if listens(server.process.pid, server.port):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
            try:
                connection.request("GET", path)
                connection.getresponse().read()
                return True
            except OSError:
                pass
            finally:
                connection.close()
        time.sleep(0.1)
    server.stop()
    fail(
        f"{server.what} did not answer on port {server.port} within {READY_TIMEOUT:g} s:\n"
        f"{tail(server.logfile)}"
    )


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` itself holds the listening socket on `port` (not a stranger that
    took the port between our check and its bind), from /proc."""
    inodes = set()
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        table = Path(f"/proc/{pid}/net/tcp").read_text()
    except FileNotFoundError:  # it exited meanwhile
        return False
    for fd in descriptors:
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    for line in table.splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].rpartition(":")[2], 16), fields[3], fields[9]
        if state == "0A" and local_port == port and inode in inodes:  # 0A: LISTEN
            return True
    return False


def probe_order(server: Server) -> None:
    """One order POSTed the ordinary way: the route must answer 202 with an order id."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(
            "POST", ORDERS_PATH, json.dumps(ORDER), {"content-type": "application/json"}
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 202 or b"order_id" not in body:
        fail(
            f"{server.what}: POST {ORDERS_PATH} answered {response.status} {body[:500]!r}\n"
            f"{tail(server.logfile)}"
        )


# -- load -------------------------------------------------------------------------------------


def run_wrk(
    wrk: str, script: Path, server: Server, concurrency: int, seconds: int
) -> dict[str, Any]:
    """One wrk run against `server`: its figures, wrk's CPU and the server's; fail on errors."""
    threads = min(WRK_THREADS, concurrency)  # wrk needs a connection per thread
    command = [
        wrk,
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{server.port}{ORDERS_PATH}",
    ]
    wrk_before, server_before = children_cpu(), proc_cpu(server.process.pid)
    busy_before = machine_busy()
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired as error:
        fail(
            f"wrk did not end within {seconds + 60} s: {' '.join(command)}\n{error.stdout!r}\n"
            f"{server.what} log:\n{tail(server.logfile)}"
        )
    wall = time.perf_counter() - started
    wrk_cpu = children_cpu() - wrk_before
    server.check_alive()
    server_cpu = proc_cpu(server.process.pid) - server_before
    busy = machine_busy() - busy_before
    summary = parse_summary(done, command)
    socket_errors = {key: summary[key] for key in SOCKET_ERRORS}
    errors = sum(socket_errors.values()) + summary["not_202"]
    if errors or summary["requests"] == 0:
        fail(
            f"{server.what} at concurrency {concurrency}: {summary['requests']} answers, "
            f"{summary['not_202']} of them not 202 (the first: {summary['first_other_status']}), "
            f"socket errors {socket_errors}\nwrk said:\n{done.stdout}\n"
            f"{server.what} log:\n{tail(server.logfile)}"
        )
    duration = summary["duration_us"] / 1e6
    return {
        "concurrency": concurrency,
        "wrk_threads": threads,
        "requests": summary["requests"],
        "requests_per_s": round(summary["requests"] / duration, 1),
        "p50_ms": round(summary["p50_us"] / 1000, 3),
        "p99_ms": round(summary["p99_us"] / 1000, 3),
        "max_ms": round(summary["max_us"] / 1000, 3),
        "errors": errors,
        "wrk_cpu_cores": round(wrk_cpu / wall, 2),
        "server_cpu_cores": round(server_cpu / wall, 2),
        "other_cpu_cores": round((busy - wrk_cpu - server_cpu) / wall, 2),
    }


def parse_summary(done: subprocess.CompletedProcess[str], command: list[str]) -> dict[str, int]:
    """The JSON line the Lua `done` hook printed; fail with wrk's output if there is none."""
    for line in done.stdout.splitlines():
        if line.startswith(SUMMARY_MARK):
            summary: dict[str, int] = json.loads(line.removeprefix(SUMMARY_MARK))
            if done.returncode == 0:
                return summary
    fail(
        f"wrk exited with {done.returncode} without its summary: {' '.join(command)}\n"
        f"{done.stdout}\n{done.stderr}"
    )


def measure(
    wrk: str, script: Path, server: Server, levels: list[int], seconds: int
) -> tuple[list[dict[str, Any]], int]:
    """Figures at each concurrency, and every 202 the server gave (probe and warm-up too)."""
    probe_order(server)
    warm_up = run_wrk(wrk, script, server, max(levels), WARM_UP_SECONDS)
    acknowledged = 1 + warm_up["requests"]
    figures = []
    for level in levels:
        result = run_wrk(wrk, script, server, level, seconds)
        log(
            f"{server.what} c={level}: {result['requests_per_s']} req/s, "
            f"p99 {result['p99_ms']} ms, wrk {result['wrk_cpu_cores']} cores, "
            f"server {result['server_cpu_cores']} cores"
        )
        acknowledged += result["requests"]
        figures.append(result)
    return figures, acknowledged


def stored_orders(data_dir: Path) -> int:
    """Orders the store holds: the depth every unfiltered queue of topic `orders` agrees on
    (a publish delivers to all of them or none)."""
    from fanstack.backends import open_backend

    backend = open_backend(None, data_dir=data_dir)
    try:
        depths = {}
        for subscription in backend.list_subscriptions("orders"):
            if subscription.filter_policy is None:
                stats = backend.stats(subscription.queue)
                depths[subscription.queue] = stats.visible + stats.in_flight + stats.delayed
    finally:
        backend.close()
    if not depths:
        fail(f"no unfiltered subscription of topic 'orders' in {data_dir}")
    if len(set(depths.values())) != 1:
        fail(f"the queues of topic 'orders' disagree on the orders stored: {depths}")
    return next(iter(depths.values()))


def run_fanstack(
    wrk: str, script: Path, levels: list[int], seconds: int, tmp: Path, workers: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The gateway's figures, then its durability check once it has stopped."""
    data_dir = tmp / "state"
    command = [
        sys.executable,
        "-m",
        "fanstack.cli",
        "--data-dir",
        str(data_dir),
        "gateway",
        str(APP),
        "--workers",
        str(workers),
    ]
    server = start_server("fanstack-gateway", command, "/_fanstack/health", tmp)
    try:
        figures, acknowledged = measure(wrk, script, server, levels, seconds)
    finally:
        status = server.stop()
    if status != 0:
        fail(f"fanstack gateway exited with {status} on SIGTERM:\n{tail(server.logfile)}")
    stored = stored_orders(data_dir)
    in_flight_bound = max(levels) + sum(levels)  # one unanswered request per connection
    durability = {
        "acknowledged_202": acknowledged,
        "stored_orders": stored,
        "stored_not_acknowledged": stored - acknowledged,
        "stored_not_acknowledged_max": in_flight_bound,
    }
    if stored < acknowledged:
        fail(f"acknowledged orders are missing from the store: {durability}")
    if stored - acknowledged > in_flight_bound:
        fail(f"more orders stored than requests could have been in flight: {durability}")
    return figures, durability


def run_ceiling(
    wrk: str,
    script: Path,
    levels: list[int],
    seconds: int,
    tmp: Path,
    workers: int,
    *,
    durable: bool = False,
) -> list[dict[str, Any]]:
    """The constant answer's figures, or (`durable`) `durable_ceiling`'s, every 202 of which
    must be a stored order."""
    path = tmp / "durable-ceiling.db"
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-ceiling"]
    command += ["--durable-file", str(path)] if durable else []
    command += ["--workers", str(workers)]
    server = start_server("durable-ceiling" if durable else "ceiling", command, "/", tmp)
    try:
        figures, acknowledged = measure(wrk, script, server, levels, seconds)
    finally:
        server.stop()
    if durable:
        from durable_ceiling import stored_orders as stored_rows

        stored = stored_rows(path)
        if stored < acknowledged:
            fail(f"durable ceiling: {acknowledged} orders acknowledged, {stored} stored")
    return figures


def write_script(path: Path) -> Path:
    body = json.dumps(ORDER)
    if "]==]" in body:
        fail("the order body would end the Lua long string")
    path.write_text(WRK_SCRIPT.format(body=body, mark=SUMMARY_MARK))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", default="1,8,32", help="wrk connections, comma-separated")
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration at each concurrency")
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes, for fanstack and the ceiling"
    )
    parser.add_argument("--serve-ceiling", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--durable-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ceiling:
        serve_ceiling(args.port, args.workers, args.durable_file)
        return
    levels = [int(level) for level in args.concurrency.split(",")]
    if min(levels) < 1 or args.seconds < 1:
        parser.error("concurrency levels and seconds must be at least 1")
    loadavg = os.getloadavg()
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="fanstack-http-ingest-") as name:
        tmp = Path(name)
        script = write_script(tmp / "post_order.lua")
        fanstack, durability = run_fanstack(wrk, script, levels, args.seconds, tmp, args.workers)
        ceiling = run_ceiling(wrk, script, levels, args.seconds, tmp, args.workers)
        durable = run_ceiling(wrk, script, levels, args.seconds, tmp, args.workers, durable=True)
    per_level = [
        {
            "concurrency": ours["concurrency"],
            "fanstack": ours,
            "ceiling": theirs,
            "ratio": round(ours["requests_per_s"] / theirs["requests_per_s"], 3),
            "durable_ceiling": done,
            "ratio_to_durable": round(ours["requests_per_s"] / done["requests_per_s"], 3),
            "durable_vs_ceiling": round(done["requests_per_s"] / theirs["requests_per_s"], 3),
        }
        for ours, theirs, done in zip(fanstack, ceiling, durable, strict=True)
    ]
    print(
        json.dumps(
            {
                "benchmark": "http_ingest",
                "backend": "sqlite",
                "load_generator": f"wrk -t{WRK_THREADS} (at most one thread per connection)",
                "seconds_per_level": args.seconds,
                "server_processes": args.workers,
                "cpus": os.cpu_count(),
                "loadavg_at_start": [round(x, 2) for x in loadavg],
                "levels": per_level,
                "durability": durability,
            }
        )
    )


if __name__ == "__main__":
    main()
