"""Express workflows run in memory: tasks in real worker processes, Parallel and Map on threads,
retries, catches and waits as sleeps, the 5-minute limit, stops, one record written at the end,
declaration-time rejections, stored starts (bus rules) on the durable engine, and the gateway's
StartSyncExecution over real HTTP."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from fanstack import App
from fanstack.core.errors import ExecutionDoesNotExist, ValidationException
from fanstack.workflows import Execution
from fanstack.workflows.starts import EXPRESS_MAX_SECONDS, time_limit
from fanstack.workflows.store import (
    EXECUTIONS_TABLE,
    HISTORY_TABLE,
    JOINS_TABLE,
    STEP_QUEUE,
    STEPS_TABLE,
    Store,
)

from ..e2e.conftest import start_server
from . import handlers
from .conftest import ONE_BACKEND, wait_for

# -- task handlers (module level: worker processes import them) ------------------------------


def timed_double(event: dict[str, Any], context: Any) -> int:
    """Twice `n`, after sleeping `sleep` seconds; notes when it ran as a file under `dir`."""
    began = time.time()
    time.sleep(event.get("sleep", 0))
    note = Path(event["dir"], f"ran-{event['n']}-{os.getpid()}-{time.monotonic_ns()}")
    note.write_text(json.dumps([began, time.time()]))
    return int(event["n"]) * 2


def fail_first(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Fails until it was called `failures` times before (calls counted as files in `dir`)."""
    calls = len(list(Path(event["dir"]).glob("call-*")))
    Path(event["dir"], f"call-{uuid.uuid4()}").touch()
    if calls < event["failures"]:
        raise ConnectionError(f"attempt {calls + 1} failed")
    return {"attempts": calls + 1, "retry_count": event["retry_count"]}


def peak_concurrency(directory: Path) -> int:
    """The most invocations that ran at once, from the notes `timed_double` left."""
    spans = [json.loads(p.read_text()) for p in directory.glob("ran-*")]
    edges = sorted([(start, 1) for start, _ in spans] + [(stop, -1) for _, stop in spans])
    peak = running = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


