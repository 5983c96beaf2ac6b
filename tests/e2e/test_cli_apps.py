"""The `fanstack` commands that take an app file: functions, invoke, logs, run; and what a
user sees when the app file itself is wrong (one line, with its file and line)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from .conftest import wait_for
from .test_cli_operations import ANSI, cli, one_line_error

SHOP = textwrap.dedent(
    """
    import logging

    from fanstack import App

    app = App("shop")
    orders = app.queue("orders")
    log = logging.getLogger("shop")


    @app.function(timeout=5, memory_mb=256, concurrency=3)
    def double(event):
        log.info("doubling", extra={"value": event["n"]})
        return {"n": event["n"] * 2}


    @app.function
    def fail(event):
        raise ValueError("the payment was declined")


    @app.consumer(orders, batch_size=5)
    def ship(event):
        return None


    app.api.post("/orders", send=orders, auth="api_key")
    app.api.post("/open", send=orders, auth="open")
    app.api.open_on_loopback = True
    """
)


FANSTACK = (sys.executable, "-m", "fanstack.cli")
RUN = (*FANSTACK, "run")


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "shop_app.py"
    path.write_text(SHOP)
    return path


def test_functions_lists_each_function_with_its_settings(shop: Path, tmp_path: Path) -> None:
    listed = cli("functions", str(shop), "--json", "--data-dir", str(tmp_path / "state"))
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"double", "fail", "ship"}
    assert (rows["double"]["timeout"], rows["double"]["memory_mb"]) == (5, 256)
    assert rows["double"]["concurrency"] == 3
    assert rows["ship"]["consumers"] == [{"queue": "orders", "batch_size": 5, "batch_window": 0}]
    table = cli("functions", str(shop), COLUMNS="80", FORCE_COLOR="1", TERM="xterm")
    text = ANSI.sub("", table.stdout)
    assert "double" in text and "256 MB" in text and "orders (batch 5)" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_invoke_prints_the_result_and_a_failure_is_one_line(shop: Path, tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    done = cli("invoke", str(shop), "double", "--payload", '{"n": 21}', "--data-dir", state)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"n": 42}

    failed = cli("invoke", str(shop), "fail", "--data-dir", state, "--log-level", "error")
    assert failed.stdout == ""
    one_line_error(failed, "FunctionError", "ValueError: the payment was declined")
    debug = cli("--debug", "invoke", str(shop), "fail", "--data-dir", state)
    assert debug.returncode == 1
    assert "raise ValueError" in debug.stderr  # the handler's traceback, asked for

    one_line_error(
        cli("invoke", str(shop), "nope", "--data-dir", state), "FunctionDoesNotExist", "double"
    )
    one_line_error(
        cli("invoke", str(shop), "double", "--payload", "{n:", "--data-dir", state),
        "--payload is not JSON",
    )


def test_logs_shows_a_functions_lines_and_follows_new_ones(shop: Path, tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    invoked = cli("invoke", str(shop), "double", "--payload", '{"n": 1}', "--data-dir", state)
    assert invoked.returncode == 0, invoked.stderr
    shown = cli("logs", "--function", "double", "--data-dir", state)
    assert shown.returncode == 0, shown.stderr
    records = [json.loads(line) for line in shown.stdout.splitlines()]  # piped: JSON lines
    assert records and all(r["function"] == "double" for r in records)
    assert any(r["message"] == "doubling" and r["value"] == 1 for r in records)
    assert "\x1b" not in shown.stdout
    assert cli("logs", "--function", "fail", "--data-dir", state).stdout == ""
    pretty = cli("logs", "--function", "double", "--data-dir", state, FORCE_COLOR="1", TERM="xterm")
    assert "doubling" in pretty.stdout and "value=1" in pretty.stdout  # text on a terminal

    follower = subprocess.Popen(
        [*FANSTACK, "logs", "-f", "-n", "1", "--function", "double", "--data-dir", state],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)
        invoked = cli("invoke", str(shop), "double", "--payload", '{"n": 7}', "--data-dir", state)
        assert invoked.returncode == 0, invoked.stderr
        assert follower.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            record = json.loads(follower.stdout.readline())
            if record.get("value") == 7:
                break
        else:
            raise AssertionError("the followed line never came")
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)


def test_logs_without_a_log_file_says_where_to_look(tmp_path: Path) -> None:
    one_line_error(cli("logs", "--data-dir", str(tmp_path)), "no log file at", "--data-dir")
    one_line_error(cli("logs", "--backend", "nats://127.0.0.1:4222"), "--log-file")


def test_log_format_json_or_text_never_mixes_ansi_into_json(shop: Path, tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    args = ["invoke", str(shop), "double", "--payload", '{"n": 2}', "--data-dir", state]
    as_json = cli(*args, "--log-format", "json")
    lines = [json.loads(line) for line in as_json.stderr.splitlines()]
    assert any(line.get("message") == "doubling" for line in lines)
    assert "\x1b" not in as_json.stderr
    as_text = cli(*args, "--log-format", "text")
    assert "doubling" in as_text.stderr and "value=2" in as_text.stderr
    assert not as_text.stderr.lstrip().startswith("{")
    quiet = cli(*args, "--log-level", "warning")
    assert "doubling" not in quiet.stderr


@pytest.mark.parametrize(
    ("source", "fragments"),
    [
        ("from fanstack import App\napp = App('x')\ndef broken(:\n", ("x_app.py:3", "SyntaxError")),
        (
            "from fanstack import App\napp = App('x')\n\n1 / 0\n",
            ("x_app.py:4", "ZeroDivisionError", "division by zero"),
        ),
        ("import no_such_dependency\n", ("x_app.py:1", "ModuleNotFoundError", "no_such")),
    ],
)
def test_an_app_that_fails_to_import_is_one_line_with_file_and_line(
    tmp_path: Path, source: str, fragments: tuple[str, ...]
) -> None:
    (tmp_path / "x_app.py").write_text(source)
    done = cli("functions", "x_app.py", cwd=tmp_path)
    one_line_error(done, "AppImportFailed", *fragments)
    debug = cli("functions", "x_app.py", "--debug", cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


@pytest.mark.parametrize("name", ["queue", "json"])
def test_an_app_named_like_a_standard_module_is_refused_with_the_reason(
    tmp_path: Path, name: str
) -> None:
    (tmp_path / f"{name}.py").write_text(SHOP)
    # The installed command, as a user runs it (`python -m` would put the folder first on
    # sys.path, so Python itself would import the file for the standard module).
    entry_point = str(Path(sys.executable).parent / "fanstack")
    done = subprocess.run(
        [entry_point, "functions", f"{name}.py"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    one_line_error(done, f"{name}.py", f"module {name!r}", "rename it")


def test_run_on_a_busy_port_says_so_before_any_banner(shop: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*RUN, str(shop), "--port", str(port), "--data-dir", str(tmp_path / "state")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    one_line_error(done, f"cannot listen on 127.0.0.1:{port}: the port is busy", "--port 0")
    assert "routes" not in done.stdout + done.stderr


def test_run_on_port_0_takes_a_free_port_and_the_banner_shows_real_auth(
    shop: Path, tmp_path: Path
) -> None:
    server = subprocess.Popen(
        [*RUN, str(shop), "--port", "0", "--data-dir", str(tmp_path / "state"), "--grace", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    banner: list[str] = []
    try:
        while not any("API on" in line for line in banner):
            line = server.stdout.readline()
            assert line, "".join(banner)
            banner.append(line)
        (api_line,) = [line for line in banner if "API on" in line]
        url = api_line.split()[2]
        port = int(url.rsplit(":", 1)[1])
        assert port not in (0, 8000)
        text = "".join(banner)
        assert "open (loopback)" in text  # api_key is not enforced on loopback
        assert "api_key" not in text
        status = wait_for(lambda: _posted(f"{url}/orders"), timeout=30)
        assert status == 202
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)


def _posted(url: str) -> int:
    try:
        return httpx.post(url, json={"id": 1}, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_run_example_skips_pip_when_nothing_changed(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "run-example"
    script.write_text((repo / "scripts" / "run-example").read_text())
    script.chmod(0o755)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    calls = tmp_path / "calls"
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("python", "fanstack"):
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\n')
        stub.chmod(0o755)

    def pip_runs() -> int:
        subprocess.run([str(script)], check=True, timeout=30)
        lines = calls.read_text().splitlines()
        calls.unlink()
        assert lines[-1] == "fanstack run examples/marketplace/app.py"
        return sum("pip install" in line for line in lines)

    assert pip_runs() == 2  # first start: pip itself, then fanstack
    assert pip_runs() == 0  # second start: nothing changed
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '2'\n")
    assert pip_runs() == 2
