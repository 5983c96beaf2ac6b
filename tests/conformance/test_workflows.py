"""Workflows on every backend: transitions, tasks, retries, catches, waits, Parallel and Map
joins, exactly-once steps, names and stops — the engine driven step by step."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from fanstack.core.errors import (
    ExecutionAlreadyExists,
    InvalidDefinition,
    InvalidToken,
    TaskTimedOut,
)
from fanstack.workflows import callbacks
from fanstack.workflows.store import START_STEP, STEP_QUEUE, Store
from fanstack.workflows.task_states import TaskFailed

from .workflow_harness import Harness


def pass_chain(count: int) -> dict[str, Any]:
    states: dict[str, Any] = {}
    for i in range(count):
        state: dict[str, Any] = {"Type": "Pass", "Result": i, "ResultPath": f"$.s{i}"}
        if i + 1 < count:
            state["Next"] = f"S{i + 1}"
        else:
            state["End"] = True
        states[f"S{i}"] = state
    return {"StartAt": "S0", "States": states}


def test_a_chain_of_pass_states_succeeds_with_its_output_and_history(harness: Harness) -> None:
    workflow = harness.declare("chain", pass_chain(3))
    execution = workflow.start({"order": 1}, name="e1")
    assert execution.describe().status == "RUNNING"
    harness.run()
    done = execution.describe()
    assert done.status == "SUCCEEDED"
    assert done.output == {"order": 1, "s0": 0, "s1": 1, "s2": 2}
    types = [e["type"] for e in execution.history()]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    assert types.count("PassStateEntered") == 3 and types.count("PassStateExited") == 3


def test_a_task_result_lands_at_its_result_path(harness: Harness) -> None:
    harness.handlers["charge"] = lambda payload: {"charged": payload["amount"]}
    workflow = harness.declare(
        "pay",
        {
            "StartAt": "Charge",
            "States": {
                "Charge": {
                    "Type": "Task",
                    "Resource": "charge",
                    "Parameters": {"amount.$": "$.total"},
                    "ResultPath": "$.payment",
                    "End": True,
                }
            },
        },
    )
    execution = workflow.start({"total": 12})
    harness.run()
    assert execution.describe().output == {"total": 12, "payment": {"charged": 12}}
    assert harness.calls == [("charge", {"amount": 12})]
    types = [e["type"] for e in execution.history()]
    assert [t for t in types if t.startswith("Task") and not t.startswith("TaskState")] == [
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
    ]


def test_choice_routes_and_a_fail_state_fails_the_execution(harness: Harness) -> None:
    workflow = harness.declare(
        "route",
        {
            "StartAt": "Big?",
            "States": {
                "Big?": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}],
                    "Default": "Small",
                },
                "Big": {"Type": "Succeed"},
                "Small": {"Type": "Fail", "Error": "TooSmall", "Cause": "n is at most 10"},
            },
        },
    )
    big, small = workflow.start({"n": 11}), workflow.start({"n": 3})
    harness.run()
    assert big.describe().status == "SUCCEEDED"
    failed = small.describe()
    assert (failed.status, failed.error, failed.cause) == ("FAILED", "TooSmall", "n is at most 10")


def test_a_failing_task_is_retried_after_its_interval_then_caught(harness: Harness) -> None:
    attempts: list[int] = []

    def flaky(payload: Any) -> Any:
        attempts.append(1)
        raise TaskFailed("Flaky", f"attempt {len(attempts)}")

    harness.handlers["flaky"] = flaky
    workflow = harness.declare(
        "retrying",
        {
            "StartAt": "Call",
            "States": {
                "Call": {
                    "Type": "Task",
                    "Resource": "flaky",
                    "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 5, "MaxAttempts": 2}],
                    "Catch": [
                        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Fallback"}
                    ],
                    "End": True,
                },
                "Fallback": {"Type": "Pass", "End": True},
            },
        },
    )
    execution = workflow.start({"x": 1})
    harness.run()
    assert len(attempts) == 1  # the retry is a timer, not a sleep
    harness.run_for(30)
    assert len(attempts) == 3
    done = execution.describe()
    assert done.status == "SUCCEEDED"
    assert done.output == {"x": 1, "error": {"Error": "Flaky", "Cause": "attempt 3"}}


def test_a_wait_state_is_a_durable_timer(harness: Harness) -> None:
    workflow = harness.declare(
        "waiting",
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 20, "End": True}}},
    )
    execution = workflow.start({"a": 1})
    harness.run()
    harness.clock.advance(10)
    harness.run()
    assert execution.describe().status == "RUNNING"
    harness.clock.advance(11)
    harness.run()
    assert execution.describe().status == "SUCCEEDED"
    assert execution.describe().output == {"a": 1}


def test_parallel_fans_out_and_joins_in_branch_order(harness: Harness) -> None:
    harness.handlers["reserve"] = lambda p: {"reserved": p["sku"]}
    harness.handlers["charge"] = lambda p: {"charged": p["total"]}
    workflow = harness.declare(
        "saga",
        {
            "StartAt": "Both",
            "States": {
                "Both": {
                    "Type": "Parallel",
                    "Branches": [
                        {
                            "StartAt": "Reserve",
                            "States": {
                                "Reserve": {"Type": "Task", "Resource": "reserve", "End": True}
                            },
                        },
                        {
                            "StartAt": "Charge",
                            "States": {
                                "Charge": {"Type": "Task", "Resource": "charge", "End": True}
                            },
                        },
                    ],
                    "End": True,
                }
            },
        },
    )
    execution = workflow.start({"sku": "TEA", "total": 9})
    harness.run()
    done = execution.describe()
    assert done.status == "SUCCEEDED"
    assert done.output == [{"reserved": "TEA"}, {"charged": 9}]


def test_a_failed_branch_fails_the_parallel_state_and_its_catch_runs(harness: Harness) -> None:
    def decline(payload: Any) -> Any:
        raise TaskFailed("PaymentDeclined", "card refused")

    harness.handlers["reserve"] = lambda p: "ok"
    harness.handlers["charge"] = decline
    harness.handlers["release"] = lambda p: "released"
    workflow = harness.declare(
        "compensate",
        {
            "StartAt": "Both",
            "States": {
                "Both": {
                    "Type": "Parallel",
                    "Branches": [
                        {
                            "StartAt": "R",
                            "States": {"R": {"Type": "Task", "Resource": "reserve", "End": True}},
                        },
                        {
                            "StartAt": "C",
                            "States": {"C": {"Type": "Task", "Resource": "charge", "End": True}},
                        },
                    ],
                    "Catch": [
                        {
                            "ErrorEquals": ["PaymentDeclined"],
                            "ResultPath": "$.error",
                            "Next": "Release",
                        }
                    ],
                    "End": True,
                },
                "Release": {
                    "Type": "Task",
                    "Resource": "release",
                    "ResultPath": "$.released",
                    "Next": "Failed",
                },
                "Failed": {"Type": "Fail", "Error": "OrderFailed", "Cause": "payment declined"},
            },
        },
    )
    execution = workflow.start({"order": 7})
    harness.run()
    done = execution.describe()
    assert (done.status, done.error) == ("FAILED", "OrderFailed")
    assert (
        "release",
        {"order": 7, "error": {"Error": "PaymentDeclined", "Cause": "card refused"}},
    ) in harness.calls


def test_map_runs_every_item_within_its_concurrency_and_keeps_their_order(
    harness: Harness,
) -> None:
    harness.handlers["square"] = lambda p: p * p
    workflow = harness.declare(
        "squares",
        {
            "StartAt": "Each",
            "States": {
                "Each": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "MaxConcurrency": 3,
                    "ItemProcessor": {
                        "StartAt": "Sq",
                        "States": {"Sq": {"Type": "Task", "Resource": "square", "End": True}},
                    },
                    "End": True,
                }
            },
        },
    )
    execution = workflow.start({"items": list(range(25))})
    first = harness.backend.receive(STEP_QUEUE, max_messages=10, wait_seconds=0)
    for message in first:
        harness.engine_process(message.body)
        harness.backend.delete_messages(STEP_QUEUE, [message.receipt_handle])
    in_flight = harness.backend.stats(STEP_QUEUE).visible
    assert in_flight == 3  # MaxConcurrency items started, no more
    harness.run()
    assert execution.describe().output == [n * n for n in range(25)]


def test_a_redelivered_step_runs_its_task_once(harness: Harness) -> None:
    harness.handlers["once"] = lambda p: "done"
    workflow = harness.declare(
        "once",
        {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "once", "End": True}}},
    )
    execution = workflow.start({})
    [message] = harness.backend.receive(STEP_QUEUE, max_messages=1, wait_seconds=0)
    harness.engine_process(message.body)
    harness.engine_process(message.body)  # the message came back: its lease ran out
    harness.run()
    assert execution.describe().status == "SUCCEEDED"
    assert harness.calls == [("once", {})]


def test_names_are_unique_per_workflow(harness: Harness) -> None:
    workflow = harness.declare("named", pass_chain(1))
    first = workflow.start({"a": 1}, name="order-1")
    assert workflow.start({"a": 1}, name="order-1").key == first.key  # still running: the same
    with pytest.raises(ExecutionAlreadyExists):
        workflow.start({"a": 2}, name="order-1")
    harness.run()
    with pytest.raises(ExecutionAlreadyExists):
        workflow.start({"a": 1}, name="order-1")  # ended: the name is taken


def test_a_stopped_execution_takes_no_further_step(harness: Harness) -> None:
    harness.handlers["never"] = lambda p: pytest.fail("a stopped execution ran a task")
    workflow = harness.declare(
        "stoppable",
        {
            "StartAt": "W",
            "States": {
                "W": {"Type": "Wait", "Seconds": 5, "Next": "T"},
                "T": {"Type": "Task", "Resource": "never", "End": True},
            },
        },
    )
    execution = workflow.start({})
    harness.run()
    stopped = execution.stop(error="Operator", cause="not needed")
    assert (stopped.status, stopped.error) == ("ABORTED", "Operator")
    harness.run_for(10)
    assert execution.describe().status == "ABORTED"
    assert execution.history()[-1]["type"] == "ExecutionAborted"


def test_an_invalid_definition_is_rejected_when_declared(harness: Harness) -> None:
    with pytest.raises(InvalidDefinition, match="Missing"):
        harness.declare("broken", {"StartAt": "Missing", "States": {"S": {"Type": "Succeed"}}})


WAITING = {
    "StartAt": "Approve",
    "States": {
        "Approve": {
            "Type": "Task",
            "Resource": "ask.waitForTaskToken",
            "Parameters": {"token.$": "$$.Task.Token", "order.$": "$.order"},
            "HeartbeatSeconds": 30,
            "ResultPath": "$.approval",
            "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.error", "Next": "No"}],
            "End": True,
        },
        "No": {"Type": "Fail", "Error": "NotApproved"},
    },
}


def asked_tokens(harness: Harness) -> list[str]:
    return [payload["token"] for resource, payload in harness.calls if resource.startswith("ask")]


def test_a_task_waits_for_its_token_and_an_answer_continues_it(harness: Harness) -> None:
    harness.handlers["ask.waitForTaskToken"] = lambda payload: "sent"
    workflow = harness.declare("approval", WAITING)
    execution = workflow.start({"order": 7})
    harness.run()
    assert execution.describe().status == "RUNNING"
    [token] = asked_tokens(harness)
    harness.workflows.send_task_success(token, {"by": "ada"})
    harness.run()
    done = execution.describe()
    assert (done.status, done.output) == ("SUCCEEDED", {"order": 7, "approval": {"by": "ada"}})
    assert [e["type"] for e in execution.history()] == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSubmitted",
        "TaskSucceeded",  # noted by the answer's step, which does not replace the entry's
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    with pytest.raises(TaskTimedOut):
        harness.workflows.send_task_success(token, {"by": "bob"})  # answered already


ASK_THEN_SHIP = {
    "StartAt": "Approve",
    "States": {
        "Approve": {
            "Type": "Task",
            "Resource": "ask.waitForTaskToken",
            "Parameters": {"token.$": "$$.Task.Token"},
            "HeartbeatSeconds": 30,
            "ResultPath": "$.approval",
            "Next": "Ship",
        },
        "Ship": {"Type": "Task", "Resource": "ship", "ResultPath": "$.ship", "End": True},
    },
}


# ASK_THEN_SHIP's history up to Approve's exit, when Approve started and was answered once.
APPROVED = [
    "ExecutionStarted",
    "TaskStateEntered",
    "TaskScheduled",
    "TaskStarted",
    "TaskSubmitted",
    "TaskSucceeded",
    "TaskStateExited",
]


def run_ask_then_ship(harness: Harness, ask: Any, name: str, order: int) -> Any:
    """Start ASK_THEN_SHIP with `ask` answering its task, and run what is due."""
    harness.handlers["ask.waitForTaskToken"] = ask
    harness.handlers["ship"] = lambda payload: "shipped"
    execution = harness.declare(name, ASK_THEN_SHIP).start({"order": order})
    harness.run()
    return execution


def elsewhere(target: Any, *args: Any) -> None:
    """Run `target(*args)` on another thread (another worker) and wait for it."""
    other = threading.Thread(target=target, args=args)
    other.start()
    other.join()


def shipped(execution: Any, order: int, by: str) -> list[str]:
    """The history's event types of an execution of ASK_THEN_SHIP that must have succeeded."""
    done = execution.describe()
    assert (done.status, done.output) == (
        "SUCCEEDED",
        {"order": order, "approval": {"by": by}, "ship": "shipped"},
    )
    return [e["type"] for e in execution.history()]


