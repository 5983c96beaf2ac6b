"""The worker role runs workflows: tasks in real worker processes, joins, errors, stops."""

from __future__ import annotations

import json

from fanstack import App

from . import handlers

MAP_OF_DOUBLES = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.numbers",
            "MaxConcurrency": 4,
            "ItemProcessor": {
                "StartAt": "Double",
                "States": {"Double": {"Type": "Task", "Resource": "double", "End": True}},
            },
            "ResultPath": "$.doubled",
            "Next": "Both",
        },
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "a", "End": True}}},
                {
                    "StartAt": "B",
                    "States": {
                        "B": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": "double", "Payload.$": "$.numbers[0]"},
                            "OutputPath": "$.Payload",
                            "End": True,
                        }
                    },
                },
            ],
            "ResultPath": "$.branches",
            "End": True,
        },
    },
}


def test_tasks_run_functions_in_workers_through_map_and_parallel(app: App) -> None:
    app.function(handlers.double)
    workflow = app.workflow("doubles", MAP_OF_DOUBLES)
    app.runtime.start()
    execution = workflow.start({"numbers": [1, 2, 3, 4, 5, 6]})
    done = execution.wait(timeout=60)
    assert done.status == "SUCCEEDED", done
    assert done.output["doubled"] == [2, 4, 6, 8, 10, 12]
    assert done.output["branches"] == ["a", 2]


def test_a_function_error_fails_the_task_with_its_type_and_lambdas_cause(app: App) -> None:
    app.function(handlers.refuse)
    workflow = app.workflow(
        "refusing",
        {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "refuse", "End": True}}},
    )
    app.runtime.start()
    done = workflow.start({"n": 1}).wait(timeout=60)
    assert (done.status, done.error) == ("FAILED", "PermissionError")
    assert json.loads(done.cause or "{}")["errorMessage"] == "refused {'n': 1}"
