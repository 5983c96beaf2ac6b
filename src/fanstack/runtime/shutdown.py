"""How a fanstack process stops on SIGTERM and SIGINT: gracefully first, at once on a second signal.

Every role (`run`, `gateway`, `worker`) installs the same handlers. The first signal asks for a
graceful stop (the server stops accepting, running invocations get their grace period); a second
one forces it (running invocations are stopped and their messages handed back). A SIGINT that the
process inherited as ignored (a background job of a shell) stays ignored; SIGTERM always works.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("fanstack.shutdown")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShutdownSignals:
    """Turns SIGTERM/SIGINT into a graceful stop, and a repeated signal into a forced one."""

    def __init__(
        self,
        on_stop: Callable[[], None] | None = None,
        on_force: Callable[[], None] | None = None,
    ) -> None:
        self.requested = threading.Event()
        self.forced = threading.Event()
        self._on_stop = on_stop
        self._on_force = on_force

    def install(self) -> None:
        """Handle the stop signals in this (main) thread from now on."""
        for signum in STOP_SIGNALS:
            if signum == signal.SIGINT and signal.getsignal(signum) is signal.SIG_IGN:
                continue  # started in the background: Ctrl-C in the shell is not for us
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not self.requested.is_set():
            log.info("stopping", extra={"signal": name})
            self.requested.set()
            if self._on_stop is not None:
                self._on_stop()
            return
        if not self.forced.is_set():
            log.warning("stopping now: running invocations are stopped", extra={"signal": name})
            self.forced.set()
            if self._on_force is not None:
                self._on_force()

    def wait(self) -> None:
        """Block until a stop is requested."""
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not self.requested.wait(0.5):
            pass