def one_batch(harness: Harness) -> None:
    """Process the steps due now, once (as another worker taking one batch would)."""
    for message in harness.backend.receive(STEP_QUEUE, max_messages=10, wait_seconds=0):
        harness.engine_process(message.body)
        harness.backend.delete_messages(STEP_QUEUE, [message.receipt_handle])


def test_a_token_answered_while_its_resource_runs_continues_the_state_once(
    harness: Harness,
) -> None:
    # The resource answers its own token, and another worker takes whatever the answer queued
    # before the resource returns: the state ends once, its events in order.
    def ask(payload: Any) -> str:
        harness.workflows.send_task_success(payload["token"], {"by": "self"})
        elsewhere(one_batch, harness)
        return "sent"

    execution = run_ask_then_ship(harness, ask, "self-answering", 3)
    types = shipped(execution, 3, "self")
    assert [resource for resource, _ in harness.calls] == ["ask.waitForTaskToken", "ship"]
    assert types == [
        *APPROVED,
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]


def processed_bodies(harness: Harness) -> list[str]:
    """Every step body the harness processes, in order (to process one again)."""
    bodies: list[str] = []
    process = harness.engine_process

    def noting(body: str) -> None:
        bodies.append(body)
        process(body)

    harness.engine_process = noting  # type: ignore[method-assign]
    return bodies


