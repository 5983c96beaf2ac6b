"""What makes a serving app ready, beyond its store answering (`/_fanstack/ready`).

- `consumers`: where this process runs the consumers (`fanstack run`), the dispatcher has
  started and every one of its threads (pollers, services, heartbeat) is alive;
- `schedules`: where this process runs the scheduler (every process running consumers does),
  some process holds the scheduler's lease (a leader is known, whichever process it is).

A gateway-only process (`fanstack gateway`, or a server process of `--workers N`) runs neither,
so neither can make it unready: its API works whatever the workers do.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from fanstack.gateway.probes import NotReady, ReadinessCheck
from fanstack.runtime.dispatcher import Dispatcher
from fanstack.schedules.scheduler import current_leader

if TYPE_CHECKING:
    from fanstack.app import App

NOT_RUN_HERE = "not run in this process"


def readiness_checks(app: App) -> list[ReadinessCheck]:
    """The app's readiness checks (the store's own check is the gateway's)."""
    return [
        ReadinessCheck("consumers", lambda: _consumers(app.runtime)),
        ReadinessCheck("schedules", lambda: _schedules(app)),
    ]


def _consumers(dispatcher: Dispatcher) -> str:
    threads = _threads(dispatcher)
    if not threads:
        return NOT_RUN_HERE
    if dispatcher.stopping.is_set():
        raise NotReady("consumers are stopping")
    dead = sorted(thread.name for thread in threads if not thread.is_alive())
    if dead:
        raise NotReady(f"threads stopped: {', '.join(dead)}")
    return f"{len(threads)} threads running"


def _schedules(app: App) -> str:
    if not _threads(app.runtime):
        return NOT_RUN_HERE
    # Every process that runs consumers runs the scheduler (schedules may be made over the
    # AWS API at any time), so one of them holds the lease whether or not the app declares any.
    leader = current_leader(app.backend)
    if leader is None:
        raise NotReady("no scheduler holds the leader lease")
    return f"leader {leader.get('host')}:{leader.get('pid')}"


def _threads(dispatcher: Dispatcher) -> list[threading.Thread]:
    # The dispatcher's threads exist once `start()` ran, only in a process that runs consumers.
    return dispatcher.threads
