"""Distributed Map on every backend: items read from a table (ItemReader), batched
(ItemBatcher), their results written to a table (ResultWriter); failures of each part; the
concurrency limits of both Map modes; and the Map and Parallel history events."""

from __future__ import annotations

from typing import Any

import pytest

from fanstack.workflows.steps import Step
from fanstack.workflows.store import STEP_QUEUE, STEPS_TABLE

from .workflow_harness import Harness

SCAN = "arn:fanstack:states:::table:scan"
GET_ITEM = "arn:fanstack:states:::table:getItem"
PUT_ITEM = "arn:fanstack:states:::table:putItem"
DISTRIBUTED = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}


def distributed_map(task: str = "work", **fields: Any) -> dict[str, Any]:
    """A workflow of one distributed Map state whose children run `task`."""
    processor = {
        "ProcessorConfig": DISTRIBUTED,
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": task, "End": True}},
    }
    each = {"Type": "Map", "ItemProcessor": processor, "End": True, **fields}
    return {"StartAt": "Each", "States": {"Each": each}}


def test_a_table_scan_reads_every_item_under_the_prefix_in_key_order(harness: Harness) -> None:
    for n in range(30):
        harness.backend.table_put("orders", f"o/{n:03d}", {"total": n})
    harness.backend.table_put("orders", "other", {"total": 99})
    harness.handlers["work"] = lambda item: {
        "key": item["Key"], "double": item["Value"]["total"] * 2,
    }
    workflow = harness.declare("scan", distributed_map(ItemReader={
        "Resource": SCAN, "Parameters": {"TableName": "orders", "Prefix.$": "$.prefix"},
    }))
    execution = workflow.start({"prefix": "o/"})
    harness.run()
    done = execution.describe()
    assert done.status == "SUCCEEDED", done
    assert done.output == [{"key": f"o/{n:03d}", "double": n * 2} for n in range(30)]


def test_max_items_keeps_the_first_items_read(harness: Harness) -> None:
    for n in range(10):
        harness.backend.table_put("orders", f"o/{n:03d}", {"total": n})
    harness.handlers["work"] = lambda item: item["Value"]["total"]
    workflow = harness.declare("first", distributed_map(ItemReader={
        "Resource": SCAN, "Parameters": {"TableName": "orders"},
        "ReaderConfig": {"MaxItemsPath": "$.limit"},
    }))
    execution = workflow.start({"limit": 4})
    harness.run()
    assert execution.describe().output == [0, 1, 2, 3]


