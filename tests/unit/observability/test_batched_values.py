"""Shared counts written in batches: every increment reaches the shared files, once.

Each test runs its counting in a real Python process that shares a multiprocess directory,
and reads the directory back the way `/metrics` of another process does.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

COUNTER = "fanstack_topic_messages_published_total"


@contextmanager
def _counting(directory: Path, script: str) -> Iterator[subprocess.Popen[str]]:
    """`script` running in a process that shares counts in `directory`; killed when done."""
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    prelude = "from fanstack.observability.metrics import metrics\n"
    process = subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(script)],
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def _line(process: subprocess.Popen[str], timeout: float = 30) -> str:
    """The process's next line of output, or a failure once `timeout` has passed."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return process.stdout.readline()


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
    with _counting(
        tmp_path,
        """
        import threading
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
    ) as counting:
        assert _line(counting) == "counted\n"
        # Written by the process's flusher thread while it runs, not only when it exits.
        deadline = time.monotonic() + 10
        while _shared_count(tmp_path) != 20_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _shared_count(tmp_path) == 20_000
        time.sleep(1.2)  # two more flushes: nothing is written twice
        assert _shared_count(tmp_path) == 20_000


def test_what_a_process_counted_just_before_it_exits_is_written(tmp_path: Path) -> None:
    with _counting(
        tmp_path,
        """
        published = metrics().published.labels("t")
        for _ in range(1000):
            published.inc()
        """,
    ) as counting:
        assert counting.wait(timeout=30) == 0
    assert _shared_count(tmp_path) == 1000


def test_a_scrape_of_the_counting_process_shows_its_counts_at_once(tmp_path: Path) -> None:
    with _counting(
        tmp_path,
        """
        import time
        published = metrics().published.labels("t")
        published.inc(3)
        text = metrics().exposition().decode()
        print('fanstack_topic_messages_published_total{topic="t"} 3.0' in text, flush=True)
        time.sleep(60)
        """,
    ) as counting:
        assert _line(counting) == "True\n"


def test_a_forked_child_does_not_write_what_its_parent_counted(tmp_path: Path) -> None:
    with _counting(
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
    ) as counting:
        assert counting.wait(timeout=30) == 0
    assert _shared_count(tmp_path) == 6


COUNTING_HANDLER = """
import os
from fanstack.observability.metrics import metrics

def handler(event):
    metrics().published.labels("t").inc(7)  # as a handler's publish counts
    return {"pid": os.getpid()}
"""


def test_a_function_worker_killed_once_it_answered_has_written_its_counts(
    tmp_path: Path,
) -> None:
    (tmp_path / "counting_handler.py").write_text(COUNTING_HANDLER)
    # The pool kills a worker with SIGKILL once it has its answer in several cases (a worker
    # past its memory, a pool closing, a timeout): the worker writes its counts before it
    # answers.
    with _counting(
        tmp_path,
        f"""
        import os, signal
        from fanstack.runtime.pool import WorkerPool
        from fanstack.runtime.process import WorkerSpec
        target = {{"module": "counting_handler", "qualname": "handler"}}
        target["sys_path"] = [{str(tmp_path)!r}]
        pool = WorkerPool(
            WorkerSpec(function="count", target=target, timeout=30, memory_mb=None),
            concurrency=1,
        )
        outcome = pool.invoke({{}})
        os.kill(outcome.result["pid"], signal.SIGKILL)
        print(outcome.ok, flush=True)
        """,
    ) as dispatcher:
        assert _line(dispatcher, timeout=60) == "True\n"
        assert dispatcher.wait(timeout=30) == 0
    assert _shared_count(tmp_path) == 7


def test_counts_made_before_fanstack_was_imported_share_the_file_with_fanstack_s(
    tmp_path: Path,
) -> None:
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    script = """
        import prometheus_client
        mine = prometheus_client.Counter("mine", "An app's own counter, made first.")
        mine.inc(3)
        from fanstack.observability.metrics import metrics
        metrics().published.labels("t").inc(5)
        mine.inc(4)
        later = prometheus_client.Counter("later", "An app's counter made after fanstack's.")
        later.inc(2)
        """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], env=environment, timeout=60
    )
    assert done.returncode == 0
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    found = {
        sample.name: sample.value for family in registry.collect() for sample in family.samples
    }
    assert (found["mine_total"], found["later_total"]) == (7, 2)
    assert _shared_count(tmp_path) == 5
