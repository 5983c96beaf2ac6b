"""HTTP ingest: marketplace order POSTs at rising concurrency, beside a constant-answer ceiling.

Starts `fanstack gateway examples/marketplace/app.py` (the API alone, as on a gateway node) and,
as the ceiling, the same ASGI server (uvicorn, httptools, uvloop) answering a constant 202 from
a bare ASGI app. A separate load-generator process POSTs valid orders for `--seconds` at each
concurrency and reports requests/s and latency p50/p99. Prints one JSON line.

    python benchmarks/http_ingest.py --concurrency 1,8,32 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
ORDER = {
    "customer": {"id": "c-1", "email": "ada@example.com"},
    "items": [{"sku": "TEA-1", "qty": 2, "price": 7.5}, {"sku": "MUG-1", "qty": 1, "price": 3}],
    "currency": "EUR",
    "shipping": {"country": "DE", "city": "Berlin", "address": "Unter den Linden 1"},
}


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


async def load(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    """POST orders from `concurrency` connections for `seconds`."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        deadline = time.perf_counter() + seconds

        async def user(index: int) -> None:
            nonlocal errors
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                payload = {**ORDER, "order_id": f"o-{index}-{n}"}
                started = time.perf_counter()
                response = await client.post(url, json=payload)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 202:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(user(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - began
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "concurrency": concurrency,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(quantiles[49] * 1000, 2),
        "p99_ms": round(quantiles[98] * 1000, 2),
        "errors": errors,
    }


def run_load(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    """Run the load generator in its own process, so it does not share the server's GIL."""
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            url,
            "--concurrency",
            str(concurrency),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(output.stdout)
    return result


def measure(
    command: list[str], url: str, levels: list[int], seconds: float, cwd: Path
) -> list[dict[str, float]]:
    server = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_up(url.rsplit("/market", 1)[0] + "/", server)
        run_load(url, 1, 1.0)  # warm-up
        return [run_load(url, level, seconds) for level in levels]
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(load(args.load, int(args.concurrency), args.seconds))))
        return
    levels = [int(level) for level in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port = free_port()
        fanstack = measure(
            [
                sys.executable,
                "-m",
                "fanstack.cli",
                "--data-dir",
                str(root / "state"),
                "gateway",
                str(REPO / "examples/marketplace/app.py"),
                "--port",
                str(port),
            ],
            f"http://127.0.0.1:{port}/market/eu/shops/s-1/orders",
            levels,
            args.seconds,
            root,
        )
        port = free_port()
        ceiling = measure(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(REPO / "benchmarks"),
                "http_ingest:constant_app",
                "--port",
                str(port),
                "--http",
                "httptools",
                "--loop",
                "uvloop",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            f"http://127.0.0.1:{port}/market/eu/shops/s-1/orders",
            levels,
            args.seconds,
            root,
        )
    ratios = [
        round(f["requests_per_s"] / c["requests_per_s"], 3)
        for f, c in zip(fanstack, ceiling, strict=True)
    ]
    print(
        json.dumps(
            {
                "benchmark": "http_ingest",
                "backend": "sqlite",
                "seconds_per_level": args.seconds,
                "fanstack_gateway": fanstack,
                "ceiling_constant_asgi": ceiling,
                "ratio_requests_per_s": ratios,
                "cpu_count": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