def test_a_json_list_in_one_item_is_batched_with_its_batch_input(harness: Harness) -> None:
    harness.backend.table_put("imports", "day-1", {"header": {}, "rows": list(range(10))})
    batches: list[Any] = []

    def work(batch: Any) -> Any:
        batches.append(batch)
        return sum(item["v"] for item in batch["Items"])

    harness.handlers["work"] = work
    workflow = harness.declare("import", distributed_map(
        ItemReader={
            "Resource": GET_ITEM,
            "Parameters": {"TableName": "imports", "Key.$": "$.day"},
            "ReaderConfig": {"InputType": "JSON", "ItemsPointer": "/rows"},
        },
        ItemSelector={"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
        ItemBatcher={"MaxItemsPerBatch": 4, "BatchInput": {"day.$": "$.day"}},
    ))
    execution = workflow.start({"day": "day-1"})
    harness.run()
    assert execution.describe().output == [0 + 1 + 2 + 3, 4 + 5 + 6 + 7, 8 + 9]
    first = next(b for b in batches if b["Items"][0]["i"] == 0)
    assert first == {"Items": [{"v": n, "i": n} for n in range(4)], "BatchInput": {"day": "day-1"}}


def test_batches_stay_within_max_input_bytes(harness: Harness) -> None:
    rows = [{"text": "x" * 90} for _ in range(12)]  # 103 bytes each as JSON, with a separator
    harness.backend.table_put("imports", "big", {"rows": rows})
    harness.handlers["work"] = lambda batch: len(batch["Items"])
    workflow = harness.declare("bytes", distributed_map(
        ItemReader={
            "Resource": GET_ITEM, "Parameters": {"TableName": "imports", "Key": "big"},
            "ReaderConfig": {"InputType": "JSON", "ItemsPointer": "/rows"},
        },
        ItemBatcher={"MaxInputBytesPerBatch": 500},
    ))
    execution = workflow.start({})
    harness.run()
    assert execution.describe().output == [4, 4, 4]


@pytest.mark.parametrize(("reader", "cause"), [
    ({"Resource": GET_ITEM, "Parameters": {"TableName": "imports", "Key": "missing"},
      "ReaderConfig": {"InputType": "JSON", "ItemsPointer": "/rows"}},
     "table 'imports' has no item 'missing'"),
    ({"Resource": GET_ITEM, "Parameters": {"TableName": "imports", "Key": "flat"},
      "ReaderConfig": {"InputType": "JSON", "ItemsPointer": "/rows"}},
     "is a str, not a list"),
    ({"Resource": GET_ITEM, "Parameters": {"TableName": "imports", "Key": "flat"},
      "ReaderConfig": {"InputType": "JSON", "ItemsPointer": "/nowhere"}},
     "nothing at ItemsPointer '/nowhere'"),
    ({"Resource": SCAN, "Parameters": {"TableName.$": "$.number"}},
     "needs TableName to be a non-empty string"),
])
def test_a_reader_that_cannot_read_fails_the_state_with_item_reader_failed(
    harness: Harness, reader: dict[str, Any], cause: str
) -> None:
    harness.backend.table_put("imports", "flat", {"rows": "not a list"})
    harness.handlers["work"] = lambda item: item
    definition = distributed_map(ItemReader=reader, Catch=[
        {"ErrorEquals": ["States.ItemReaderFailed"], "Next": "Failed"}])
    definition["States"]["Each"].pop("End")
    definition["States"]["Each"]["Next"] = "Done"
    definition["States"].update({"Done": {"Type": "Succeed"}, "Failed": {"Type": "Pass",
                                                                          "End": True}})
    execution = harness.declare("unreadable", definition).start({"number": 7})
    harness.run()
    done = execution.describe()
    assert done.status == "SUCCEEDED"
    assert done.output["Error"] == "States.ItemReaderFailed"
    assert cause in done.output["Cause"]


def test_a_result_writer_writes_each_child_and_a_manifest(harness: Harness) -> None:
    def work(item: Any) -> Any:
        if item % 5 == 0:
            raise_failure()
        return item * 10

    harness.handlers["work"] = work
    workflow = harness.declare("written", distributed_map(
        ItemsPath="$.items",
        ToleratedFailureCount=5,
        Label="Scale",
        ResultWriter={"Resource": PUT_ITEM,
                      "Parameters": {"TableName": "results", "Prefix": "runs/"}},
    ))
    execution = workflow.start({"items": list(range(20))}, name="nightly")
    harness.run()
    done = execution.describe()
    assert done.status == "SUCCEEDED", done
    details = done.output["ResultWriterDetails"]
    assert done.output["MapRunArn"].startswith(
        "arn:aws:states:us-east-1:000000000000:mapRun:written/Scale:nightly-")
    assert details["TableName"] == "results" and details["Key"].endswith("/manifest.json")
    manifest = harness.backend.table_get("results", details["Key"])
    assert manifest is not None
    files = manifest.value["ResultFiles"]
    assert files["SUCCEEDED"]["Count"] == 16 and files["FAILED"]["Count"] == 4
    rows = list(harness.backend.table_items("results", prefix=files["SUCCEEDED"]["Prefix"]))
    assert [row.value["Output"] for row in rows] == [n * 10 for n in range(20) if n % 5]
    assert rows[0].value == {"Index": 1, "Status": "SUCCEEDED", "Input": 1, "Output": 10}
    failed = list(harness.backend.table_items("results", prefix=files["FAILED"]["Prefix"]))
    assert [row.value["Index"] for row in failed] == [0, 5, 10, 15]
    assert failed[0].value["Error"] == "BadItem"


def raise_failure() -> None:
    from fanstack.workflows.task_states import TaskFailed

    raise TaskFailed("BadItem", "multiples of five are refused")


@pytest.mark.parametrize(("transformation", "output"), [
    ("COMPACT", [[0], [1, 1], [2, 2, 2]]),
    ("FLATTEN", [0, 1, 1, 2, 2, 2]),
    ("NONE", [{"Index": n, "Status": "SUCCEEDED", "Input": n, "Output": [n] * (n + 1)}
              for n in range(3)]),
])
def test_a_writer_config_alone_transforms_the_output(
    harness: Harness, transformation: str, output: list[Any]
) -> None:
    harness.handlers["work"] = lambda n: [n] * (n + 1)
    workflow = harness.declare("shaped", distributed_map(
        ItemsPath="$", ResultWriter={"WriterConfig": {"Transformation": transformation}},
    ))
    execution = workflow.start([0, 1, 2])
    harness.run()
    assert execution.describe().output == output


def test_too_many_failures_fail_the_map_with_the_tolerance_error(harness: Harness) -> None:
    harness.handlers["work"] = lambda n: raise_failure() if n < 3 else n
    workflow = harness.declare("fragile", distributed_map(
        ItemsPath="$", ToleratedFailurePercentage=20,
    ))
    execution = workflow.start(list(range(10)))
    harness.run()
    done = execution.describe()
    assert done.status == "FAILED" and done.error == "States.ExceedToleratedFailureThreshold"
    types = [e["type"] for e in execution.history()]
    assert "MapRunStarted" in types and "MapRunFailed" in types


def started_at_once(harness: Harness, workflow: Any, items: int) -> int:
    """How many children the Map's first step starts."""
    workflow.start(list(range(items)))
    (message,) = harness.backend.receive(STEP_QUEUE, max_messages=1, wait_seconds=0)
    harness.engine_process(message.body)
    harness.backend.delete_messages(STEP_QUEUE, [message.receipt_handle])
    return harness.backend.stats(STEP_QUEUE).visible


def test_an_inline_map_runs_at_most_40_items_at_once(harness: Harness) -> None:
    harness.handlers["work"] = lambda n: n
    definition = distributed_map(ItemsPath="$")
    definition["States"]["Each"]["ItemProcessor"].pop("ProcessorConfig")
    assert started_at_once(harness, harness.declare("inline", definition), 60) == 40


def test_a_distributed_map_starts_up_to_max_concurrency_children(harness: Harness) -> None:
    harness.handlers["work"] = lambda n: n
    workflow = harness.declare("wide", distributed_map(ItemsPath="$", MaxConcurrency=50))
    assert started_at_once(harness, workflow, 60) == 50


def test_a_map_step_run_again_keeps_the_items_it_first_read(harness: Harness) -> None:
    for n in range(5):
        harness.backend.table_put("orders", f"o/{n}", {"total": n})
    harness.handlers["work"] = lambda item: item["Value"]["total"]
    workflow = harness.declare("again", distributed_map(ItemReader={
        "Resource": SCAN, "Parameters": {"TableName": "orders"}}))
    execution = workflow.start({})
    (message,) = harness.backend.receive(STEP_QUEUE, max_messages=1, wait_seconds=0)
    harness.engine_process(message.body)
    # The process dies before it marks the step done; meanwhile the table changes.
    step = Step.from_json(message.body)
    harness.backend.table_delete(STEPS_TABLE, f"{step.execution}/{step.id}")
    harness.backend.table_put("orders", "o/9", {"total": 9})
    harness.engine_process(message.body)
    harness.backend.delete_messages(STEP_QUEUE, [message.receipt_handle])
    harness.run()
    assert execution.describe().output == [0, 1, 2, 3, 4]


def test_an_inline_map_and_a_parallel_record_their_history_events(harness: Harness) -> None:
    harness.handlers["work"] = lambda n: n
    inline = distributed_map(ItemsPath="$")
    inline["States"]["Each"]["ItemProcessor"].pop("ProcessorConfig")
    definition = {"StartAt": "Both", "States": {"Both": {
        "Type": "Parallel", "End": True,
        "Branches": [inline, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}],
    }}}
    execution = harness.declare("events", definition).start([1, 2])
    harness.run()
    assert execution.describe().output == [[1, 2], [1, 2]]
    types = [e["type"] for e in execution.history()]
    for kind in ("ParallelStateStarted", "ParallelStateSucceeded", "MapStateStarted",
                 "MapStateSucceeded"):
        assert types.count(kind) == 1, kind
    assert types.count("MapIterationStarted") == 2 and types.count("MapIterationSucceeded") == 2
    started = next(e for e in execution.history() if e["type"] == "MapStateStarted")
    assert started["length"] == 2
    order = [t for t in types if t.startswith(("Parallel", "Map"))]
    assert order[0] == "ParallelStateEntered" and order[-1] == "ParallelStateExited"
    assert order.index("MapStateStarted") < order.index("MapIterationStarted")
    assert order.index("MapStateSucceeded") > max(
        i for i, t in enumerate(order) if t == "MapIterationSucceeded")


def test_an_inline_map_fails_with_its_failed_items_error(harness: Harness) -> None:
    harness.handlers["work"] = lambda n: raise_failure() if n == 2 else n
    definition = distributed_map(ItemsPath="$", Catch=[
        {"ErrorEquals": ["BadItem"], "ResultPath": "$.error", "Next": "Caught"}])
    definition["States"]["Each"]["ItemProcessor"].pop("ProcessorConfig")
    definition["States"]["Each"].pop("End")
    definition["States"]["Each"]["ItemsPath"] = "$.items"
    definition["States"]["Each"]["Next"] = "Caught"
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}
    execution = harness.declare("strict", definition).start({"items": [1, 2, 3]})
    harness.run()
    done = execution.describe()
    assert done.status == "SUCCEEDED"
    assert done.output["error"]["Error"] == "BadItem"
