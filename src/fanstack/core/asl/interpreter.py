"""The pure step function of the States Language: what entering, completing or failing a state does.

The durable engine (`workflows/engine.py`) keeps executions; it asks this module what one state
does and acts on the answer, an `Action`. `enter` resolves Pass, Choice, Wait, Succeed and Fail at
once and says which task, branches or items to run for Task, Parallel and Map; `complete` takes
the task's result (the list of branch outputs, the list of item results) through
`ResultSelector`, `ResultPath` and `OutputPath` (JSONata: `Output`) and `Assign`; `fail` applies
`Retry`, then `Catch`, else fails the (sub)machine. A data error on the way (a path that selects
nothing, a bad intrinsic, an expression that yields nothing, 256 KiB exceeded) is a failure of
the state like a task's, routed through `fail`.

Data flow, as the spec and the developer guide give it: JSONPath `InputPath` -> `Parameters` ->
task -> `ResultSelector` -> `ResultPath` (into the raw input) -> `OutputPath`; `Assign` reads the
state's result (after `ResultSelector`; a Choice's or Wait's input; a catcher's error output),
and every assignment of a state sees the variables as they were on entry. JSONata: `$states`
holds `input`, `context`, and `result` (after a task) or `errorOutput` (in a catcher); `Output`
defaults to the result (the input for Pass, Choice, Wait and Succeed; the error output for a
catcher). No clock is read and no randomness used but the `rng` given.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from fanstack.core.asl import choice, intrinsics, jsonata, paths, retry
from fanstack.core.asl.actions import (
    Action,
    Delay,
    Fail,
    Next,
    Retry,
    RunBranches,
    RunMap,
    RunTask,
    Succeed,
)
from fanstack.core.asl.data import AslError, check_size
from fanstack.core.asl.map_items import enter_map, map_item_input
from fanstack.core.asl.scope import QUERY_ERROR, RUNTIME_ERROR, Scope
from fanstack.core.asl.states import (
    ChoiceState,
    FailState,
    MapState,
    ParallelState,
    PassState,
    State,
    StateMachine,
    SucceedState,
    TaskState,
    WaitState,
    WorkState,
)

__all__ = [
    "Action", "Delay", "Fail", "Next", "Retry", "RunBranches", "RunMap", "RunTask", "Succeed",
    "complete", "enter", "fail", "map_item_input", "state_type", "submachine",
]


def state_type(machine: StateMachine, state: str) -> str:
    """The Type of a state (`Task`, `Pass`...), as history event names use it."""
    return machine.state(state).type


def submachine(machine: StateMachine, state: str, index: int) -> StateMachine:
    """Branch `index` of a Parallel state, or the item processor of a Map (any index)."""
    found = machine.state(state)
    if isinstance(found, ParallelState):
        return found.branches[index]
    if isinstance(found, MapState):
        return found.processor
    raise ValueError(f"state {state!r} is a {found.type} state, which runs no submachine")


# -- entering a state ------------------------------------------------------------------------


def enter(
    machine: StateMachine,
    state: str,
    input: Any,
    context: Mapping[str, Any],
    variables: Mapping[str, Any],
    *,
    now: datetime,
    rng: random.Random,
    retry_counts: Mapping[int, int] | None = None,
) -> Action:
    """Enter a state: its outcome, or what to run (`retry_counts`: per retrier, if known)."""
    found, scope = machine.state(state), Scope(context, variables, rng)

    def entered() -> Action:
        check_size(input, f"the input of state {state!r}")
        return _ENTER[type(found)](found, input, scope)

    return _failing_as_the_state(machine, state, input, scope, rng, retry_counts, entered)


def _failing_as_the_state(machine: StateMachine, state: str, input: Any, scope: Scope,
                          rng: random.Random, retry_counts: Mapping[int, int] | None,
                          step: Callable[[], Action]) -> Action:
    """`step()`, or, when it raises AslError, what `fail` makes of that error."""
    try:
        return step()
    except AslError as exc:
        counts = retry_counts
        if counts is None:
            counts = _counts(machine.state(state), scope.context)
        return fail(machine, state, input, exc.error, exc.cause, counts, scope.context,
                    scope.variables, rng=rng)


def _advance(state: State, output: Any, variables: Mapping[str, Any]) -> Next | Succeed:
    check_size(output, f"the output of state {state.name!r}")
    if state.next is None:
        return Succeed(output)
    return Next(state.next, output, variables)


def _enter_pass(state: PassState, input: Any, scope: Scope) -> Action:
    if state.jsonata:
        states = scope.states(input)
        output = scope.query(state.output, states) if state.has_output else input
        return _advance(state, output, scope.assign(None, states, state.assign))
    effective = paths.select(input, state.input_path)
    if state.parameters is not None:
        effective = scope.render(state.parameters, effective)
    result = state.result if state.has_result else effective
    output = paths.put_result(input, state.result_path, result)
    variables = scope.assign(result, None, state.assign)
    return _advance(state, paths.select(output, state.output_path), variables)


def _effective(state: WorkState, input: Any, scope: Scope) -> tuple[Any, Any]:
    """The effective input and the payload (after `Parameters`/`Arguments`)."""
    if state.jsonata and state.has_parameters:
        return input, scope.query(state.parameters, scope.states(input))
    if state.jsonata:
        return input, input
    effective = paths.select(input, state.input_path)
    if state.parameters is None:
        return effective, effective
    return effective, scope.render(state.parameters, effective)


def _enter_task(state: TaskState, input: Any, scope: Scope) -> Action:
    effective, payload = _effective(state, input, scope)
    check_size(payload, f"the parameters of state {state.name!r}")
    credentials = state.credentials
    if credentials is not None:
        credentials = (scope.query(credentials, scope.states(input)) if state.jsonata
                       else scope.render(credentials, effective))
    return RunTask(
        resource=state.resource,
        payload=payload,
        timeout_seconds=scope.number(state.timeout_seconds, state.timeout_seconds_path,
                                     "TimeoutSeconds", input, effective, low=1),
        heartbeat_seconds=scope.number(state.heartbeat_seconds, state.heartbeat_seconds_path,
                                       "HeartbeatSeconds", input, effective, low=1),
        wait_for_token=state.resource.endswith(".waitForTaskToken"),
        credentials=credentials,
    )


def _enter_parallel(state: ParallelState, input: Any, scope: Scope) -> Action:
    _, branch_input = _effective(state, input, scope)
    check_size(branch_input, f"the input of the branches of state {state.name!r}")
    return RunBranches(branches=state.branches, input=branch_input)


def _enter_choice(state: ChoiceState, input: Any, scope: Scope) -> Action:
    if state.jsonata:
        states = scope.states(input)
        for rule in state.choices:
            if choice.condition_holds(rule, states, scope.variables, rng=scope.rng):
                return _chosen(state, rule, input, states, scope)
        return _chosen(state, None, input, states, scope)
    effective = paths.select(input, state.input_path)
    for rule in state.choices:
        if choice.holds(rule, lambda path: scope.path(path, effective)):
            return _chosen(state, rule, effective, None, scope)
    return _chosen(state, None, effective, None, scope)


def _chosen(state: ChoiceState, rule: choice.Rule | None, data: Any,
            states: Mapping[str, Any] | None, scope: Scope) -> Action:
    """Where a Choice goes: the matching rule's `Next`, else `Default`, else a failure."""
    target = rule.next if rule is not None else state.default
    if target is None:
        raise AslError("States.NoChoiceMatched",
                       f"No Choice rule of state {state.name!r} matched, and there is no Default")
    # The state's Assign applies whichever way it goes; the matching rule's, on top of it.
    variables = scope.assign(data, states, state.assign, rule.assign if rule else None)
    if states is None:
        output = paths.select(data, state.output_path)
    elif rule is not None and rule.has_output:
        output = scope.query(rule.output, states)
    else:
        output = scope.query(state.output, states) if state.has_output else data
    check_size(output, f"the output of state {state.name!r}")
    return Next(target, output, variables)


