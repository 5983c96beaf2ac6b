"""The `fanstack` command, run as a real subprocess over a real data dir."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fanstack import App


def fanstack(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fanstack.cli", "--data-dir", str(data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An `orders` topic fanned out to two queues, one filtered, one with a DLQ."""
    app = App("cli", data_dir=tmp_path)
    orders = app.topic("orders")
    dead = app.queue("billing-dlq")
    billing = app.queue("billing", max_receive_count=1, dead_letter=dead, visibility_timeout=0)
    compliance = app.queue("compliance")
    orders.subscribe(billing, raw=True)
    orders.subscribe(compliance, filter_policy={"market": ["ru"]}, raw=True)
    app.backend  # noqa: B018 - provision the resources now
    app.close()
    return tmp_path


def test_publish_fans_out_and_receive_prints_json_lines(data_dir: Path) -> None:
    done = fanstack(
        data_dir,
        "publish",
        "orders",
        '{"id": 1}',
        "--attr",
        "market=ru",
        "--attr",
        "total:Number=12.5",
        "--attr",
        'tags:String.Array=["a","b"]',
        "--attr",
        "sig:Binary=" + base64.b64encode(b"\x00\x01").decode(),
    )
    assert done.returncode == 0, done.stderr
    message_id = done.stdout.strip()
    fanstack(data_dir, "publish", "orders", '{"id": 2}', "--attr", "market=eu")

    received = fanstack(data_dir, "receive", "compliance", "--max", "10", "--delete")
    assert received.returncode == 0, received.stderr
    lines = [json.loads(line) for line in received.stdout.splitlines()]
    assert [line["id"] for line in lines] == [message_id]
    record = lines[0]
    assert record["body"] == '{"id": 1}'
    assert record["attributes"]["total"] == {"DataType": "Number", "StringValue": "12.5"}
    assert record["attributes"]["sig"] == {"DataType": "Binary", "BinaryValue": "AAE="}
    assert record["receive_count"] == 1
    assert fanstack(data_dir, "receive", "compliance").stdout == ""  # deleted

    billing = fanstack(data_dir, "receive", "billing", "--max", "10")
    assert len(billing.stdout.splitlines()) == 2


def test_queues_table_and_json(data_dir: Path) -> None:
    fanstack(data_dir, "send", "billing", "hello")
    table = fanstack(data_dir, "queues")
    assert table.returncode == 0, table.stderr
    assert "billing" in table.stdout and "billing-dlq" in table.stdout
    rows = {row["name"]: row for row in json.loads(fanstack(data_dir, "queues", "--json").stdout)}
    assert rows["billing"]["visible"] == 1
    assert rows["billing"]["dead_letter"] == "billing-dlq"
    assert rows["compliance"]["visible"] == 0


def test_topics_lists_subscriptions_and_policies(data_dir: Path) -> None:
    topics = json.loads(fanstack(data_dir, "topics", "--json").stdout)
    assert topics[0]["name"] == "orders"
    policies = {s["queue"]: s["filter_policy"] for s in topics[0]["subscriptions"]}
    assert policies == {"billing": None, "compliance": {"market": ["ru"]}}
    assert "compliance" in fanstack(data_dir, "topics").stdout


def test_dlq_redrive_brings_messages_back(data_dir: Path) -> None:
    for n in range(3):
        assert fanstack(data_dir, "send", "billing", f"m{n}").returncode == 0
    # visibility 0 and max_receive_count 1: the second receive moves them to the DLQ.
    fanstack(data_dir, "receive", "billing", "--max", "10")
    assert fanstack(data_dir, "receive", "billing", "--max", "10").stdout == ""
    listed = json.loads(fanstack(data_dir, "dlq", "list", "--json").stdout)
    assert listed == [
        {"queue": "billing", "dead_letter": "billing-dlq", "max_receive_count": 1, "depth": 3}
    ]

    redriven = fanstack(data_dir, "dlq", "redrive", "billing")
    assert redriven.returncode == 0, redriven.stderr
    assert "moved 3 message(s) back to billing" in redriven.stdout
    bodies = [
        json.loads(line)["body"]
        for line in fanstack(data_dir, "receive", "billing", "--max", "10").stdout.splitlines()
    ]
    assert sorted(bodies) == ["m0", "m1", "m2"]


def test_purge_empties_a_queue_and_twice_in_60s_fails(data_dir: Path) -> None:
    fanstack(data_dir, "send", "billing", "x")
    assert fanstack(data_dir, "purge", "billing").returncode == 0
    again = fanstack(data_dir, "purge", "billing")
    assert again.returncode == 1
    assert "PurgeQueueInProgress" in again.stderr
    assert json.loads(fanstack(data_dir, "queues", "--json").stdout)[0]["visible"] == 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("send", "nope", "x"), "QueueDoesNotExist"),
        (("publish", "nope", "x"), "TopicDoesNotExist"),
        (("publish", "orders", "x", "--attr", "novalue"), "NAME=VALUE"),
        (("publish", "orders", "x", "--attr", "n:Number=abc"), "n"),
        (("publish", "orders", "x", "--attr", "b:Binary=***"), "base64"),
        (("send", "billing", "-"), "MessageTooLarge"),
        (("receive", "billing", "--max", "11"), "max_messages"),
        (("dlq", "redrive", "compliance"), "no dead-letter queue"),
    ],
)
def test_errors_are_one_line_and_exit_one(
    data_dir: Path, args: tuple[str, ...], fragment: str
) -> None:
    done = fanstack(data_dir, *args, stdin="x" * (1024 * 1024 + 1))
    assert done.returncode == 1
    assert fragment in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    # and nothing was stored
    assert all(
        row["visible"] == 0 for row in json.loads(fanstack(data_dir, "queues", "--json").stdout)
    )


def test_unreachable_nats_backend_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fanstack.cli",
            "--backend",
            "nats://127.0.0.1:1?connect_timeout=0",  # one attempt: no retry lines
            "queues",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "BackendUnavailable" in done.stderr