def test_a_waiting_task_run_again_after_its_hand_off_starts_nothing_and_continues_once(
    harness: Harness,
) -> None:
    bodies = processed_bodies(harness)
    execution = run_ask_then_ship(harness, lambda payload: "sent", "again", 4)
    # The worker died after handing the task over, before its step was deleted: it comes again.
    harness.engine_process(bodies[-1])
    [token] = asked_tokens(harness)
    harness.workflows.send_task_success(token, {"by": "ada"})
    harness.run()
    types = shipped(execution, 4, "ada")
    assert [resource for resource, _ in harness.calls] == ["ask.waitForTaskToken", "ship"]
    assert types[: len(APPROVED)] == APPROVED
    harness.clock.advance(60)  # its heartbeat timer, sent again, finds it answered
    harness.run()
    assert execution.describe().status == "SUCCEEDED"


def test_two_runs_of_a_waiting_task_at_once_continue_the_state_once(harness: Harness) -> None:
    # The step's lease ran out while its resource ran, and another worker took the step: the
    # later run owns the task, and the answer that comes then continues the state once.
    bodies = processed_bodies(harness)

    def ask(payload: Any) -> str:
        if len(asked_tokens(harness)) == 1:  # the first run: another starts meanwhile
            elsewhere(harness.engine_process, bodies[-1])
            harness.workflows.send_task_success(payload["token"], {"by": "ada"})
            # A third worker takes the answer's step before this run returns.
            elsewhere(one_batch, harness)
        return "sent"

    execution = run_ask_then_ship(harness, ask, "twice", 5)
    types = shipped(execution, 5, "ada")
    calls = [resource for resource, _ in harness.calls]
    assert calls == ["ask.waitForTaskToken", "ask.waitForTaskToken", "ship"]
    assert types.count("TaskStateExited") == 2  # Approve's and Ship's, once each
    assert types.count("TaskSucceeded") == 2


