"""A clock only the test moves, for code that takes a clock instead of reading time."""

from __future__ import annotations


class FixedClock:
    """A time in seconds that stands still until the test moves it."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
