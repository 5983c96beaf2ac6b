"""A worker process as the dispatcher sees it: start it, send it invocations, kill it.

The worker's own side is `runtime/worker.py`; frames travel as `runtime/protocol.py` says. The
parent's pid goes on the worker's command line, so a worker whose dispatcher died exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from fanstack.core.arns import arn_scope
from fanstack.runtime import affinity
from fanstack.runtime.context import Claim
from fanstack.runtime.protocol import ChannelClosed, ChannelTimeout, FrameReader, encode

START_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """What a worker process needs to load one function's handler."""

    function: str
    target: Mapping[str, Any]
    timeout: float
    memory_mb: int | None
    data_dir: str | None = None
    backend: str | None = None


class WorkerCrashed(Exception):
    """The worker process died while starting or serving an invocation."""


class Worker:
    """One worker process and its private channel."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        started = time.monotonic()
        self.process = spawn(spec)
        assert self.process.stdout is not None
        self._frames = FrameReader(self.process.stdout.fileno())
        self.last_used = started
        self.claims: set[Claim] = set()
        self.deadline = started  # the running invocation's (`send`)
        try:
            self._receive(started + START_TIMEOUT)
        except (ChannelClosed, ChannelTimeout, OSError) as exc:
            self.kill()
            raise WorkerCrashed(f"worker for {spec.function!r} failed to start: {exc}") from exc
        self.cold_start_seconds = time.monotonic() - started

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid

    def _send(self, message: Any) -> None:
        _write(self.process, message)

    def _receive(self, deadline: float) -> Any:
        return self._frames.read(deadline)

    def invoke(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run one invocation; raise ChannelTimeout (worker killed) or WorkerCrashed.

        Claims the invocation reports while it runs are in `self.claims` until it settles them;
        whatever is left there when the invocation dies is the caller's to release.
        """
        self.send(request, timeout)
        try:
            while True:
                answer = self._note(self._receive(self.deadline))
                if answer is not None:
                    return answer
        except ChannelTimeout:
            self.kill()
            raise
        except (ChannelClosed, OSError) as exc:
            raise self._crashed() from exc
        finally:
            self.last_used = time.monotonic()

    def send(self, request: dict[str, Any], timeout: float) -> None:
        """Start one invocation, due by `self.deadline`, without waiting for its answer
        (`answer` takes it); WorkerCrashed if the worker is gone."""
        self.claims = set()
        self.deadline = time.monotonic() + timeout
        try:
            self._send(request)
        except OSError as exc:
            self.last_used = time.monotonic()
            raise self._crashed() from exc

    @property
    def channel(self) -> int:
        """The descriptor the worker's frames arrive on (to select on)."""
        return self._frames.fd

    def answer(self) -> dict[str, Any] | None:
        """Once `channel` is readable: the invocation's answer if it has come (claims noted
        on the way), else None; WorkerCrashed if the worker died."""
        try:
            for frame in self._frames.read_ready():
                answer = self._note(frame)
                if answer is not None:
                    self.last_used = time.monotonic()
                    return answer
        except (ChannelClosed, OSError) as exc:
            self.last_used = time.monotonic()
            raise self._crashed() from exc
        return None

    def _note(self, frame: dict[str, Any]) -> dict[str, Any] | None:
        """The answer, or None for a claim frame (noted in `claims`)."""
        if "claim" in frame:
            self.claims.add(Claim.from_dict(frame["claim"]))
        elif "release" in frame:
            self.claims.discard(Claim.from_dict(frame["release"]))
        else:
            return frame
        return None

    def _crashed(self) -> WorkerCrashed:
        code = self.process.wait(timeout=5)
        return WorkerCrashed(_exit_reason(code))

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    @property
    def exited(self) -> bool:
        """Whether the process is known to have ended (as of the last `alive`, `kill` or
        failed invocation: no system call)."""
        return self.process.returncode is not None

    def kill(self) -> None:
        """Stop the process at once."""
        if self.alive():
            self.process.kill()
        self.process.wait()
        self._close_pipes()

    def signal_kill(self) -> None:
        """Send the process SIGKILL, nothing more (`kill` also reaps it and closes its pipes)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit (end of its input), killing it if it does not."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


def spawn(spec: WorkerSpec) -> subprocess.Popen[bytes]:
    """Start a worker process for `spec` and send it what to load (not waiting for it)."""
    process = subprocess.Popen(
        # The parent's pid travels on the command line: a worker whose parent died before the
        # worker could look (a kill -9 during a cold start) exits instead of running on.
        [
            sys.executable,
            "-m",
            "fanstack.runtime.worker",
            "--parent",
            str(os.getpid()),
            "--function",
            spec.function,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        # One malloc arena: the memory cap is on address space, and glibc reserves 64 MiB
        # of it per arena, which a worker with a few threads would spend on nothing.
        env={**os.environ, "PYTHONUNBUFFERED": "1", "MALLOC_ARENA_MAX": "1"},
    )
    affinity.release(process.pid)  # every CPU, not the dispatcher's one
    hello = {
        "function": spec.function,
        "target": dict(spec.target),
        "memory_mb": spec.memory_mb,
        "data_dir": spec.data_dir,
        "backend": spec.backend,
        # The worker's ARNs (its context's, those of what its handler sends) are the parent's.
        "account": arn_scope().account,
        "region": arn_scope().region,
    }
    with contextlib.suppress(OSError):  # a worker that died at once is found out on reading
        _write(process, hello)
    return process


def _write(process: subprocess.Popen[bytes], message: Any) -> None:
    stdin: IO[bytes] | None = process.stdin
    assert stdin is not None
    stdin.write(encode(message))
    stdin.flush()


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker exited on {name}"
    return f"worker exited with status {code}"
