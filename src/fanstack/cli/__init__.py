"""The `fanstack` command: inspect and drive topics and queues, and run apps.

One module per family of commands; importing them registers them on the group.
"""

from fanstack.cli import (
    bus,
    dlq,
    functions,
    logs,
    messages,
    resources,
    schedules,
    serving,
    workflows,
)
from fanstack.cli.base import main

__all__ = [
    "bus",
    "dlq",
    "functions",
    "logs",
    "main",
    "messages",
    "resources",
    "schedules",
    "serving",
    "workflows",
]
