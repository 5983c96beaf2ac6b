"""The README as a reader meets it: its shell blocks run as written on a fresh copy of the repo.

The copy holds the repository's files (tracked, plus new ones not yet committed and not ignored)
and a `.venv` symlinked to the venv under test, so `./scripts/run-example` starts on an empty
`.fanstack/` and never runs pip. Blocks run in order, as in a terminal: one that starts a server
runs in the background on port 8000 until the next server block (then SIGTERM, exit 0), the others
run to completion with `set -euo pipefail`, and the marketplace story's outputs are checked
against what the README says a reader sees. `./scripts/test` (this suite) and the benchmarks
(minutes each) are checked, not run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import Distribution
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
VENV = REPO / ".venv"
PORT = 8000
API = f"http://127.0.0.1:{PORT}"
SERVICES = ("process", "notify", "delivery", "reports", "compliance")

FENCED_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
SERVER_COMMAND = re.compile(r"^(\./scripts/run-example|\.venv/bin/fanstack run)(\s|$)")
BENCHMARK_COMMAND = re.compile(r"^\.venv/bin/python benchmarks/")
TEST_SUITE_COMMAND = "./scripts/test"

BLOCK_TIMEOUT = 60.0  # seconds a foreground block may take (the longest sleeps 15 s)
READY_TIMEOUT = 60.0  # seconds a server block has to answer /_fanstack/ready
STOP_TIMEOUT = 30.0  # seconds a server has to exit after SIGTERM
REDRIVEN_TIMEOUT = 30.0  # seconds a redriven order has to be delivered

# Runs a benchmark script up to its own `parse_args` and exits 0 there (2 on a bad option), so
# the README's options are checked by the script's parser without running the benchmark.
# argparse would take an abbreviation (`--event` for `--events`); the README must spell them out.
PARSE_ONLY = """
import argparse, runpy, sys
script, argv = sys.argv[1], sys.argv[2:]
parse_args = argparse.ArgumentParser.parse_args

class Parsed(Exception):
    pass

def parse_only(parser, args=None, namespace=None):
    for token in argv if args is None else args:
        if token.startswith("--") and token.split("=", 1)[0] not in parser._option_string_actions:
            parser.error(f"no option {token.split('=', 1)[0]} (abbreviations do not count)")
    parse_args(parser, args, namespace)
    raise Parsed

argparse.ArgumentParser.parse_args = parse_only
sys.argv = [script, *argv]
sys.path.insert(0, script.rpartition("/")[0] or ".")
try:
    runpy.run_path(script, run_name="__main__")
except Parsed:
    sys.exit(0)
sys.exit(f"{script} never parsed its arguments")
"""


def fenced_blocks(language: str) -> list[str]:
    """The README's fenced blocks of one language, in order."""
    return [body for lang, body in FENCED_BLOCK.findall(README.read_text()) if lang == language]


def commands_of(block: str) -> list[str]:
    """A shell block's commands: continuation lines joined, comment lines dropped."""
    joined = re.sub(r"\\\n", " ", block)
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")
    ]


def reader_environment() -> dict[str, str]:
    """A fresh terminal's environment: no activated venv, no fanstack settings (a stray
    FANSTACK_REINSTALL=1 would send run-example to pip)."""
    venv_bin = str(VENV / "bin")
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
        and not name.startswith("FANSTACK_")
    }
    env["PATH"] = os.pathsep.join(
        entry for entry in env.get("PATH", "").split(os.pathsep) if entry != venv_bin
    )
    return env


def installed_fanstack() -> Distribution:
    """The fanstack distribution installed in the venv under test."""
    site_packages = [str(path) for path in VENV.glob("lib/python*/site-packages")]
    found = list(Distribution.discover(name="fanstack", path=site_packages))
    assert found, (
        f"fanstack is not installed in {VENV}: run ./scripts/test or ./scripts/run-example"
    )
    return found[0]


