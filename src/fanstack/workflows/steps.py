"""A step of an execution: one state of one (sub)machine to enter, complete or fail.

Steps travel as messages of the `fanstack-workflow-steps` queue. A step names its execution,
its frame (`r` for the top level; `<step>/b<i>` for branch i of the Parallel that `<step>` ran;
`<step>/m<i>` for item i of a Map), its number within the frame, and the machine it runs, as a
path of (state, branch) pairs from the top. `<frame>#<n>` identifies a step within its execution,
so a step sent twice is recognised and runs once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

ROOT = "r"
ENTER, COMPLETE, FAIL, RESUME, CHECK = "enter", "complete", "fail", "resume", "check"
EXPIRE = "expire"  # the execution's TimeoutSeconds, on a timer (frame `t`)
TIMEOUT_FRAME = "t"


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One state to act on, with everything the action needs."""

    execution: str
    frame: str
    n: int
    path: tuple[tuple[str, int], ...]
    state: str
    op: str = ENTER
    input: Any = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    retry_counts: Mapping[str, int] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    cause: str | None = None
    then: Mapping[str, Any] | None = None  # RESUME: what a Wait continues with
    wake_at: float | None = None  # RESUME: not before this time (timers longer than 15 min)

    @property
    def id(self) -> str:
        """The step's id within its execution."""
        return f"{self.frame}#{self.n}"

    def successor(self, state: str, **changes: Any) -> Step:
        """The next step of the same frame."""
        fresh: dict[str, Any] = {
            "op": ENTER,
            "retry_counts": {},
            "result": None,
            "error": None,
            "cause": None,
            "then": None,
            "wake_at": None,
        }
        fresh.update(changes)
        return replace(self, n=self.n + 1, state=state, **fresh)

    def child(self, kind: str, index: int, state: str, value: Any) -> Step:
        """The first step of branch (`b`) or item (`m`) `index` that this step starts."""
        return Step(
            execution=self.execution,
            frame=f"{self.id}/{kind}{index}",
            n=0,
            path=(*self.path, (self.state, index if kind == "b" else 0)),
            state=state,
            input=value,
            variables=self.variables,
        )

    def to_json(self) -> str:
        """The step as a message body."""
        data = {
            "execution": self.execution,
            "frame": self.frame,
            "n": self.n,
            "path": [list(pair) for pair in self.path],
            "state": self.state,
            "op": self.op,
            "input": self.input,
            "variables": dict(self.variables),
            "retry_counts": dict(self.retry_counts),
            "result": self.result,
            "error": self.error,
            "cause": self.cause,
            "then": self.then,
            "wake_at": self.wake_at,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str) -> Step:
        """A step from its message body."""
        data = json.loads(body)
        data["path"] = tuple((str(state), int(index)) for state, index in data["path"])
        return cls(**data)


def parent_of(frame: str) -> tuple[str, str, int] | None:
    """(parent step id, child kind `b` or `m`, child index) of a child frame; None at the top."""
    if frame == ROOT:
        return None
    parent, _, child = frame.rpartition("/")
    return parent, child[0], int(child[1:])


def split_step_id(step_id: str) -> tuple[str, int]:
    """(frame, n) of a step id."""
    frame, _, n = step_id.rpartition("#")
    return frame, int(n)