def test_an_earlier_run_whose_resource_fails_late_does_not_end_a_handed_over_task(
    harness: Harness,
) -> None:
    # The first run's lease ran out while its resource ran; a later run took the step and
    # handed the task over; then the first run's resource failed. The task still waits for
    # its answer, which continues the state.
    bodies = processed_bodies(harness)

    def ask(payload: Any) -> str:
        if len(asked_tokens(harness)) == 1:
            elsewhere(harness.engine_process, bodies[-1])
            raise TaskFailed("Slow", "the first run's call failed late")
        return "sent"

    execution = run_ask_then_ship(harness, ask, "late", 6)
    assert execution.describe().status == "RUNNING"
    harness.workflows.send_task_success(asked_tokens(harness)[-1], {"by": "ada"})
    harness.run()
    types = shipped(execution, 6, "ada")
    assert "TaskFailed" not in types and types.count("TaskStateExited") == 2


def test_a_failure_answer_is_caught_like_any_task_error(harness: Harness) -> None:
    harness.handlers["ask.waitForTaskToken"] = lambda payload: "sent"
    workflow = harness.declare("approval", WAITING)
    execution = workflow.start({"order": 8})
    harness.run()
    [token] = asked_tokens(harness)
    harness.workflows.send_task_failure(token, "Rejected", "too expensive")
    harness.run()
    done = execution.describe()
    assert (done.status, done.error) == ("FAILED", "NotApproved")
    [failed] = [e for e in execution.history() if e["type"] == "TaskFailed"]
    assert (failed["error"], failed["cause"]) == ("Rejected", "too expensive")


