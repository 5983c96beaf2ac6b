"""Routing the buses an app does not declare: those made at run time (over the AWS API, or by
another app on the same store), found in the catalog (a worker service).

`StoredBuses` looks at the catalog every few seconds and runs a `Router` and a `Retrier` for
each bus it finds that the app's code does not declare (those have their own services), and
a `Replayer` when the app declares no bus; a bus deleted from the catalog has its loops stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from fanstack.backends.base import Backend
from fanstack.bus.catalog import Catalog
from fanstack.bus.replay import Replayer
from fanstack.bus.router import Retrier, Router
from fanstack.core.errors import FanstackError, QueueDoesNotExist
from fanstack.runtime.services import Service

log = logging.getLogger("fanstack.bus")

LOOK_INTERVAL = 2.0  # seconds between two looks at the catalog
RESTART_WAIT = 1.0


class StoredBuses:
    """Runs the loops of the buses found in the catalog and not declared by the app."""

    name = "bus-stored"

    def __init__(self, declared: Callable[[], Iterable[str]], *, replayer: bool) -> None:
        self._declared = declared
        self._replayer = replayer
        self._running: dict[str, tuple[threading.Event, list[threading.Thread]]] = {}

    def run(self, backend: Backend, stopping: threading.Event) -> None:
        """Start and stop bus loops as buses appear and disappear, until stopped."""
        try:
            while not stopping.is_set():
                try:
                    self.look(backend)
                except FanstackError:
                    log.exception("reading the bus catalog failed; looking again shortly")
                stopping.wait(LOOK_INTERVAL)
        finally:
            for name in list(self._running):
                self._stop(name)

    def look(self, backend: Backend) -> None:
        """Start the loops of new buses; stop those of deleted ones."""
        found = set(Catalog(backend).buses()) - set(self._declared())
        for name in sorted(found - set(self._running)):
            self._start(backend, name, [Router(name), Retrier(name)])
        if self._replayer and found and "" not in self._running:
            self._start(backend, "", [Replayer()])  # "": the replayer, for every bus
        for name in set(self._running) - found - {""}:
            self._stop(name)

    def _start(self, backend: Backend, key: str, services: list[Service]) -> None:
        stopping = threading.Event()
        threads = [
            threading.Thread(
                target=_keep_running, args=(service, backend, stopping),
                name=f"fanstack-{service.name}", daemon=True,
            )
            for service in services
        ]  # fmt: skip
        for thread in threads:
            thread.start()
        self._running[key] = (stopping, threads)

    def _stop(self, key: str) -> None:
        stopping, threads = self._running.pop(key)
        stopping.set()
        for thread in threads:
            thread.join(timeout=RESTART_WAIT * 5)


def _keep_running(service: Service, backend: Backend, stopping: threading.Event) -> None:
    """Run a service until stopped, restarting it after a failure (as the dispatcher does)."""
    while not stopping.is_set():
        try:
            service.run(backend, stopping)
        except QueueDoesNotExist:  # the bus was deleted: the next look at the catalog stops it
            stopping.wait(RESTART_WAIT)
        except Exception:
            log.exception("service failed; restarting it", extra={"service": service.name})
            stopping.wait(RESTART_WAIT)