def _enter_wait(state: WaitState, input: Any, scope: Scope) -> Action:
    if state.jsonata:
        states = scope.states(input)
        then = _advance(state, scope.query(state.output, states) if state.has_output else input,
                        scope.assign(None, states, state.assign))
        effective = input
    else:
        effective = paths.select(input, state.input_path)
        then = _advance(state, paths.select(effective, state.output_path),
                        scope.assign(effective, None, state.assign))
    seconds = scope.number(state.seconds, state.seconds_path, "Seconds", input, effective, low=0)
    if seconds is not None:
        return Delay(seconds=float(seconds), until=None, then=then)
    stamp, error = state.timestamp, RUNTIME_ERROR
    if isinstance(stamp, str) and state.jsonata and jsonata.is_expression(stamp):
        stamp, error = scope.query(stamp, scope.states(input)), QUERY_ERROR
    elif stamp is None and state.timestamp_path is not None:
        stamp = scope.path(state.timestamp_path, effective)
    moment = choice.parse_timestamp(stamp) if isinstance(stamp, str) else None
    if moment is None:
        raise AslError(error, f"The Timestamp of Wait state {state.name!r} is not an RFC 3339 "
                              f"timestamp: {stamp!r}")
    return Delay(seconds=None, until=moment.isoformat(), then=then)


