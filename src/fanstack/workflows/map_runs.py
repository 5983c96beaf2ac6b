"""A distributed Map's map run: reading its items (`ItemReader`) and writing its children's
results (`ResultWriter`), both against the app's tables.

- `arn:fanstack:states:::table:scan` reads every item of a table under `Prefix`, in key order,
  each as `{"Key", "Value"}`; `...:table:getItem` reads the JSON list at `ItemsPointer` in one
  item's value. `ReaderConfig.MaxItems` keeps the first so many. A missing table item, or a list
  that is not there, fails the Map state with `States.ItemReaderFailed`.
- `arn:fanstack:states:::table:putItem` writes one row per child under
  `<Prefix><map run id>/SUCCEEDED/<index>` (or `FAILED/...`) and a `manifest.json` row that
  counts them, as Step Functions writes result files and a manifest to S3; the Map's output is
  then `{"MapRunArn", "ResultWriterDetails": {"TableName", "Key"}}` (the manifest's key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from fanstack.backends.base import Backend
from fanstack.core.arns import arn
from fanstack.core.asl.actions import ItemSource, ResultSink
from fanstack.core.asl.data import AslError
from fanstack.core.asl.map_fields import TABLE_SCAN
from fanstack.core.asl.map_items import READER_FAILED, WRITER_FAILED, listed_items, result_rows
from fanstack.core.errors import FanstackError


def read_items(backend: Backend, source: ItemSource) -> list[Any]:
    """The items an ItemReader names (AslError `States.ItemReaderFailed` if it cannot)."""
    try:
        if source.resource == TABLE_SCAN:
            items: list[Any] = []
            for item in backend.table_items(source.table, prefix=source.prefix):
                if source.max_items is not None and len(items) >= source.max_items:
                    break
                items.append({"Key": item.key, "Value": dict(item.value)})
            return items
        assert source.key is not None
        found = backend.table_get(source.table, source.key)
    except FanstackError as error:
        raise AslError(READER_FAILED, f"reading table {source.table!r}: {error}") from None
    if found is None:
        raise AslError(READER_FAILED, f"table {source.table!r} has no item {source.key!r}")
    listed = listed_items(found.value, source)
    return listed if source.max_items is None else listed[: source.max_items]


def map_run_id(execution: str, step: str) -> str:
    """The id of the map run a distributed Map step starts (the same if the step runs again)."""
    name = execution.partition(":")[2]
    return f"{name}-{hashlib.sha256(step.encode()).hexdigest()[:12]}"


def map_run_arn(execution: str, state: str, run_id: str) -> str:
    """The map run's ARN: its workflow, the state's Label (or name), and its id."""
    workflow = execution.partition(":")[0]
    return arn("states", f"mapRun:{workflow}/{state}:{run_id}")


def write_results(
    backend: Backend,
    sink: ResultSink,
    run_arn: str,
    run_id: str,
    outcomes: list[Mapping[str, Any]],
    inputs: list[Any],
) -> dict[str, Any]:
    """Write the children's results and the manifest; the Map's output (the manifest's place).

    Every row is written with a plain put under a key fixed by the run and the child, so a step
    that writes them twice after a crash leaves the same rows.
    """
    assert sink.table is not None
    base = f"{sink.prefix}{run_id}"
    counts = {"SUCCEEDED": 0, "FAILED": 0}
    try:
        for key, value in result_rows(outcomes, inputs, sink.transformation):
            backend.table_put(sink.table, f"{base}/{key}", value)
            counts[key.partition("/")[0]] += 1
        manifest = {
            "MapRunArn": run_arn,
            "TableName": sink.table,
            "ResultFiles": {
                status: {"Prefix": f"{base}/{status}/", "Count": count}
                for status, count in counts.items()
            },
        }
        backend.table_put(sink.table, f"{base}/manifest.json", manifest)
    except FanstackError as error:
        raise AslError(WRITER_FAILED, f"writing results to table {sink.table!r}: {error}") from None
    return {
        "MapRunArn": run_arn,
        "ResultWriterDetails": {"TableName": sink.table, "Key": f"{base}/manifest.json"},
    }
