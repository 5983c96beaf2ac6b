"""The `fanstack` command as an operator uses it: deleting resources, peeking at dead letters,
global options anywhere, and errors that are one line with exit status 1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fanstack import App

from .test_cli import fanstack

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """`fanstack ARGS` with no options added."""
    return subprocess.run(
        [sys.executable, "-m", "fanstack.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **env},
    )


def one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """`orders` -> billing (DLQ billing-dlq after one receive) and compliance; `spare` alone."""
    app = App("ops", data_dir=tmp_path / "state")
    orders = app.topic("orders")
    dead = app.queue("billing-dlq")
    billing = app.queue("billing", max_receive_count=1, dead_letter=dead, visibility_timeout=0)
    compliance = app.queue("compliance")
    app.queue("spare")
    orders.subscribe(billing, raw=True)
    orders.subscribe(compliance, raw=True)
    app.backend  # noqa: B018 - provision the resources now
    app.close()
    return tmp_path / "state"


def queue_names(data_dir: Path, *extra: str) -> list[str]:
    listed = fanstack(data_dir, "queues", "--json", *extra)
    return [row["name"] for row in json.loads(listed.stdout)]


def test_a_queue_nothing_points_at_is_deleted(data_dir: Path) -> None:
    done = fanstack(data_dir, "delete-queue", "spare")
    assert done.returncode == 0, done.stderr
    assert "deleted queue spare" in done.stdout
    assert "spare" not in queue_names(data_dir)
    one_line_error(fanstack(data_dir, "delete-queue", "spare"), "QueueDoesNotExist", "spare")


def test_deleting_a_referenced_queue_is_refused_unless_forced(data_dir: Path) -> None:
    refused = fanstack(data_dir, "delete-queue", "billing-dlq")
    one_line_error(refused, "QueueInUse", "dead-letter queue of 'billing'", "--force")
    refused = fanstack(data_dir, "delete-queue", "compliance")
    one_line_error(refused, "QueueInUse", "subscribed to topic 'orders'")
    assert {"billing-dlq", "compliance"} <= set(queue_names(data_dir))

    forced = fanstack(data_dir, "delete-queue", "billing-dlq", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "removed too" in forced.stdout
    rows = {row["name"]: row for row in json.loads(fanstack(data_dir, "queues", "--json").stdout)}
    assert "billing-dlq" not in rows
    assert rows["billing"]["dead_letter"] is None  # no redrive policy names a missing queue
    # billing keeps working: a message fails over and over without being lost
    assert fanstack(data_dir, "send", "billing", "x").returncode == 0
    for _ in range(3):
        assert len(fanstack(data_dir, "receive", "billing").stdout.splitlines()) == 1

    forced = fanstack(data_dir, "delete-queue", "compliance", "--force")
    assert forced.returncode == 0, forced.stderr
    topics = json.loads(fanstack(data_dir, "topics", "--json").stdout)
    assert [s["queue"] for s in topics[0]["subscriptions"]] == ["billing"]


def test_unsubscribe_and_delete_topic(data_dir: Path) -> None:
    done = fanstack(data_dir, "unsubscribe", "orders", "compliance")
    assert done.returncode == 0, done.stderr
    fanstack(data_dir, "publish", "orders", "hello")
    assert fanstack(data_dir, "receive", "compliance").stdout == ""
    assert len(fanstack(data_dir, "receive", "billing").stdout.splitlines()) == 1
    one_line_error(
        fanstack(data_dir, "unsubscribe", "orders", "compliance"),
        "SubscriptionDoesNotExist",
        "compliance",
    )

    deleted = fanstack(data_dir, "delete-topic", "orders")
    assert deleted.returncode == 0, deleted.stderr
    assert "1 subscription(s)" in deleted.stdout
    assert json.loads(fanstack(data_dir, "topics", "--json").stdout) == []
    one_line_error(fanstack(data_dir, "delete-topic", "orders"), "TopicDoesNotExist")
    assert "billing" in queue_names(data_dir)  # queues stay
    # nothing is left to refuse the delete of a queue only the topic pointed at
    assert fanstack(data_dir, "delete-queue", "compliance").returncode == 0


def test_dlq_peek_shows_dead_letters_and_changes_nothing(data_dir: Path) -> None:
    for n in range(3):
        fanstack(data_dir, "send", "billing", f"m{n}", "--attr", f"n={n}")
    fanstack(data_dir, "receive", "billing", "--max", "10")
    fanstack(data_dir, "receive", "billing", "--max", "10")  # moves them to the DLQ

    first = fanstack(data_dir, "dlq", "peek", "billing")
    assert first.returncode == 0, first.stderr
    records = [json.loads(line) for line in first.stdout.splitlines()]
    assert [r["body"] for r in records] == ["m0", "m1", "m2"]
    assert records[0]["source_queue"] == "billing"
    assert records[0]["attributes"]["n"] == {"DataType": "String", "StringValue": "0"}
    assert all("receipt_handle" not in r for r in records)
    assert fanstack(data_dir, "dlq", "peek", "billing").stdout == first.stdout  # unchanged
    assert len(fanstack(data_dir, "dlq", "peek", "billing", "--max", "2").stdout.splitlines()) == 2

    listed = json.loads(fanstack(data_dir, "dlq", "list", "--json").stdout)
    assert listed[0]["depth"] == 3
    received = [
        json.loads(line)
        for line in fanstack(data_dir, "receive", "billing-dlq", "--max", "10").stdout.splitlines()
    ]
    # a peek is not a receive: the count goes on from the source queue's receives
    assert [r["receive_count"] for r in received] == [r["receive_count"] + 1 for r in records]

    empty = fanstack(data_dir, "dlq", "peek", "compliance")
    assert empty.returncode == 0 and empty.stdout == ""
    assert "no messages in compliance" in empty.stderr
    one_line_error(fanstack(data_dir, "dlq", "peek", "nope"), "QueueDoesNotExist")


def test_global_options_go_before_or_after_the_subcommand(data_dir: Path) -> None:
    before = cli("--data-dir", str(data_dir), "queues", "--json")
    after = cli("queues", "--json", "--data-dir", str(data_dir))
    nested = cli("dlq", "list", "--json", "--data-dir", str(data_dir))
    assert before.returncode == after.returncode == nested.returncode == 0, after.stderr
    assert before.stdout == after.stdout
    assert json.loads(nested.stdout)[0]["queue"] == "billing"


def test_internal_queues_are_hidden_unless_all(tmp_path: Path) -> None:
    app = App("internal", data_dir=tmp_path)
    app.queue("inbox")
    app.function(lambda event: event, name="echo")
    app.backend  # noqa: B018
    app.close()
    assert queue_names(tmp_path) == ["inbox"]
    assert {"inbox", "fanstack-async-echo"} <= set(queue_names(tmp_path, "--all"))
    assert "fanstack-async-echo" not in fanstack(tmp_path, "queues").stdout


def test_a_mistyped_data_dir_or_an_empty_store_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "stat"
    one_line_error(fanstack(missing, "queues"), "no data dir", str(missing), "--data-dir")
    assert not missing.exists()  # and nothing was created there
    empty = fanstack(tmp_path, "queues")
    assert empty.returncode == 0
    assert empty.stdout == ""
    assert empty.stderr.startswith("no queues in sqlite://")
    assert "no topics in" in fanstack(tmp_path, "topics").stderr
    assert json.loads(fanstack(tmp_path, "queues", "--json").stdout) == []


def test_tables_fit_80_columns_without_cutting_names(tmp_path: Path) -> None:
    app = App("wide", data_dir=tmp_path)
    dead = app.queue("process-orders-dlq")
    app.queue("process-orders", max_receive_count=3, dead_letter=dead)
    long_name = "a-queue-whose-name-is-longer-than-any-terminal-column-could-hold-at-all"
    app.queue(long_name)
    app.backend  # noqa: B018
    app.close()
    terminal = {"FORCE_COLOR": "1", "COLUMNS": "80", "TERM": "xterm"}
    app_short = App("short", data_dir=tmp_path / "short")
    app_short.queue("process-orders", max_receive_count=3, dead_letter=app_short.queue("p-dlq"))
    app_short.backend  # noqa: B018
    app_short.close()
    fitting = cli("queues", "--data-dir", str(tmp_path / "short"), **terminal)
    lines = ANSI.sub("", fitting.stdout).splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any("process-orders" in line for line in lines)
    wide = ANSI.sub("", cli("queues", "--data-dir", str(tmp_path), **terminal).stdout)
    assert long_name in wide and "process-orders-dlq (0)" in wide


def test_nats_without_the_extra_says_what_to_install(tmp_path: Path) -> None:
    blocked = (
        "import sys; sys.modules['nats'] = None; sys.argv[0] = 'fanstack'; "
        "from fanstack.cli import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked, "--backend", "nats://127.0.0.1:4222", "queues"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    one_line_error(done, "BackendNotInstalled", "pip install 'fanstack[nats]'")