def _enter_succeed(state: SucceedState, input: Any, scope: Scope) -> Action:
    if state.jsonata:
        output = scope.query(state.output, scope.states(input)) if state.has_output else input
    else:
        output = paths.select(paths.select(input, state.input_path), state.output_path)
    check_size(output, f"the output of state {state.name!r}")
    return Succeed(output)


def _enter_fail(state: FailState, input: Any, scope: Scope) -> Action:
    texts = []
    for text, path in ((state.error, state.error_path), (state.cause, state.cause_path)):
        if text is not None and state.jsonata:
            text = scope.query(text, scope.states(input))
        elif path is not None and intrinsics.is_intrinsic(path):
            text = intrinsics.call_intrinsic(path, input, scope.context, rng=scope.rng)
        elif path is not None:
            text = scope.path(path, input)
        if text is not None and not isinstance(text, str):
            raise AslError(RUNTIME_ERROR, f"The error and cause of Fail state {state.name!r} "
                                          f"must be strings, not {text!r}")
        texts.append(text or "")
    return Fail(texts[0], texts[1])


_ENTER: dict[type[State], Callable[[Any, Any, Scope], Action]] = {
    PassState: _enter_pass, TaskState: _enter_task, ParallelState: _enter_parallel,
    MapState: enter_map, ChoiceState: _enter_choice, WaitState: _enter_wait,
    SucceedState: _enter_succeed, FailState: _enter_fail,
}


# -- completing and failing ------------------------------------------------------------------


def complete(
    machine: StateMachine,
    state: str,
    input: Any,
    result: Any,
    context: Mapping[str, Any],
    variables: Mapping[str, Any],
    *,
    now: datetime,
    rng: random.Random,
    retry_counts: Mapping[int, int] | None = None,
) -> Action:
    """A Task, Parallel or Map has its result: where the state goes, with what output."""
    found, scope = machine.state(state), Scope(context, variables, rng)
    assert isinstance(found, WorkState), f"state {state!r} is a {found.type} state"

    def completed() -> Action:
        check_size(result, f"the result of state {state!r}")
        if found.jsonata:
            states = scope.states(input, result=result)
            output = scope.query(found.output, states) if found.has_output else result
            return _advance(found, output, scope.assign(None, states, found.assign))
        selected = result
        if found.result_selector is not None:
            selected = scope.render(found.result_selector, result)
        output = paths.put_result(input, found.result_path, selected)
        return _advance(found, paths.select(output, found.output_path),
                        scope.assign(selected, None, found.assign))

    return _failing_as_the_state(machine, state, input, scope, rng, retry_counts, completed)


def fail(
    machine: StateMachine,
    state: str,
    input: Any,
    error: str,
    cause: str,
    retry_counts: Mapping[int, int],
    context: Mapping[str, Any],
    variables: Mapping[str, Any],
    *,
    rng: random.Random,
) -> Action:
    """A state failed: retry it, move to a catcher's `Next`, or fail the (sub)machine."""
    found = machine.state(state)
    if not isinstance(found, WorkState):
        return Fail(error, cause)
    decision = retry.next_retry(found.retry, error, retry_counts, rng)
    if decision is not None:
        return Retry(decision.delay_seconds, decision.retrier, decision.attempt)
    catcher = retry.find_catcher(found.catch, error)
    if catcher is None:
        return Fail(error, cause)
    scope = Scope(context, variables, rng)
    error_output = retry.error_output(error, cause)
    try:
        if found.jsonata:
            states = scope.states(input, errorOutput=error_output)
            output = scope.query(catcher.output, states) if catcher.has_output else error_output
            new_variables = scope.assign(None, states, catcher.assign)
        else:
            output = paths.put_result(input, catcher.result_path, error_output)
            new_variables = scope.assign(error_output, None, catcher.assign)
        check_size(output, f"the output of state {state!r}")
    except AslError as exc:
        return Fail(exc.error, exc.cause)
    return Next(catcher.next, output, new_variables)


def _counts(state: State, context: Mapping[str, Any]) -> dict[int, int]:
    """Per-retrier counts when the engine gave none: each as the state's total (`RetryCount`)."""
    total = context.get("State", {}).get("RetryCount", 0)
    retriers = state.retry if isinstance(state, WorkState) else ()
    return {index: int(total) for index in range(len(retriers))}