def test_no_heartbeat_in_time_fails_the_task(harness: Harness) -> None:
    harness.handlers["ask.waitForTaskToken"] = lambda payload: "sent"
    workflow = harness.declare("approval", WAITING)
    execution = workflow.start({"order": 9})
    harness.run()
    [token] = asked_tokens(harness)
    harness.clock.advance(20)
    harness.workflows.send_task_heartbeat(token)
    harness.run_for(25)
    assert execution.describe().status == "RUNNING"  # the heartbeat moved the deadline
    harness.run_for(10)
    done = execution.describe()
    assert (done.status, done.error) == ("FAILED", "States.HeartbeatTimeout")
    [ended] = [e for e in execution.history() if e["type"].startswith("TaskTimed")]
    assert (ended["type"], ended["error"]) == ("TaskTimedOut", "States.HeartbeatTimeout")
    with pytest.raises(TaskTimedOut):
        harness.workflows.send_task_success(token, {})


def test_an_unknown_token_is_invalid(harness: Harness) -> None:
    harness.declare("approval", WAITING)
    with pytest.raises(InvalidToken):
        harness.workflows.send_task_success("not-a-token", {})
    with pytest.raises(InvalidToken):
        harness.workflows.send_task_heartbeat("YXBwcm92YWw6eHxyIzA=")  # well formed, unknown


def test_a_task_past_its_timeout_fails_with_states_timeout(harness: Harness) -> None:
    import time as clock_time

    harness.handlers["slow"] = lambda payload: clock_time.sleep(3)
    workflow = harness.declare(
        "slow",
        {
            "StartAt": "T",
            "States": {"T": {"Type": "Task", "Resource": "slow", "TimeoutSeconds": 1, "End": True}},
        },
    )
    execution = workflow.start({})
    harness.run()
    done = execution.describe()
    assert (done.status, done.error) == ("FAILED", "States.Timeout")
    types = [e["type"] for e in execution.history()]
    assert "TaskTimedOut" in types and "TaskFailed" not in types


