"""Shared counts written in batches: every increment reaches the shared files, once.

Each test runs its counting in a real Python process that shares a multiprocess directory,
and reads the directory back the way `/metrics` of another process does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

COUNTER = "fanstack_topic_messages_published_total"


def _run(directory: Path, script: str) -> subprocess.Popen[str]:
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    prelude = "from fanstack.observability.metrics import metrics\n"
    return subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(script)],
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )


def _shared_count(directory: Path) -> float:
    """What a scrape of any process sharing `directory` reports for topic `t`."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == COUNTER and sample.labels.get("topic") == "t"
    )


def test_counts_from_many_threads_of_a_running_process_all_arrive_once(tmp_path: Path) -> None:
    counting = _run(
        tmp_path,
        """
        import sys, threading
        published = metrics().published.labels("t")
        def count():
            for _ in range(5000):
                published.inc()
        threads = [threading.Thread(target=count) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print("counted", flush=True)
        import time
        time.sleep(60)
        """,
    )
    try:
        assert counting.stdout is not None and counting.stdout.readline() == "counted\n"
        # Written by the process's flusher thread while it runs, not only when it exits.
        deadline = time.monotonic() + 10
        while _shared_count(tmp_path) != 20_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _shared_count(tmp_path) == 20_000
        time.sleep(1.2)  # two more flushes: nothing is written twice
        assert _shared_count(tmp_path) == 20_000
    finally:
        counting.kill()
        counting.wait()


def test_what_a_process_counted_just_before_it_exits_is_written(tmp_path: Path) -> None:
    counting = _run(
        tmp_path,
        """
        published = metrics().published.labels("t")
        for _ in range(1000):
            published.inc()
        """,
    )
    assert counting.wait(timeout=30) == 0
    assert _shared_count(tmp_path) == 1000


def test_a_scrape_of_the_counting_process_shows_its_counts_at_once(tmp_path: Path) -> None:
    counting = _run(
        tmp_path,
        """
        import time
        published = metrics().published.labels("t")
        published.inc(3)
        text = metrics().exposition().decode()
        print('fanstack_topic_messages_published_total{topic="t"} 3.0' in text, flush=True)
        time.sleep(60)
        """,
    )
    try:
        assert counting.stdout is not None and counting.stdout.readline() == "True\n"
    finally:
        counting.kill()
        counting.wait()


def test_a_forked_child_does_not_write_what_its_parent_counted(tmp_path: Path) -> None:
    counting = _run(
        tmp_path,
        """
        import os, sys
        published = metrics().published.labels("t")
        published.inc(5)  # pending in the parent when it forks
        child = os.fork()
        if child == 0:
            published.inc(1)
            sys.exit(0)  # a normal exit: the child writes what it counted
        os.waitpid(child, 0)
        """,
    )
    assert counting.wait(timeout=30) == 0
    assert _shared_count(tmp_path) == 6