def ensure_pip_is_skipped(clone: Path) -> None:
    """Make the copy's `scripts/run-example` skip pip, as it does for an unchanged pyproject.toml.

    A pip run from the copy would re-point the shared venv's editable install at a temporary
    directory. run-example skips pip when `.venv/.fanstack-installed` holds the cksum of
    pyproject.toml; `./scripts/test` installs without writing it, so the stamp is written here,
    but only for a venv that holds an editable install of this repository made from the same
    dependencies (the copy's pyproject.toml is byte for byte the repository's).
    """
    wanted = subprocess.run(
        ["bash", "-c", "cat pyproject.toml | cksum"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    stamp = VENV / ".fanstack-installed"
    assert os.access(VENV / "bin" / "fanstack", os.X_OK), f"no {VENV}/bin/fanstack"
    if stamp.exists() and stamp.read_text().strip() == wanted.strip():
        return
    dist = installed_fanstack()
    origin = json.loads(dist.read_text("direct_url.json") or "{}")
    assert origin.get("url") == REPO.as_uri() and origin.get("dir_info", {}).get("editable"), (
        f"the venv's fanstack is not an editable install of {REPO}: {origin}"
    )
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    installed = [r for r in dist.requires or [] if "extra ==" not in r]
    assert sorted(installed) == sorted(declared), "the venv was installed from another pyproject"
    stamp.write_text(wanted)


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    """The repository's files in a new directory, with `.venv` linked to the venv under test."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    clone = tmp_path / "fanstack"
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    (clone / ".venv").symlink_to(VENV.resolve(), target_is_directory=True)
    assert not (clone / ".fanstack").exists()
    ensure_pip_is_skipped(clone)
    return clone


def assert_port_free(port: int) -> None:
    """Fail with the reason when something already listens where the README's server will."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            pytest.fail(
                f"port {port} is taken ({exc}); the README's servers listen on it. "
                f"Stop what listens there (`ss -ltnp 'sport = :{port}'`) and run again."
            )


def ready() -> bool:
    try:
        return httpx.get(f"{API}/_fanstack/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Terminal:
    """A reader's terminal in the clone: a server in the background, blocks in the foreground."""

    clone: Path
    logs: Path
    env: dict[str, str] = field(default_factory=reader_environment)
    server: subprocess.Popen[bytes] | None = None
    server_log: Path | None = None

    def run(self, block: str) -> str:
        """Run a block to its end, as written; its standard output."""
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=self.clone,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
        assert result.returncode == 0, (
            f"README block exited {result.returncode}:\n{block}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}{self.server_tail()}"
        )
        return result.stdout

    def serve(self, block: str) -> None:
        """Start a server block in the background and wait until it is ready."""
        commands = commands_of(block)
        assert len(commands) == 1, f"a server block holds one command, not:\n{block}"
        command = commands[0]
        self.stop()
        assert_port_free(PORT)
        self.server_log = self.logs / f"server-{len(list(self.logs.iterdir()))}.log"
        with self.server_log.open("wb") as log:
            # exec: the signal reaches the server itself, not a shell waiting on it.
            self.server = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", f"exec {command}"],
                cwd=self.clone,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready():
            assert self.server.poll() is None, f"`{command}` exited early{self.server_tail()}"
            assert time.monotonic() < deadline, f"`{command}` is not ready{self.server_tail()}"
            time.sleep(0.2)
        assert self.server.poll() is None, f"`{command}` did not stay up{self.server_tail()}"

    def stop(self) -> None:
        """SIGTERM the running server; it must exit 0."""
        if self.server is None:
            return
        self.server.send_signal(signal.SIGTERM)
        try:
            code = self.server.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        self.abandon()
        assert code == 0, f"the server exited {code} on SIGTERM{self.server_tail()}"
        self.server = None

    def abandon(self) -> None:
        """Kill whatever is left of the server's process group (its workers too)."""
        if self.server is not None:
            with contextlib.suppress(ProcessLookupError):  # the group had already exited
                os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()

    def server_tail(self) -> str:
        if self.server_log is None:
            return ""
        return f"\nserver log:\n{self.server_log.read_text(errors='replace')[-4000:]}"


# What the marketplace story tells a reader to expect, by a phrase of the block it follows.


def order_status(body: str) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(body)
    return status


def check_order_accepted(order_id: str) -> Callable[[str], None]:
    def check(output: str) -> None:
        assert order_status(output)["order_id"] == order_id, output

    return check


def check_o1_seen_by_every_service(output: str) -> None:
    status = order_status(output)
    for service in SERVICES:
        assert status[service] and status[service]["status"] != "pending", (service, status)
    assert status["compliance"]["status"] == "cleared", status


def check_delivery_dlq_holds_one(output: str) -> None:
    rows = [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if line.count("│") >= 4
    ]
    assert ["delivery", "delivery-dlq", "1"] in [[r[0], r[1], r[-1]] for r in rows], output


def check_peek_shows_o2_and_its_failure(output: str) -> None:
    dead_letters = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # the POST's answer and the DLQ table share this output
        if isinstance(record, dict) and "failure" in record:
            dead_letters.append(record)
    assert [
        (json.loads(r["body"])["order_id"], r["failure"].split(":")[0], r["source_queue"])
        for r in dead_letters
    ] == [("o-2", "NoCarrier", "delivery")], output


def carrier_of_o2() -> str | None:
    response = httpx.get(f"{API}/market/eu/shops/s-1/orders/o-2", timeout=5)
    delivery = response.json().get("delivery") or {}
    carrier: str | None = delivery.get("carrier")
    return carrier


def check_redriven_o2_is_delivered(output: str) -> None:
    assert "moved 1 message(s) back to delivery" in output, output
    deadline = time.monotonic() + REDRIVEN_TIMEOUT
    while carrier_of_o2() != "Polar Post":
        assert time.monotonic() < deadline, f"o-2 not delivered: carrier {carrier_of_o2()}"
        time.sleep(0.2)


def check_o2_shows_polar_post(output: str) -> None:
    assert order_status(output)["delivery"]["carrier"] == "Polar Post", output


EXPECTATIONS: dict[str, Callable[[str], None]] = {
    '"order_id": "o-1"': check_order_accepted("o-1"),
    "/orders/o-1": check_o1_seen_by_every_service,
    "fanstack dlq list": check_delivery_dlq_holds_one,
    "fanstack dlq peek delivery": check_peek_shows_o2_and_its_failure,
    "fanstack dlq redrive delivery": check_redriven_o2_is_delivered,
    "/orders/o-2": check_o2_shows_polar_post,
}


def expectations_of(block: str) -> list[Callable[[str], None]]:
    text = "\n".join(commands_of(block))
    return [check for phrase, check in EXPECTATIONS.items() if phrase in text]


# Blocks that are checked instead of run.


def check_test_script(clone: Path, block: str) -> None:
    """`./scripts/test` runs this suite: it must exist, be executable and call pytest."""
    assert commands_of(block) == [TEST_SUITE_COMMAND], block
    script = clone / TEST_SUITE_COMMAND
    assert script.is_file() and os.access(script, os.X_OK), f"{script} is not executable"
    assert re.search(r"-m pytest\b", script.read_text()), f"{script} does not run pytest"


def check_benchmark_options(clone: Path, command: str) -> None:
    """The benchmark exists and its own argument parser takes the options as written."""
    python, script, *arguments = shlex.split(command)
    assert (clone / script).is_file(), f"no {script}"
    result = subprocess.run(
        [python, "-c", PARSE_ONLY, script, *arguments],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
    )
    assert result.returncode == 0, f"`{command}`: {result.stderr}"


def test_every_shell_block_runs_as_written_on_a_fresh_clone(
    fresh_clone: Path, tmp_path: Path
) -> None:
    assert shutil.which("curl"), "the README's requests need curl"
    blocks = fenced_blocks("sh")
    for phrase in EXPECTATIONS:
        matching = [b for b in blocks if phrase in "\n".join(commands_of(b))]
        assert len(matching) == 1, f"{len(matching)} README sh blocks contain {phrase!r}"
    venv_origin = installed_fanstack().read_text("direct_url.json")
    logs = tmp_path / "logs"
    logs.mkdir()
    terminal = Terminal(fresh_clone, logs)
    try:
        for block in blocks:
            commands = commands_of(block)
            if SERVER_COMMAND.match(commands[0]):
                terminal.serve(block)
            elif TEST_SUITE_COMMAND in commands[0]:
                check_test_script(fresh_clone, block)
            elif all(BENCHMARK_COMMAND.match(command) for command in commands):
                for command in commands:
                    check_benchmark_options(fresh_clone, command)
            else:
                output = terminal.run(block)
                for check in expectations_of(block):
                    check(output)
        terminal.stop()
    finally:
        terminal.abandon()
    assert installed_fanstack().read_text("direct_url.json") == venv_origin, (
        "running the README reinstalled fanstack into the shared venv"
    )


def test_every_python_block_compiles() -> None:
    blocks = fenced_blocks("python")
    assert blocks
    for number, block in enumerate(blocks, 1):
        compile(block, f"README.md python block {number}", "exec")


def fanstack_help(words: tuple[str, ...]) -> str:
    result = subprocess.run(
        [str(VENV / "bin" / "fanstack"), *words, "--help"],
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
    )
    assert result.returncode == 0, f"`fanstack {' '.join(words)} --help`: {result.stderr}"
    return result.stdout


def help_pages(commands: set[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(commands, pool.map(fanstack_help, commands), strict=True))


def reference_lines() -> Iterator[list[str]]:
    """The words after `fanstack` of each line of the README's command reference."""
    for block in fenced_blocks("text"):
        for line in block.splitlines():
            if line.startswith("fanstack "):
                yield shlex.split(line, comments=True)[1:]


def test_the_command_reference_names_real_commands_and_options() -> None:
    lines = list(reference_lines())
    assert len(lines) > 20
    tops = help_pages({tuple(words[:1]) for words in lines})
    groups = {top for top, page in tops.items() if "\nCommands:\n" in page}
    leaves = help_pages({tuple(words[:2]) for words in lines if tuple(words[:1]) in groups})
    pages = {**tops, **leaves}
    for words in lines:
        command = tuple(words[:2]) if tuple(words[:1]) in groups else tuple(words[:1])
        for word in words:
            option = word.strip("[]")
            if option.startswith("-"):
                pattern = rf"(?<![\w-]){re.escape(option)}(?![\w-])"
                assert re.search(pattern, pages[command]), (
                    f"`fanstack {' '.join(words)}`: `fanstack {' '.join(command)}` has no {option}"
                )
