"""Real servers for end-to-end tests: `fanstack run` in a subprocess on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
MARKETPLACE = REPO / "examples" / "marketplace" / "app.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A running `fanstack run` process and a client for it."""

    process: subprocess.Popen[str]
    url: str
    data_dir: Path
    log_path: Path

    def client(self, **options: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **options)  # type: ignore[arg-type]

    def logs(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    app_path: Path,
    data_dir: Path,
    *,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    command: str = "run",
    host: str = "127.0.0.1",
    backend: str | None = None,
) -> Server:
    port = free_port()
    log_path = data_dir.parent / f"server-{port}.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fanstack.cli",
            "--data-dir",
            str(data_dir),
            *(["--backend", backend] if backend else []),
            command,
            str(app_path),
            "--host",
            host,
            "--port",
            str(port),
            "--grace",
            "5",
            *args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=data_dir.parent,
    )
    url = f"http://127.0.0.1:{port}"
    server = Server(process, url, data_dir, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{server.logs()}")
        try:
            response = httpx.get(f"{url}/openapi.json", timeout=2)
            if response.status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"server did not come up:\n{server.logs()}")


@pytest.fixture
def marketplace(tmp_path: Path) -> Iterator[Server]:
    server = start_server(MARKETPLACE, tmp_path / "state")
    yield server
    server.stop()


def wait_for(predicate: object, timeout: float = 30.0, interval: float = 0.1) -> object:
    """Poll `predicate()` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()  # type: ignore[operator]
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


ECOMMERCE = REPO / "examples" / "ecommerce" / "app.py"
ORDERS_SAGA = REPO / "examples" / "orders_saga" / "app.py"
