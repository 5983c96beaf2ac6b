"""Fan-out and fan-in of Parallel and Map states: starting branches and items, counting them
back in through their join (`joins.py`), and continuing the parent state once it is decided."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from fanstack.backends.base import Backend
from fanstack.core.asl import interpreter
from fanstack.core.asl.data import AslError
from fanstack.core.asl.definition import StateMachine
from fanstack.workflows.joins import Join
from fanstack.workflows.steps import COMPLETE, FAIL, Step, parent_of
from fanstack.workflows.store import Store


class Host(Protocol):
    """What fan-in needs of the engine that runs the steps."""

    backend: Backend
    store: Store

    def machine(self, step: Step) -> StateMachine:
        """The (sub)machine a step runs in."""
        ...

    def context(self, step: Step, input: Any, started: float, now: float) -> dict[str, Any]:
        """The `$$` context object of a step."""
        ...

    def send(self, steps: list[Step], delay: float = 0) -> None:
        """Queue steps, after the history that precedes them."""
        ...

    def execution_ended(
        self, step: Step, now: float, output: Any, error: str | None, cause: str | None
    ) -> None:
        """The top-level machine ended."""
        ...


class FanIn:
    """Starts the children of Parallel and Map steps and joins them back."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.join_cache: dict[str, Mapping[str, Any]] = {}
        self.failed_joins: set[str] = set()

    def join(self, execution: str, step: str) -> Join:
        """The join of a Parallel or Map step (its description cached here)."""
        return Join(self.host.store, execution, step, self.join_cache)

    def abandoned(self, step: Step) -> bool:
        """Whether a Parallel or Map this step runs in has failed (its other children stop)."""
        frame = step.frame
        while (parent := parent_of(frame)) is not None:
            parent_id = parent[0]
            key = f"{step.execution}/{parent_id}"
            if key in self.failed_joins or self.join(step.execution, parent_id).failed():
                self.failed_joins.add(key)
                return True
            frame = parent_id.rpartition("#")[0]
        return False

    def branches(self, step: Step, action: Any) -> None:
        """Start every branch of a Parallel state, with a join counting them in."""
        total = len(action.branches)
        self.join(step.execution, step.id).create(self.join_value(step, "parallel", total))
        if total == 0:
            self.continue_parent(step.execution, step.id, failure=None)
            return
        self.host.send(
            [
                step.child("b", index, branch.start_at, action.input)
                for index, branch in enumerate(action.branches)
            ]
        )

    def map(
        self, machine: StateMachine, step: Step, action: Any, context: Mapping[str, Any]
    ) -> None:
        """Start a Map state's first items (up to MaxConcurrency), with a join counting them."""
        total = len(action.items)
        value = self.join_value(step, "map", total)
        value.update(
            items=action.items,
            concurrency=action.max_concurrency or total,
            tolerated_count=action.tolerated_failure_count,
            tolerated_percentage=action.tolerated_failure_percentage,
        )
        self.join(step.execution, step.id).create(value)
        if total == 0:
            self.continue_parent(step.execution, step.id, failure=None)
            return
        first = range(min(value["concurrency"], total))
        steps = [
            self.item_step(machine, step, action.processor, i, action.items[i], context)
            for i in first
        ]
        self.host.send(steps)

    def item_step(
        self,
        machine: StateMachine,
        step: Step,
        processor: StateMachine,
        index: int,
        item: Any,
        context: Mapping[str, Any],
    ) -> Step:
        """The first step of one Map item."""
        value = interpreter.map_item_input(
            machine, step.state, index, item, step.input, context, step.variables
        )
        return step.child("m", index, processor.start_at, value)

    def join_value(self, step: Step, kind: str, total: int) -> dict[str, Any]:
        """A new join: what it counts, and the parent step to continue."""
        return {
            "kind": kind,
            "total": total,
            "parent": {
                "frame": step.frame,
                "n": step.n,
                "path": [list(p) for p in step.path],
                "state": step.state,
                "input": step.input,
                "variables": dict(step.variables),
            },
        }

    def frame_ended(
        self,
        step: Step,
        *,
        now: float,
        output: Any = None,
        error: str | None = None,
        cause: str | None = None,
    ) -> None:
        """A (sub)machine reached its end: end the execution, or report to the parent's join."""
        parent = parent_of(step.frame)
        if parent is None:
            self.host.execution_ended(step, now, output, error, cause)
            return
        parent_id, kind, index = parent
        outcome = {"ok": error is None, "output": output, "error": error, "cause": cause}
        recorded = self.host.store.record_child(step.execution, parent_id, index, outcome)
        join = self.join(step.execution, parent_id)
        value = join.value()
        if kind == "m":
            self.start_next_item(step.execution, value, index)
        decision = join.count(index, bool(recorded["ok"]))
        if decision == "failed":
            self.continue_parent(step.execution, parent_id, failure=recorded)
        elif decision == "complete" and not join.failed():
            self.continue_parent(step.execution, parent_id, failure=None)

    def start_next_item(self, execution: str, value: Mapping[str, Any], index: int) -> None:
        """Item `index` ended: start item index + MaxConcurrency, if there is one."""
        following = index + int(value["concurrency"])
        if following >= int(value["total"]):
            return
        step = self.parent_step(execution, value["parent"])
        machine = self.host.machine(step)
        processor = interpreter.submachine(machine, step.state, 0)
        record = self.host.store.execution(execution)
        context = self.host.context(step, record.input, record.start, self.host.backend.clock())
        item = value["items"][following]
        try:
            first = self.item_step(machine, step, processor, following, item, context)
        except AslError as error:  # its ItemSelector failed: the item fails
            child = step.child("m", following, processor.start_at, None)
            self.frame_ended(
                child, now=self.host.backend.clock(), error=error.error, cause=error.cause
            )
            return
        self.host.send([first])

    def parent_step(self, execution: str, parent: Mapping[str, Any]) -> Step:
        """The Parallel or Map step a join belongs to."""
        return Step(
            execution=execution,
            frame=parent["frame"],
            n=parent["n"],
            path=tuple((str(s), int(i)) for s, i in parent["path"]),
            state=parent["state"],
            input=parent["input"],
            variables=parent["variables"],
        )

    def continue_parent(
        self, execution: str, parent_id: str, *, failure: Mapping[str, Any] | None
    ) -> None:
        """The join is decided: complete (or fail) the Parallel or Map state."""
        value = self.join(execution, parent_id).value()
        step = self.parent_step(execution, value["parent"])
        if failure is not None:
            error = (
                failure["error"]
                if value["kind"] == "parallel"
                else ("States.ExceedToleratedFailureThreshold")
            )
            cause = failure["cause"] or ""
            follow = step.successor(step.state, op=FAIL, input=step.input, error=error, cause=cause)
        else:
            outcomes = self.host.store.children(execution, parent_id)
            output = [
                o["output"] if o["ok"] else {"Error": o["error"], "Cause": o["cause"]}
                for o in outcomes
            ]
            follow = step.successor(step.state, op=COMPLETE, input=step.input, result=output)
        self.host.send([follow])
