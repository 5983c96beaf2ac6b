"""Log lines written in batches: at once from WARNING up, within the flush interval below it,
all of them at exit; the log file rotated between batches, never mid-line."""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fanstack.runtime import logs

LOG = logging.getLogger("fanstack.test.files")


@pytest.fixture
def handlers() -> Iterator[list[logging.Handler]]:
    """Handlers made by the test, detached and closed after it (root's are left alone)."""
    made: list[logging.Handler] = []
    LOG.propagate = False
    LOG.setLevel(logging.INFO)
    yield made
    for handler in made:
        LOG.removeHandler(handler)
        handler.close()
    LOG.propagate = True


def _attach(made: list[logging.Handler], handler: logging.Handler) -> logging.Handler:
    LOG.addHandler(handler)
    made.append(handler)
    return handler


def _messages(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["message"] for line in path.read_text().splitlines()]


def _eventually(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.01)


def test_a_warning_is_written_at_once_with_the_lines_before_it(
    tmp_path: Path, handlers: list[logging.Handler]
) -> None:
    path = tmp_path / "fanstack.log"
    _attach(handlers, logs._file_handler(path, rotate=True))
    LOG.info("first")
    LOG.info("second")
    LOG.warning("third")
    assert _messages(path) == ["first", "second", "third"]  # no wait: the warning flushed


def test_lines_below_warning_are_written_within_the_flush_interval(
    tmp_path: Path, handlers: list[logging.Handler]
) -> None:
    path = tmp_path / "fanstack.log"
    _attach(handlers, logs._file_handler(path, rotate=True))
    logged = time.monotonic()
    for n in range(100):
        LOG.info("line %d", n)
    _eventually(lambda: len(_messages(path)) == 100)
    assert time.monotonic() - logged < logs.FLUSH_INTERVAL + 1.0
    assert _messages(path) == [f"line {n}" for n in range(100)]