def test_when_a_branch_fails_the_other_branches_stop(harness: Harness) -> None:
    def decline(payload: Any) -> Any:
        raise TaskFailed("PaymentDeclined", "card refused")

    harness.handlers["charge"] = decline
    harness.handlers["ship"] = lambda p: pytest.fail("a branch ran on after its Parallel failed")
    workflow = harness.declare(
        "stop-siblings",
        {
            "StartAt": "Both",
            "States": {
                "Both": {
                    "Type": "Parallel",
                    "Branches": [
                        {
                            "StartAt": "C",
                            "States": {"C": {"Type": "Task", "Resource": "charge", "End": True}},
                        },
                        {
                            "StartAt": "W",
                            "States": {
                                "W": {"Type": "Wait", "Seconds": 5, "Next": "S"},
                                "S": {"Type": "Task", "Resource": "ship", "End": True},
                            },
                        },
                    ],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Compensate"}],
                    "End": True,
                },
                "Compensate": {"Type": "Wait", "Seconds": 20, "Next": "Failed"},
                "Failed": {"Type": "Fail", "Error": "OrderFailed"},
            },
        },
    )
    execution = workflow.start({})
    harness.run_for(30)
    done = execution.describe()
    assert (done.status, done.error) == ("FAILED", "OrderFailed")


def test_a_bus_rule_starts_a_workflow_with_the_event_once(harness: Harness) -> None:
    from fanstack.bus import Bus
    from fanstack.bus.catalog import Catalog
    from fanstack.bus.router import Router
    from fanstack.core.events import ingress_queue

    workflow = harness.declare("on-order", pass_chain(1))
    bus = Bus("orders", lambda: harness.backend)
    bus.provision(harness.backend)
    bus.rule("start", event_pattern={"source": ["shop"]}, targets=[workflow])
    event_id = bus.put_event("shop", "OrderPlaced", {"n": 1})
    [message] = harness.backend.receive(ingress_queue("orders"), max_messages=1, wait_seconds=0)
    router = Router("orders")
    router.route(harness.backend, Catalog(harness.backend), [message])
    router.route(harness.backend, Catalog(harness.backend), [message])  # delivered twice
    harness.run()
    [record] = workflow.executions()
    assert record.status == "SUCCEEDED"
    assert record.input["id"] == event_id and record.input["detail"] == {"n": 1}


def nested(resource: str) -> dict[str, Any]:
    return {
        "StartAt": "Child",
        "States": {
            "Child": {
                "Type": "Task",
                "Resource": resource,
                "Parameters": {
                    "StateMachineArn": "arn:aws:states:us-east-1:000000000000:stateMachine:child",
                    "Input.$": "$",
                },
                "End": True,
            }
        },
    }


def test_a_sync_start_waits_for_the_child_and_takes_its_output(harness: Harness) -> None:
    harness.declare("child", pass_chain(2))
    parent = harness.declare("parent", nested("arn:aws:states:::states:startExecution.sync:2"))
    execution = parent.start({"order": 3})
    harness.run()
    done = execution.describe()
    assert done.status == "SUCCEEDED"
    assert done.output["Status"] == "SUCCEEDED"
    assert done.output["Output"] == {"order": 3, "s0": 0, "s1": 1}
    [child] = harness.workflows.declared["child"].executions()
    assert done.output["ExecutionArn"] == child.arn
    types = [e["type"] for e in execution.history()]
    assert types[1:6] == [
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSubmitted",
        "TaskSucceeded",
    ]


def test_a_failed_child_fails_the_sync_task(harness: Harness) -> None:
    harness.declare(
        "child",
        {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Broken", "Cause": "no"}}},
    )
    parent = harness.declare("parent", nested("arn:aws:states:::states:startExecution.sync"))
    execution = parent.start({})
    harness.run()
    done = execution.describe()
    assert (done.status, done.error) == ("FAILED", "States.TaskFailed")
    assert json.loads(done.cause or "{}")["Error"] == "Broken"


def test_a_sync_task_whose_child_cannot_start_fails_once(harness: Harness) -> None:
    parent = harness.declare("parent", nested("arn:aws:states:::states:startExecution.sync"))
    execution = parent.start({})  # no workflow "child" is declared
    harness.run()
    done = execution.describe()
    assert done.status == "FAILED" and (done.error or "").startswith("StepFunctions.")
    types = [e["type"] for e in execution.history()]
    assert types.count("TaskFailed") == 1 and types[-1] == "ExecutionFailed"


def test_a_sync_task_run_again_before_its_hand_off_starts_one_child(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.declare(
        "child", {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 5, "End": True}}}
    )
    parent = harness.declare("parent", nested("arn:aws:states:::states:startExecution.sync"))
    bodies = processed_bodies(harness)
    handed = callbacks.submitted

    def dies(*args: Any) -> str:  # the worker dies once the child started, before the hand-over
        monkeypatch.setattr(callbacks, "submitted", handed)
        raise SystemError("worker killed")

    monkeypatch.setattr(callbacks, "submitted", dies)
    execution = parent.start({"order": 9})
    with pytest.raises(SystemError):
        harness.run()
    harness.engine_process(bodies[-1])  # the step comes again
    harness.run_for(10)
    assert execution.describe().status == "SUCCEEDED"
    [child] = harness.workflows.declared["child"].executions()
    assert child.status == "SUCCEEDED"


