"""Background services of the worker role, and the capabilities that declare them.

A capability (the event bus; schedules and workflows to come) is declared in an app, creates
what it needs in the backend when the backend opens (`provision`), and names the services the
worker role runs for it (`services`): loops such as a bus's router, each given the backend and
the event that says stop. `fanstack run` and `fanstack worker` run them; several processes run
the same services and share their work through the queues they lease from.
"""

from __future__ import annotations

import threading
from typing import Protocol

from fanstack.backends.base import Backend


class Service(Protocol):
    """A loop the worker role runs in its own thread until `stopping` is set."""

    name: str

    def run(self, backend: Backend, stopping: threading.Event) -> None:
        """Work until `stopping` is set; return within a second or two of it."""
        ...


class Capability(Protocol):
    """Something an app declares beyond topics, queues and functions (the bus, ...)."""

    def provision(self, backend: Backend) -> None:
        """Create or update what it needs in a backend that has just opened."""
        ...

    def services(self) -> list[Service]:
        """The loops the worker role runs for it."""
        ...
