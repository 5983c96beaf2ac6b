"""A long-running process freezes what it loaded at start-up: later collections skip it."""

from __future__ import annotations

import json
import subprocess
import sys

from fanstack.runtime.heap import YOUNG_THRESHOLD

PROBE = """
import gc, json
from fanstack.runtime.heap import settle_heap
loaded = [[i] for i in range(200_000)]  # what start-up made: alive as long as the process
gc.collect()
before = len(gc.get_objects())  # what a full collection walks
settle_heap()
after = len(gc.get_objects())
print(json.dumps({"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold(),
                  "before": before, "after": after, "kept": len(loaded)}))
"""


def test_settled_heap_is_frozen_and_collected_less_often() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(done.stdout)
    assert seen["frozen"] >= 200_000  # start-up's objects are out of the collector's view
    assert seen["threshold"][0] == YOUNG_THRESHOLD
    assert seen["kept"] == 200_000  # frozen objects stay alive and usable
    # A full collection no longer walks them.
    assert seen["before"] > 200_000 > 1_000 > seen["after"]