def test_a_plain_start_does_not_wait(harness: Harness) -> None:
    harness.declare(
        "child", {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}
    )
    parent = harness.declare("parent", nested("arn:aws:states:::states:startExecution"))
    execution = parent.start({})
    harness.run()
    done = execution.describe()
    assert done.status == "SUCCEEDED" and done.output["ExecutionArn"].endswith(
        ":child:" + (done.output["ExecutionArn"].rsplit(":", 1)[-1])
    )
    [child] = harness.workflows.declared["child"].executions()
    assert child.status == "RUNNING"


def test_an_execution_past_its_timeout_seconds_times_out(harness: Harness) -> None:
    workflow = harness.declare(
        "slowpoke",
        {
            "TimeoutSeconds": 30,
            "StartAt": "W",
            "States": {"W": {"Type": "Wait", "Seconds": 120, "End": True}},
        },
    )
    execution = workflow.start({})
    harness.run_for(40, step=5)
    done = execution.describe()
    assert done.status == "TIMED_OUT"
    assert execution.history()[-1]["type"] == "ExecutionTimedOut"


def test_task_events_carry_when_the_task_started_and_when_it_ended(harness: Harness) -> None:
    def slow(payload: Any) -> Any:
        harness.clock.advance(30)  # the task takes 30 seconds
        return payload

    harness.handlers["slow"] = slow
    task = {"Type": "Task", "Resource": "slow", "End": True}
    workflow = harness.declare("timed", {"StartAt": "T", "States": {"T": task}})
    execution = workflow.start({"n": 1})
    harness.run()
    at = {e["type"]: e["timestamp"] for e in execution.history()}
    assert at["TaskScheduled"] == at["TaskStarted"]
    assert 29 < at["TaskSucceeded"] - at["TaskStarted"] < 35


