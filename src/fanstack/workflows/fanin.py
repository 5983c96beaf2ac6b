"""Fan-out and fan-in of Parallel and Map states: starting branches and items, counting them
back in through their join (`joins.py`), and continuing the parent state once it is decided.

A distributed Map reads its items through `map_runs.py` when it starts (its ItemReader),
batches them (ItemBatcher), and writes its children's results when it ends (ResultWriter).
History: `ParallelStateStarted`/`...Succeeded`/`...Failed`; an inline Map's `MapStateStarted`,
`MapIterationStarted`/`...Succeeded`/`...Failed` and `MapStateSucceeded`/`...Failed`; a
distributed Map's `MapRunStarted` and `MapRunSucceeded`/`MapRunFailed` (its children's own
states are in the execution's history too: they run as frames of it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Protocol

from fanstack.backends.base import Backend
from fanstack.core.asl import interpreter
from fanstack.core.asl.actions import ResultSink
from fanstack.core.asl.data import AslError
from fanstack.core.asl.map_items import WRITER_FAILED, batches, transformed
from fanstack.core.asl.states import StateMachine
from fanstack.workflows import map_runs
from fanstack.workflows.history import event
from fanstack.workflows.joins import Join
from fanstack.workflows.steps import COMPLETE, FAIL, Step, parent_of
from fanstack.workflows.store import ExecutionRecord, Store

DISTRIBUTED = "DISTRIBUTED"


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

    def record_of(self, execution: str) -> ExecutionRecord:
        """The execution's record (its input and start), as the step being processed read it."""
        ...

    def send(self, steps: list[Step], delay: float = 0) -> None:
        """Queue steps, after the history that precedes them."""
        ...

    def note(self, event: dict[str, Any]) -> None:
        """Keep a history event of the step being processed."""
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
        self.host.note(event("ParallelStateStarted", self.host.backend.clock()))
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
        """Start a Map state's first items (up to MaxConcurrency), with a join counting them.

        Its items (read, selected and batched here for a distributed Map) are stored before
        the join is created; a step run again finds the join and starts the same items.
        """
        join = self.join(step.execution, step.id)
        value = join.existing() or self.create_map_join(machine, step, action, context, join)
        total = int(value["total"])
        now = self.host.backend.clock()
        if value.get("run_arn"):
            self.host.note(event("MapRunStarted", now, mapRunArn=value["run_arn"]))
        else:
            self.host.note(event("MapStateStarted", now, length=total))
        if total == 0:
            self.continue_parent(step.execution, step.id, failure=None)
            return
        first = range(min(int(value["concurrency"]), total))
        steps = [self.item_step(machine, step, join, action.processor, i, context) for i in first]
        self.host.send(steps)

    def create_map_join(
        self,
        machine: StateMachine,
        step: Step,
        action: Any,
        context: Mapping[str, Any],
        join: Join,
    ) -> Mapping[str, Any]:
        """Read and batch a Map's items, store them, and create its join (AslError if the
        reader, an ItemSelector or the batcher fails: the Map state fails)."""
        items = action.items
        if items is None:
            items = map_runs.read_items(self.host.backend, action.reader)
        selected = action.batcher is not None
        if selected:
            inputs = [
                interpreter.map_item_input(
                    machine, step.state, index, item, step.input, context, step.variables
                )
                for index, item in enumerate(items)
            ]
            items = batches(inputs, action.batcher)
        value = self.join_value(step, "map", len(items))
        value.update(
            concurrency=action.max_concurrency,
            tolerated_count=action.tolerated_failure_count,
            tolerated_percentage=action.tolerated_failure_percentage,
            selected=selected,
            writer=asdict(action.writer) if action.writer is not None else None,
            items_id=join.store_items(items),
        )
        if action.mode == DISTRIBUTED:
            run_id = map_runs.map_run_id(step.execution, step.id)
            value.update(
                run_id=run_id,
                run_arn=map_runs.map_run_arn(step.execution, action.label or step.state, run_id),
            )
        return join.create(value)

    def item_step(
        self,
        machine: StateMachine,
        step: Step,
        join: Join,
        processor: StateMachine,
        index: int,
        context: Mapping[str, Any],
    ) -> Step:
        """The first step of one Map item (AslError if its ItemSelector fails)."""
        value = join.value()
        child_input = self.child_input(machine, step, join, index, context)
        if not value.get("run_arn"):
            now = self.host.backend.clock()
            self.host.note(event("MapIterationStarted", now, name=step.state, index=index))
        return step.child("m", index, processor.start_at, child_input)

    def child_input(
        self,
        machine: StateMachine,
        step: Step,
        join: Join,
        index: int,
        context: Mapping[str, Any],
    ) -> Any:
        """Child `index`'s input: its batch, or its item through the ItemSelector."""
        item = join.item(index)
        if join.value().get("selected"):
            return item
        return interpreter.map_item_input(
            machine, step.state, index, item, step.input, context, step.variables
        )

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
        if kind == "m" and not value.get("run_arn"):
            ending = "MapIterationSucceeded" if error is None else "MapIterationFailed"
            parent_state = value["parent"]["state"]
            self.host.note(event(ending, now, name=parent_state, index=index))
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
        record = self.host.record_of(execution)
        context = self.host.context(step, record.input, record.start, self.host.backend.clock())
        join = self.join(execution, step.id)
        try:
            first = self.item_step(machine, step, join, processor, following, context)
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
        join = self.join(execution, parent_id)
        value = join.value()
        step = self.parent_step(execution, value["parent"])
        if failure is None:
            try:
                output = self.result(step, join)
            except AslError as problem:  # the ResultWriter failed: so does the Map state
                failure = {"error": problem.error, "cause": problem.cause}
        if failure is not None:
            # A Parallel or an inline Map fails with its failed child's error; a distributed
            # Map's children are executions of their own, counted against its tolerance.
            distributed = bool(value.get("run_arn")) and failure["error"] != WRITER_FAILED
            name = "States.ExceedToleratedFailureThreshold" if distributed else failure["error"]
            cause = failure["cause"] or ""
            follow = step.successor(step.state, op=FAIL, input=step.input, error=name, cause=cause)
        else:
            follow = step.successor(step.state, op=COMPLETE, input=step.input, result=output)
        self.host.note(event(_ended(value, failure is None), self.host.backend.clock()))
        self.host.send([follow])

    def result(self, step: Step, join: Join) -> Any:
        """What the Parallel or Map state returns: its children's outputs in order (a failed,
        tolerated child's error in its place), or what its ResultWriter makes of them."""
        value = join.value()
        outcomes = self.host.store.children(step.execution, join.step)
        writer = value.get("writer")
        if writer is None:
            return [
                o["output"] if o["ok"] else {"Error": o["error"], "Cause": o["cause"]}
                for o in outcomes
            ]
        sink = ResultSink(**writer)
        machine = self.host.machine(step)
        record = self.host.record_of(step.execution)
        context = self.host.context(step, record.input, record.start, self.host.backend.clock())
        inputs = [
            self.recorded_input(machine, step, join, index, context)
            for index in range(len(outcomes))
        ]
        if sink.table is None:
            return transformed(outcomes, inputs, sink.transformation)
        return map_runs.write_results(
            self.host.backend, sink, value["run_arn"], value["run_id"], outcomes, inputs
        )

    def recorded_input(
        self, machine: StateMachine, step: Step, join: Join, index: int, context: Mapping[str, Any]
    ) -> Any:
        """A child's input, for a ResultWriter (its item, if its ItemSelector fails now)."""
        try:
            return self.child_input(machine, step, join, index, context)
        except AslError:
            return join.item(index)


def _ended(value: Mapping[str, Any], succeeded: bool) -> str:
    """The history event of a decided Parallel or Map state."""
    outcome = "Succeeded" if succeeded else "Failed"
    if value["kind"] == "parallel":
        return f"ParallelState{outcome}"
    return f"MapRun{outcome}" if value.get("run_arn") else f"MapState{outcome}"
