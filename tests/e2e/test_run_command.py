"""`fanstack run` as a developer uses it: --reload on code change, Ctrl-C shuts down cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from .conftest import free_port, wait_for

APP = textwrap.dedent(
    """
    from fanstack import App

    app = App("reloading")
    inbox = app.queue("inbox")
    app.api.post("/v1", send=inbox, request_schema={"type": "object"}, auth="open")
    """
)


def test_reload_restarts_on_code_change(tmp_path: Path) -> None:
    app_file = tmp_path / "reloading_app.py"
    app_file.write_text(APP)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fanstack.cli",
            "run",
            str(app_file),
            "--port",
            str(port),
            "--reload",
            "--grace",
            "2",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def status(path: str) -> int:
        try:
            return httpx.post(url + path, json={}, timeout=2).status_code
        except httpx.HTTPError:
            return 0

    try:
        wait_for(lambda: status("/v1") == 202, timeout=60)
        assert status("/v2") == 404
        app_file.write_text(APP + '\napp.api.post("/v2", send=inbox, auth="open")\n')
        wait_for(lambda: status("/v2") == 202, timeout=60)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def test_ctrl_c_stops_the_server_and_the_consumers(tmp_path: Path) -> None:
    app_file = tmp_path / "reloading_app.py"
    app_file.write_text(APP)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "fanstack.cli", "run", str(app_file), "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(lambda: _up(f"http://127.0.0.1:{port}/openapi.json"), timeout=60)
    began = time.monotonic()
    server.send_signal(signal.SIGINT)
    output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert time.monotonic() - began < 15
    assert "POST" in output and "/v1" in output  # the banner listed the routes
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(line.get("message") == "stopped" for line in lines), output


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