def test_execution_started_heads_the_history_when_a_worker_took_the_first_step_first(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first step is sent before `ExecutionStarted` is recorded: a worker that runs the
    whole execution in between still leaves a history that starts with the start."""
    workflow = harness.declare("quick", pass_chain(2))
    record_events = Store.add_events

    def late_start(self: Store, execution: str, step: str, events: list[Any]) -> None:
        if step == START_STEP:
            harness.run()  # a worker, quicker than the start's own last write
        record_events(self, execution, step, events)

    monkeypatch.setattr(Store, "add_events", late_start)
    execution = workflow.start({"n": 1}, name="quick-1")
    monkeypatch.undo()
    events = execution.history()
    types = [e["type"] for e in events]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    assert types.count("PassStateEntered") == 2
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))


def test_the_ending_event_closes_the_history_when_a_running_task_finishes_after_it(
    harness: Harness,
) -> None:
    """A stop while a task runs elsewhere: no state follows the task, and though the task's
    own events are written after `ExecutionAborted`, that event ends the history, and what
    happened after it is not in it, as in Step Functions."""
    stopped: list[Any] = []
    at_the_stop: list[list[dict[str, Any]]] = []

    def slow_task(payload: Any) -> Any:
        stopped.append(execution.stop(error="Operator", cause="stopped mid-task"))
        at_the_stop.append(execution.history())
        return {"done": True}

    harness.handlers["slow"] = slow_task
    workflow = harness.declare(
        "cut-short",
        {
            "StartAt": "T",
            "States": {
                "T": {"Type": "Task", "Resource": "slow", "Next": "After"},
                "After": {"Type": "Pass", "End": True},
            },
        },
    )
    execution = workflow.start({}, name="cut-1")
    harness.run()
    assert stopped and stopped[0].status == "ABORTED"
    events = execution.history()
    types = [e["type"] for e in events]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionAborted"
    assert types.count("ExecutionAborted") == 1 and "PassStateEntered" not in types
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    # The task's entry happened before the stop (its events are written once it returned);
    # its success and the state's exit came after it: Step Functions records neither.
    assert types == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "ExecutionAborted",
    ]
    assert [e["type"] for e in at_the_stop[0]] == ["ExecutionStarted", "ExecutionAborted"]


def test_a_task_step_rerun_after_a_stop_leaves_the_history_its_first_run_wrote(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker ran the task, wrote its history and sent the next state, then died before
    marking the step done; the execution is stopped while the step runs again. The rerun
    must not write that history again with the task's end left out."""
    from fanstack.workflows.engine import Engine

    harness.handlers["t"] = lambda payload: {"done": True}
    workflow = harness.declare(
        "rerun-after-stop",
        {
            "StartAt": "T",
            "States": {
                "T": {"Type": "Task", "Resource": "t", "Next": "W"},
                "W": {"Type": "Wait", "Seconds": 100, "End": True},
            },
        },
    )
    execution = workflow.start({}, name="x")
    (first,) = harness.backend.receive(STEP_QUEUE, max_messages=1, wait_seconds=0)

    def die(*args: Any) -> None:
        raise RuntimeError("the worker died before marking the step done")

    with monkeypatch.context() as patched:
        patched.setattr(Store, "mark_dispatched", die)
        with pytest.raises(RuntimeError, match="died"):
            harness.engine_process(first.body)
    harness.run()  # the next state, W, is entered
    written = [e["type"] for e in execution.history()]
    assert written[-3:] == ["TaskSucceeded", "TaskStateExited", "WaitStateEntered"]
    enter = Engine.enter

    def stop_then_enter(self: Engine, *args: Any) -> Any:
        execution.stop(error="Operator", cause="stopped during the rerun")
        return enter(self, *args)

    monkeypatch.setattr(Engine, "enter", stop_then_enter)
    harness.engine_process(first.body)  # the redelivered step
    assert [e["type"] for e in execution.history()] == [*written, "ExecutionAborted"]


def test_a_wait_state_is_entered_and_exited_in_the_history(harness: Harness) -> None:
    """The Wait's resumption is a step of the same id: its events must not replace those of
    the entry."""
    workflow = harness.declare(
        "waits",
        {
            "StartAt": "W",
            "States": {
                "W": {"Type": "Wait", "Seconds": 5, "Next": "P"},
                "P": {"Type": "Pass", "End": True},
            },
        },
    )
    execution = workflow.start({}, name="x")
    harness.run_for(10)
    assert [e["type"] for e in execution.history()] == [
        "ExecutionStarted",
        "WaitStateEntered",
        "WaitStateExited",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]


def test_a_failed_map_records_nothing_more_of_the_items_still_running(harness: Harness) -> None:
    """Item 1 fails the Map (caught) while item 0's task runs: item 0's task ending is not
    recorded, and item 2, which never starts, has no MapIterationStarted."""

    def steps_elsewhere() -> None:  # another worker, taking the steps sent meanwhile
        while batch := harness.backend.receive(STEP_QUEUE, max_messages=1, wait_seconds=0):
            harness.engine_process(batch[0].body)
            harness.backend.delete_messages(STEP_QUEUE, [batch[0].receipt_handle])

    def work(item: Any) -> Any:
        if item == "slow":
            elsewhere(steps_elsewhere)
            return "done late"
        raise TaskFailed("Boom", "item failed")

    harness.handlers["work"] = work
    workflow = harness.declare(
        "map-fails",
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "MaxConcurrency": 2,
                    "ItemProcessor": {
                        "StartAt": "T",
                        "States": {"T": {"Type": "Task", "Resource": "work", "End": True}},
                    },
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}],
                    "Next": "Done",
                },
                "Done": {"Type": "Wait", "Seconds": 100, "End": True},
            },
        },
    )
    execution = workflow.start({"items": ["slow", "fail", "third"]}, name="x")
    steps_elsewhere()
    assert execution.describe().status == "RUNNING"  # caught: waiting in Done
    events = execution.history()
    types = [e["type"] for e in events]
    assert "MapStateFailed" in types and "WaitStateEntered" in types
    assert "TaskSucceeded" not in types and "MapIterationSucceeded" not in types
    started = [e["index"] for e in events if e["type"] == "MapIterationStarted"]
    assert sorted(started) == [0, 1]
