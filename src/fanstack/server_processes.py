"""Several server processes on one port: `fanstack run | gateway --workers N`.

One Python process serves HTTP on one core (the interpreter runs one thread at a time); the
front door takes more requests per second with a server process per core. The parent binds the
port once and starts N children of the same command, each told the inherited socket in
`FANSTACK_SERVER_FD`; the kernel hands each new connection to one of them. They share the store
as any processes do (the data dir, or NATS). The parent keeps the banner, the status line and,
for `run`, the consumers; it starts a child again when one dies.

A child stops gracefully (finishing the requests it has) when the parent closes the pipe named
in `FANSTACK_SERVER_PIPE`: on the parent's SIGTERM, and when the parent dies, even by kill -9,
so no child outlives it. A signal sent to every process at once (Ctrl-C in a terminal, a
service manager stopping the group) reaches a child as its own first signal, and the closed
pipe then does not count as a second one, which would stop it at once.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from fanstack.core.errors import FanstackError
from fanstack.runtime import affinity

log = logging.getLogger("fanstack.serve")

SERVER_FD = "FANSTACK_SERVER_FD"  # set in a child: the listening socket it serves
SERVER_PIPE = "FANSTACK_SERVER_PIPE"  # set in a child: closed by the parent to stop it
BACKLOG = 2048
WATCH_INTERVAL = 0.5
QUICK_EXIT = 2.0  # seconds: a child dying sooner than this after its start failed to start
QUICK_EXITS_ALLOWED = 5  # in a row, before the parent gives up


class PortBusy(FanstackError):
    """The address to serve on is taken (or cannot be bound)."""


def inherited_socket() -> socket.socket | None:
    """In a child: the listening socket the parent bound (None in any other process)."""
    value = os.environ.get(SERVER_FD)
    if value is None:
        return None
    return socket.socket(fileno=int(value))


def on_parent_stop(stop: Callable[[], None]) -> None:
    """In a child: call `stop` once the parent closes the pipe (asks us to stop, or died)."""
    value = os.environ.get(SERVER_PIPE)
    if value is None:
        return
    fd = int(value)

    def watch() -> None:
        while os.read(fd, 1):
            pass
        stop()

    threading.Thread(target=watch, name="fanstack-parent", daemon=True).start()


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, inheritable by children."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortBusy(
                f"cannot listen on {host}:{port}: the port is busy (another server listens "
                "there): stop it, choose another with --port, or --port 0 for a free one"
            ) from exc
        raise PortBusy(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


class ServerProcesses:
    """N children serving one listening socket, kept running until `stop`."""

    def __init__(self, sock: socket.socket, count: int, command: list[str]) -> None:
        self._sock = sock
        self._count = count
        self._command = command
        self._children: list[tuple[subprocess.Popen[bytes], float]] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._watch, name="fanstack-servers", daemon=True)
        self._pipe_read, self._pipe_write = os.pipe()
        self.failed = threading.Event()  # children kept dying at start: the parent should stop

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [child.pid for child, _started in self._children]

    def start(self) -> None:
        with self._lock:
            self._children = [self._spawn() for _ in range(self._count)]
        self._watcher.start()

    def _spawn(self) -> tuple[subprocess.Popen[bytes], float]:
        fd = self._sock.fileno()
        child = subprocess.Popen(
            self._command,
            env={**os.environ, SERVER_FD: str(fd), SERVER_PIPE: str(self._pipe_read)},
            pass_fds=(fd, self._pipe_read),
        )
        affinity.release(child.pid)  # a restart while consumers run here: every CPU
        return child, time.monotonic()

    def _watch(self) -> None:
        quick_exits = 0
        while not self._stopping.wait(WATCH_INTERVAL):
            with self._lock:
                if self._stopping.is_set():
                    return
                for index, (child, started) in enumerate(self._children):
                    code = child.poll()
                    if code is None:
                        continue
                    quick = time.monotonic() - started < QUICK_EXIT
                    quick_exits = quick_exits + 1 if quick else 0
                    if quick_exits >= QUICK_EXITS_ALLOWED:
                        log.error(
                            "server processes keep exiting at start; stopping",
                            extra={"exit_code": code},
                        )
                        self.failed.set()
                        return
                    log.warning(
                        "server process exited; starting another",
                        extra={"pid": child.pid, "exit_code": code},
                    )
                    self._children[index] = self._spawn()

    def stop(self, timeout: float) -> None:
        """Ask every child to finish its requests and exit; kill what is left after `timeout`."""
        self._stopping.set()
        with self._lock:
            children = [child for child, _started in self._children]
        if self._pipe_write >= 0:
            os.close(self._pipe_write)  # every child sees it closed and stops gracefully
            self._pipe_write = -1
        deadline = time.monotonic() + timeout
        for child in children:
            try:
                child.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("server process did not stop in time; killed", extra={"pid": child.pid})
                child.kill()
                child.wait()
        os.close(self._pipe_read)
        self._sock.close()

    def force(self) -> None:
        """Stop every child at once (a second SIGTERM)."""
        self._stopping.set()
        with self._lock:
            for child, _started in self._children:
                if child.poll() is None:
                    child.kill()


def child_command() -> list[str]:
    """The command this process was started with, to start a child of the same kind."""
    return [sys.executable, "-m", "fanstack.cli", *sys.argv[1:]]