def task(resource: str, **fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": resource, **fields}


def single(state: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A machine of one state."""
    return {"StartAt": "Only", "States": {"Only": {**state, "End": True}}, **top}


def chain(prefix: str, *states: dict[str, Any]) -> dict[str, Any]:
    """A branch's or a Map's machine: `states` in a row, named `<prefix>0`, `<prefix>1`..."""
    names = [f"{prefix}{i}" for i in range(len(states))]
    chained = {
        name: {**state, **({"Next": names[i + 1]} if i + 1 < len(names) else {"End": True})}
        for i, (name, state) in enumerate(zip(names, states, strict=True))
    }
    return {"StartAt": names[0], "States": chained}


WAIT_LONG = single({"Type": "Wait", "Seconds": 30})


def rows(app: App, table: str, prefix: str) -> int:
    return len(list(app.backend.table_items(table, prefix=prefix)))


# -- running ---------------------------------------------------------------------------------


def test_an_express_run_calls_functions_and_passes_context_and_variables(app: App) -> None:
    app.function(handlers.double)
    workflow = app.workflow(
        "greet",
        {
            "StartAt": "Remember",
            "States": {
                "Remember": {"Type": "Pass", "Assign": {"factor": 21}, "Next": "Double"},
                "Double": task("double", InputPath="$.n", ResultPath="$.doubled", Next="Tell"),
                "Tell": {
                    "Type": "Pass",
                    "Parameters": {
                        "doubled.$": "$.doubled",
                        "factor.$": "$factor",
                        "execution.$": "$$.Execution.Name",
                        "state.$": "$$.State.Name",
                        "machine.$": "$$.StateMachine.Name",
                        "input.$": "$$.Execution.Input",
                    },
                    "End": True,
                },
            },
        },
        type="EXPRESS",
    )
    done = workflow.start_sync({"n": 4}, name="first")
    assert done.status == "SUCCEEDED", done
    assert done.output == {
        "doubled": 8,
        "factor": 21,
        "execution": "first",
        "state": "Tell",
        "machine": "greet",
        "input": {"n": 4},
    }
    assert done.stop is not None and done.stop >= done.start


def test_an_express_run_writes_one_record_and_nothing_else(app: App) -> None:
    app.function(handlers.double)
    workflow = app.workflow(
        "quiet",
        {
            "StartAt": "Both",
            "States": {
                "Both": {
                    "Type": "Parallel",
                    "Branches": [
                        chain("A", task("double"), {"Type": "Wait", "Seconds": 0}),
                        chain("B", {"Type": "Pass"}),
                    ],
                    "End": True,
                }
            },
        },
        type="EXPRESS",
    )
    done = workflow.start_sync(3, name="once")
    assert (done.status, done.output) == ("SUCCEEDED", [6, 3])
    stats = app.backend.stats(STEP_QUEUE)
    assert (stats.visible, stats.in_flight, stats.delayed) == (0, 0, 0)
    assert rows(app, EXECUTIONS_TABLE, "quiet:") == 1
    for table in (HISTORY_TABLE, STEPS_TABLE, JOINS_TABLE):
        assert rows(app, table, "quiet:") == 0
    assert workflow.execution("once").history() == []
    assert workflow.execution("once").describe() == done


@ONE_BACKEND
def test_parallel_and_map_keep_order_nest_and_honour_max_concurrency(
    app: App, tmp_path: Path
) -> None:
    app.function(timed_double, concurrency=8)
    each = {
        "Type": "Map",
        "ItemsPath": "$.numbers",
        "MaxConcurrency": 2,
        "ItemSelector": {
            "n.$": "$$.Map.Item.Value",
            "index.$": "$$.Map.Item.Index",
            "dir.$": "$.dir",
            "sleep": 0.3,
        },
        "ItemProcessor": chain("Item", task("timed_double")),
    }
    workflow = app.workflow(
        "fan",
        {
            "StartAt": "Both",
            "States": {
                "Both": {
                    "Type": "Parallel",
                    "Branches": [chain("Each", each), chain("B", {"Type": "Pass", "Result": "b"})],
                    "End": True,
                }
            },
        },
        type="EXPRESS",
    )
    done = workflow.start_sync({"numbers": [5, 1, 4, 2, 3, 6], "dir": str(tmp_path)})
    assert done.status == "SUCCEEDED", done
    assert done.output == [[10, 2, 8, 4, 6, 12], "b"]
    assert peak_concurrency(tmp_path) == 2


@ONE_BACKEND
def test_a_failed_branch_fails_the_parallel_with_its_error(app: App) -> None:
    app.function(handlers.refuse)
    workflow = app.workflow(
        "branches",
        single(
            {
                "Type": "Parallel",
                "Branches": [
                    chain("A", task("refuse")),
                    chain("B", {"Type": "Wait", "Seconds": 10}),
                ],
            }
        ),
        type="EXPRESS",
    )
    began = time.monotonic()
    done = workflow.start_sync({"n": 1})
    assert (done.status, done.error) == ("FAILED", "PermissionError")
    assert json.loads(done.cause or "{}")["errorMessage"] == "refused {'n': 1}"
    assert time.monotonic() - began < 8  # the waiting branch was cancelled


@ONE_BACKEND
def test_a_retry_waits_its_interval_then_succeeds(app: App, tmp_path: Path) -> None:
    app.function(fail_first)
    workflow = app.workflow(
        "retrying",
        single(
            task(
                "fail_first",
                Parameters={
                    "dir.$": "$.dir",
                    "failures": 1,
                    "retry_count.$": "$$.State.RetryCount",
                },
                Retry=[{"ErrorEquals": ["ConnectionError"], "IntervalSeconds": 1}],
            )
        ),
        type="EXPRESS",
    )
    began = time.monotonic()
    done = workflow.start_sync({"dir": str(tmp_path)})
    assert (done.status, done.output) == ("SUCCEEDED", {"attempts": 2, "retry_count": 1})
    assert time.monotonic() - began >= 1.0


@ONE_BACKEND
def test_a_catch_routes_the_error_and_a_short_wait_sleeps(app: App) -> None:
    app.function(handlers.refuse)
    workflow = app.workflow(
        "caught",
        {
            "StartAt": "Try",
            "States": {
                "Try": task(
                    "refuse",
                    Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Nap"}],
                    End=True,
                ),
                "Nap": {"Type": "Wait", "Seconds": 1, "End": True},
            },
        },
        type="EXPRESS",
    )
    began = time.monotonic()
    done = workflow.start_sync({"n": 2})
    assert done.status == "SUCCEEDED", done
    assert done.output["error"]["Error"] == "PermissionError"
    assert time.monotonic() - began >= 1.0


@ONE_BACKEND
def test_a_failing_execution_records_its_error_and_cause(app: App) -> None:
    refuse = {"Type": "Fail", "Error": "OutOfStock", "Cause": "no more widgets"}
    workflow = app.workflow(
        "failing", {"StartAt": "Refuse", "States": {"Refuse": refuse}}, type="EXPRESS"
    )
    done = workflow.start_sync({}, name="broke")
    assert (done.status, done.error, done.cause) == ("FAILED", "OutOfStock", "no more widgets")
    stored = Store(app.backend).execution("failing:broke")
    assert (stored.status, stored.error, stored.cause) == (
        "FAILED",
        "OutOfStock",
        "no more widgets",
    )
    assert workflow.executions(status="FAILED") == [stored]
    assert workflow.executions(status="SUCCEEDED") == []


@ONE_BACKEND
def test_a_failed_item_fails_the_map_as_the_durable_engine_does(app: App) -> None:
    check = {
        "Type": "Choice",
        "Choices": [{"Variable": "$", "NumericEquals": 3, "Next": "Item1"}],
        "Default": "Item2",
    }
    processor = {
        "StartAt": "Item0",
        "States": {
            "Item0": check,
            "Item1": {"Type": "Fail", "Error": "Three", "Cause": "three is refused"},
            "Item2": {"Type": "Pass", "End": True},
        },
    }
    workflow = app.workflow(
        "mapped", single({"Type": "Map", "ItemProcessor": processor}), type="EXPRESS"
    )
    done = workflow.start_sync([1, 2, 3, 4])
    assert (done.status, done.error) == ("FAILED", "Three")  # an inline Map fails as its item
    assert done.cause == "three is refused"
    assert workflow.start_sync([1, 2]).output == [1, 2]


@ONE_BACKEND
def test_express_names_are_not_de_duplicated(app: App) -> None:
    workflow = app.workflow("same", single({"Type": "Pass"}), type="EXPRESS")
    assert workflow.start_sync({"n": 1}, name="twice").output == {"n": 1}
    assert workflow.start_sync({"n": 2}, name="twice").output == {"n": 2}
    [record] = workflow.executions()
    assert record.input == {"n": 2}  # the latest run's record stands


# -- limits, starts and stops ----------------------------------------------------------------


@ONE_BACKEND
def test_an_express_execution_times_out_at_its_limit(app: App) -> None:
    workflow = app.workflow(
        "slow", single({"Type": "Wait", "Seconds": 5}, TimeoutSeconds=1), type="EXPRESS"
    )
    began = time.monotonic()
    done = workflow.start_sync({})
    assert (done.status, done.error) == ("TIMED_OUT", "States.Timeout")
    assert time.monotonic() - began < 3


def test_the_express_limit_is_five_minutes_at_most() -> None:
    assert EXPRESS_MAX_SECONDS == 300
    assert time_limit("EXPRESS", None) == 300
    assert time_limit("EXPRESS", 3600) == 300
    assert time_limit("EXPRESS", 10) == 10
    assert time_limit("STANDARD", None) is None
    assert time_limit("STANDARD", 3600) == 3600


@ONE_BACKEND
def test_a_declared_express_workflow_has_the_capped_limit(app: App) -> None:
    assert app.workflow("a", WAIT_LONG, type="EXPRESS").time_limit == 300
    long = {**WAIT_LONG, "TimeoutSeconds": 86_400}
    assert app.workflow("b", long, type="EXPRESS").time_limit == 300
    assert app.workflow("c", long).time_limit == 86_400


@ONE_BACKEND
def test_start_runs_in_the_background_and_only_this_process_sees_it_running(
    app: App, store: Any
) -> None:
    workflow = app.workflow(
        "later", single({"Type": "Wait", "Seconds": 1, "OutputPath": "$.n"}), type="EXPRESS"
    )
    execution = workflow.start({"n": 7}, name="soon")
    assert execution.describe().status == "RUNNING"
    assert workflow.execution("soon").describe().status == "RUNNING"
    assert [r.status for r in workflow.executions()] == ["RUNNING"]
    other = store.app("elsewhere")  # another handle on the store: as another process sees it
    try:
        with pytest.raises(ExecutionDoesNotExist):
            Execution.from_arn(other.backend, execution.arn)
        done = execution.wait(timeout=10)
        assert (done.status, done.output) == ("SUCCEEDED", 7)
        assert Execution.from_arn(other.backend, execution.arn).describe() == done
    finally:
        other.close()


@ONE_BACKEND
def test_start_sync_is_only_for_express_workflows(app: App) -> None:
    workflow = app.workflow("standard", single({"Type": "Pass"}))
    with pytest.raises(ValidationException, match="only for EXPRESS"):
        workflow.start_sync({})
    express = app.workflow("express", single({"Type": "Pass"}), type="EXPRESS")
    with pytest.raises(ValidationException, match="execution name"):
        express.start_sync({}, name="not a name")


@ONE_BACKEND
def test_stop_aborts_a_running_express_execution_at_once(app: App) -> None:
    workflow = app.workflow(
        "stoppable",
        single(
            {
                "Type": "Parallel",
                "Branches": [
                    chain("A", {"Type": "Wait", "Seconds": 30}),
                    chain("B", {"Type": "Pass"}, {"Type": "Wait", "Seconds": 30}),
                ],
            }
        ),
        type="EXPRESS",
    )
    execution = workflow.start({}, name="halt-me")
    time.sleep(0.2)
    began = time.monotonic()
    stopped = execution.stop(error="Halted", cause="by the test")
    assert time.monotonic() - began < 2
    assert (stopped.status, stopped.error, stopped.cause) == ("ABORTED", "Halted", "by the test")
    assert Store(app.backend).execution("stoppable:halt-me") == stopped
    assert execution.wait(timeout=1) == stopped


# -- declaring -------------------------------------------------------------------------------


@ONE_BACKEND
@pytest.mark.parametrize(
    ("definition", "named"),
    [
        (
            single(task("arn:aws:states:::sqs:sendMessage.waitForTaskToken"), Comment="token"),
            ["'Only'", "sqs:sendMessage.waitForTaskToken"],
        ),
        (
            single(
                {
                    "Type": "Parallel",
                    "Branches": [
                        {
                            "StartAt": "Child",
                            "States": {
                                "Child": task(
                                    "arn:aws:states:::states:startExecution.sync:2", End=True
                                )
                            },
                        }
                    ],
                }
            ),
            ["'Child'", "states:startExecution.sync:2"],
        ),
        (
            single(
                {
                    "Type": "Map",
                    "ItemProcessor": {
                        "StartAt": "Inner",
                        "States": {
                            "Inner": {
                                "Type": "Map",
                                "ItemProcessor": {
                                    "ProcessorConfig": {
                                        "Mode": "DISTRIBUTED",
                                        "ExecutionType": "EXPRESS",
                                    },
                                    **chain("Deep", {"Type": "Pass"}),
                                },
                                "End": True,
                            }
                        },
                    },
                }
            ),
            ["'Inner'", "DISTRIBUTED Map"],
        ),
    ],
    ids=["wait-for-token", "sync-in-a-branch", "distributed-map-in-a-map"],
)
def test_what_express_cannot_run_is_rejected_when_declared(
    app: App, definition: dict[str, Any], named: list[str]
) -> None:
    with pytest.raises(ValidationException) as raised:
        app.workflow("refused", definition, type="EXPRESS")
    for part in named:
        assert part in str(raised.value)
    assert "refused" not in app.workflows.declared
    app.workflow("refused", definition)  # a STANDARD workflow runs them


@ONE_BACKEND
def test_an_asynchronous_start_of_another_workflow_is_allowed(app: App) -> None:
    app.workflow("child", single({"Type": "Pass"}))
    parent = app.workflow(
        "parent",
        single(
            task(
                "arn:aws:states:::states:startExecution",
                Parameters={"StateMachineArn": "child", "Input": {"n": 1}, "Name": "kid"},
            )
        ),
        type="EXPRESS",
    )
    done = parent.start_sync({})
    assert done.status == "SUCCEEDED", done
    assert done.output["ExecutionArn"].endswith(":child:kid")


# -- stored starts and the gateway -----------------------------------------------------------


@ONE_BACKEND
def test_a_bus_rule_starts_an_express_workflow_on_the_durable_engine(app: App) -> None:
    app.function(handlers.double)
    workflow = app.workflow(
        "on-event", single(task("double", InputPath="$.detail.n")), type="EXPRESS"
    )
    bus = app.bus("shop")
    bus.rule("run", event_pattern={"source": ["shop"]}, targets=[workflow])
    app.runtime.start()
    bus.put_event("shop", "Counted", {"n": 5})
    wait_for(lambda: [r.status for r in workflow.executions()] == ["SUCCEEDED"])
    [done] = workflow.executions()
    assert done.output == 10
    history = Execution(app.backend, done.key).history()
    assert history[0]["type"] == "ExecutionStarted"  # durable: the step runner ran it


GATEWAY_APP = """
from fanstack import App

app = App("express-gateway")


@app.function
def shout(event, context):
    return event.upper()


quote = app.workflow(
    "quote",
    {
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.fail", "BooleanEquals": True, "Next": "Refuse"}],
                "Default": "Shout",
            },
            "Shout": {
                "Type": "Task", "Resource": "shout", "InputPath": "$.name",
                "ResultPath": "$.shouted", "End": True,
            },
            "Refuse": {"Type": "Fail", "Error": "Refused", "Cause": "asked to fail"},
        },
    },
    type="EXPRESS",
)
app.api.post("/quote", start_workflow=quote, request_schema={"type": "object"}, auth="open")
"""


def test_a_gateway_route_answers_an_express_workflow_with_200_or_502(tmp_path: Path) -> None:
    app_path = tmp_path / "express_app.py"
    app_path.write_text(GATEWAY_APP)
    server = start_server(app_path, tmp_path / "state")
    try:
        with server.client() as client:
            ok = client.post("/quote", json={"name": "ada", "fail": False})
            refused = client.post("/quote", json={"name": "bob", "fail": True})
    finally:
        server.stop()
    assert ok.status_code == 200, ok.text
    answer = ok.json()
    assert answer["status"] == "SUCCEEDED"
    assert answer["output"] == {"name": "ada", "fail": False, "shouted": "ADA"}
    assert answer["execution_arn"].split(":")[-2] == "quote"
    assert answer["start_date"] and answer["stop_date"]
    assert refused.status_code == 502, refused.text
    failure = refused.json()
    assert (failure["status"], failure["error"], failure["cause"]) == (
        "FAILED",
        "Refused",
        "asked to fail",
    )
    app = App("express-gateway", data_dir=tmp_path / "state")
    try:
        statuses = sorted(r.status for r in Store(app.backend).executions("quote"))
        assert statuses == ["FAILED", "SUCCEEDED"]
    finally:
        app.close()