def test_the_file_rotates_between_batches_and_its_follower_reopens_it(
    tmp_path: Path, handlers: list[logging.Handler], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The serving process rotates; a worker process appending to the same file (its
    follower) writes to the new file after a rotation. No line is split or lost within the
    backups kept."""
    monkeypatch.setattr(logs, "LOG_FILE_MAX_BYTES", 4000)
    path = tmp_path / "fanstack.log"
    rotating = _attach(handlers, logs._file_handler(path, rotate=True))
    follower = logs._file_handler(path, rotate=False)
    for n in range(60):
        record = logging.LogRecord(LOG.name, logging.INFO, __file__, 1, f"worker {n}", None, None)
        follower.handle(record)
        follower.flush()
        LOG.info("server %d", n)
        rotating.flush()
    follower.close()
    files = [path, *(path.with_name(f"{path.name}.{k}") for k in (1, 2, 3))]
    assert all(f.exists() for f in files)
    for f in files:  # the rotating process checks the size; a follower's lines may go past it
        assert f.stat().st_size < 2 * 4000
    kept = [m for f in reversed(files) for m in _messages(f)]  # oldest first
    server = [m for m in kept if m.startswith("server")]
    worker = [m for m in kept if m.startswith("worker")]
    assert server == [f"server {n}" for n in range(60 - len(server), 60)]
    assert worker == [f"worker {n}" for n in range(60 - len(worker), 60)]
    assert len(server) >= 10 and len(worker) >= 10  # both kept writing after rotations


def test_every_line_is_written_when_the_process_exits(tmp_path: Path) -> None:
    path = tmp_path / "fanstack.log"
    script = (
        "import io, logging\n"
        "from fanstack.runtime.logs import configure_logging\n"
        f"configure_logging(io.StringIO(), 'info', log_format='json', log_file={str(path)!r})\n"
        "for n in range(5000):\n"
        "    logging.getLogger('fanstack.test').info('line %d', n)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert _messages(path) == [f"line {n}" for n in range(5000)]


def test_flush_logs_writes_what_is_held_before_an_abrupt_exit(tmp_path: Path) -> None:
    """A worker process that must end with `os._exit` flushes first."""
    path = tmp_path / "fanstack.log"
    script = (
        "import io, logging, os\n"
        "from fanstack.runtime.logs import configure_logging, flush_logs\n"
        f"configure_logging(io.StringIO(), 'info', log_format='json', log_file={str(path)!r})\n"
        "logging.getLogger('fanstack.test').info('the last words')\n"
        "flush_logs()\n"
        "os._exit(1)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert done.returncode == 1
    assert _messages(path) == ["the last words"]


def test_a_forked_child_writes_its_own_lines_and_not_its_parents(
    tmp_path: Path, handlers: list[logging.Handler]
) -> None:
    """The parent's flusher thread does not survive a fork: the child's lines below WARNING
    are written by a flusher of its own, while it runs (not only at its exit); a line the
    parent still held when it forked is the parent's to write, once."""
    path = tmp_path / "fanstack.log"
    _attach(handlers, logs._file_handler(path, rotate=True))
    LOG.info("parent")  # the parent's flusher now runs and knows the handler
    _eventually(lambda: _messages(path) == ["parent"])
    LOG.info("held")  # held when the parent forks
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        try:
            LOG.info("child")
            deadline = time.monotonic() + 5
            while "child" not in _messages(path) and time.monotonic() < deadline:
                time.sleep(0.01)
            os._exit(0 if "child" in _messages(path) else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's line was not written while it ran"
    LOG.info("parent again")
    _eventually(lambda: "parent again" in _messages(path))
    assert sorted(_messages(path)) == ["child", "held", "parent", "parent again"]


def test_a_child_forked_while_other_threads_log_writes_every_line_once(
    tmp_path: Path, handlers: list[logging.Handler]
) -> None:
    """Threads of the parent in the middle of a write when it forks leave the child's stream
    usable: each child's lines are written, while it runs, once."""
    path = tmp_path / "fanstack.log"
    _attach(handlers, logs._file_handler(path, rotate=True))
    stop = threading.Event()

    def chatter(name: str) -> None:
        count = 0
        while not stop.is_set():
            LOG.info("%s %d", name, count)
            count += 1
            if count % 50 == 0:
                time.sleep(0.001)

    threads = [threading.Thread(target=chatter, args=(f"thread{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    children = []
    try:
        for n in range(10):
            child = os.fork()
            if child == 0:  # pragma: no cover - the child
                try:
                    for line in range(50):
                        LOG.info("child%d %d", n, line)
                    deadline = time.monotonic() + 5
                    while time.monotonic() < deadline:
                        if sum(m.startswith(f"child{n} ") for m in _messages(path)) == 50:
                            os._exit(0)
                        time.sleep(0.02)
                    os._exit(1)
                finally:
                    os._exit(2)
            children.append(child)
            time.sleep(0.01)
        statuses = [os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert statuses == [0] * 10, "a child's lines were not written while it ran"
    for handler in handlers:
        handler.flush()
    written = _messages(path)
    assert len(written) == len(set(written)), "a line was written twice"
    for n in range(10):
        assert [m for m in written if m.startswith(f"child{n} ")] == [
            f"child{n} {line}" for line in range(50)
        ]


CONCURRENT_FORKS = """
import logging, os, sys, threading
from fanstack.runtime import logs
handler = logs._Batched(open(os.devnull, "w"))
log = logging.getLogger("forks")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.propagate = False
sys.setswitchinterval(1e-6)  # threads interleave inside the fork hooks

def forker():
    for n in range(100):
        log.info("before fork %d", n)
        child = os.fork()
        if child == 0:
            log.info("in the child")
            os._exit(0)
        os.waitpid(child, 0)

threads = [threading.Thread(target=forker) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
log.info("after")
assert handler.lock.acquire(timeout=2), "a fork left the handler locked"
print("done")
"""

BLOCKED_STREAM = """
import logging, os, sys, threading, time
from fanstack.runtime import logs
logging.getLogger().addHandler(logs._Batched(sys.stderr))  # a pipe nobody reads

def chatter():
    while True:
        logging.getLogger().warning("x" * 1000)  # blocks in write once the pipe is full

threading.Thread(target=chatter, daemon=True).start()
time.sleep(0.5)
child = os.fork()
if child == 0:
    os._exit(0)
os.waitpid(child, 0)
print("forked", flush=True)
os._exit(0)
"""


def test_threads_forking_at_once_leave_no_log_handler_locked() -> None:
    """Each fork holds and lets go of the handlers' locks on its own (four threads forking
    at once used to leave one locked for good, hanging every later line)."""
    done = subprocess.run(
        [sys.executable, "-c", CONCURRENT_FORKS], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"


def test_a_fork_goes_ahead_while_a_log_stream_is_blocked() -> None:
    """A handler whose write blocks (a full pipe) holds up a fork for FORK_LOCK_WAIT, not
    until someone reads the pipe."""
    child = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_STREAM],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # never read
        text=True,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 30)
        assert ready, "the fork waited for the blocked stream"
        assert child.stdout.readline().strip() == "forked"
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        child.wait()
