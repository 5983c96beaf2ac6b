"""The cyclic garbage collector of a long-running fanstack process, set once it has started.

CPython's collector now and then runs a full collection, which walks every object it tracks.
A gateway with the marketplace loaded tracks about 70,000 objects, almost all of them made at
start-up (modules, the app, compiled request schemas) and alive until the process ends: one
full collection walks them all in about 20 ms, and the event loop answers nothing meanwhile.
Requests allocate many short-lived objects, so the youngest generation also fills every 700
allocations and is collected often.

`settle_heap()`, called once a process has loaded what it serves, collects once, then moves
every object alive at that moment out of the collector's view (`gc.freeze`): later collections
walk only what was made since. It also lets the youngest generation grow to `YOUNG_THRESHOLD`
objects before it is collected. Objects freed by reference counting (nearly all of a request's)
are freed at once as before; only garbage cycles wait longer.
"""

from __future__ import annotations

import gc

# Allocations (less deallocations) of tracked objects between two young collections.
YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Freeze what this process has loaded and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
