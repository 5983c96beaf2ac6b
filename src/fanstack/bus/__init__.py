"""The event bus (EventBridge): buses, rules, targets, archives and replays.

Built from the backend's primitives: a bus is an ingress queue, a retry queue and items of the
catalog table; routing runs in the worker role (`router.py`), replays too (`replay.py`).
"""

from fanstack.bus.bus import Archive, Bus, Buses, PutEventsEntry, PutEventsResult, Replay, Rule
from fanstack.bus.targets import ApiDestination, Target

__all__ = [
    "ApiDestination",
    "Archive",
    "Bus",
    "Buses",
    "PutEventsEntry",
    "PutEventsResult",
    "Replay",
    "Rule",
    "Target",
]
