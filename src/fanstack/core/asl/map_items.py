"""Map states: entering one (its items, concurrency and tolerated failures), each item's input,
and the distributed Map's parts the engine carries out: where an `ItemReader` reads the items
(`ItemSource`), how `ItemBatcher` groups them (`Batching`, `batches`), and what a `ResultWriter`
writes (`ResultSink`, `result_rows`). Pure: the engine does the reading and the writing.

Concurrency: an inline Map runs at most 40 items at once, a distributed Map 10,000 children
(`MaxConcurrency` 0 means as many as that). With a batcher, a child's input is
`{"Items": [...], "BatchInput": ...}`, each item through `ItemSelector` first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fanstack.core.asl import paths
from fanstack.core.asl.actions import Batching, ItemSource, ResultSink, RunMap
from fanstack.core.asl.data import AslError
from fanstack.core.asl.map_fields import TABLE_GET_ITEM
from fanstack.core.asl.scope import QUERY_ERROR, RUNTIME_ERROR, Scope
from fanstack.core.asl.states import MapState, StateMachine

INLINE_CONCURRENCY = 40
DISTRIBUTED_CONCURRENCY = 10_000
READER_FAILED = "States.ItemReaderFailed"
WRITER_FAILED = "States.ResultWriterFailed"


def enter_map(state: MapState, input: Any, scope: Scope) -> RunMap:
    """Entering a Map: its items (or where to read them), and how many run at once."""
    effective = input if state.jsonata else paths.select(input, state.input_path)
    reader = _item_source(state, input, effective, scope) if state.reader is not None else None
    cap = DISTRIBUTED_CONCURRENCY if state.mode == "DISTRIBUTED" else INLINE_CONCURRENCY
    asked = scope.number(state.max_concurrency, state.max_concurrency_path, "MaxConcurrency",
                         input, effective, low=0)
    return RunMap(
        processor=state.processor,
        items=None if reader is not None else _items(state, input, effective, scope),
        max_concurrency=min(asked or cap, cap),
        tolerated_failure_percentage=scope.number(
            state.tolerated_failure_percentage, state.tolerated_failure_percentage_path,
            "ToleratedFailurePercentage", input, effective, low=0, integer=False),
        tolerated_failure_count=scope.number(
            state.tolerated_failure_count, state.tolerated_failure_count_path,
            "ToleratedFailureCount", input, effective, low=0),
        mode=state.mode,
        reader=reader,
        batcher=_batching(state, input, effective, scope),
        writer=_result_sink(state, input, effective, scope),
        label=state.label,
    )


def _items(state: MapState, input: Any, effective: Any, scope: Scope) -> list[Any]:
    if state.jsonata and state.has_items:
        items, error = scope.query(state.items, scope.states(input)), QUERY_ERROR
    elif state.jsonata:
        items, error = input, RUNTIME_ERROR
    else:
        items = effective if state.items_path is None else scope.path(state.items_path, effective)
        error = RUNTIME_ERROR
    if not isinstance(items, list):
        raise AslError(error, f"The items of Map state {state.name!r} must be an array, "
                              f"not {type(items).__name__}")
    return items


def _arguments(state: MapState, block: Mapping[str, Any], input: Any, effective: Any,
               scope: Scope) -> Mapping[str, Any]:
    """A reader's or writer's Parameters (rendered on the effective input) or Arguments."""
    if state.jsonata:
        found = scope.query(block.get("Arguments", {}), scope.states(input))
    else:
        found = scope.render(block.get("Parameters", {}), effective)
    return found if isinstance(found, Mapping) else {}


def _text(arguments: Mapping[str, Any], name: str, error: str, where: str,
          default: str | None = None) -> str:
    value = arguments.get(name, default)
    if not isinstance(value, str) or (not value and default is None):
        raise AslError(error, f"{where} needs {name} to be a non-empty string, not {value!r}")
    return value


def _item_source(state: MapState, input: Any, effective: Any, scope: Scope) -> ItemSource:
    assert state.reader is not None
    where = f"The ItemReader of Map state {state.name!r}"
    arguments = _arguments(state, state.reader, input, effective, scope)
    config = state.reader.get("ReaderConfig", {})
    max_items = scope.number(config.get("MaxItems"), config.get("MaxItemsPath"), "MaxItems",
                             input, effective, low=1)
    resource = str(state.reader["Resource"])
    get_item = resource == TABLE_GET_ITEM
    return ItemSource(
        resource=resource,
        table=_text(arguments, "TableName", READER_FAILED, where),
        key=_text(arguments, "Key", READER_FAILED, where) if get_item else None,
        prefix="" if get_item else _text(arguments, "Prefix", READER_FAILED, where, ""),
        items_pointer=config.get("ItemsPointer"),
        max_items=max_items,
    )


def _batching(state: MapState, input: Any, effective: Any, scope: Scope) -> Batching | None:
    batcher = state.batcher
    if batcher is None:
        return None
    limits = [scope.number(batcher.get(name), batcher.get(f"{name}Path"), name, input, effective,
                           low=1)
              for name in ("MaxItemsPerBatch", "MaxInputBytesPerBatch")]
    batch_input: Any = None
    if "BatchInput" in batcher:
        batch_input = (scope.query(batcher["BatchInput"], scope.states(input)) if state.jsonata
                       else scope.render(batcher["BatchInput"], effective))
    return Batching(max_items=limits[0], max_bytes=limits[1], batch_input=batch_input,
                    has_batch_input="BatchInput" in batcher)


def _result_sink(state: MapState, input: Any, effective: Any, scope: Scope) -> ResultSink | None:
    writer = state.writer
    if writer is None:
        return None
    transformation = str(writer.get("WriterConfig", {}).get("Transformation", "NONE"))
    if writer.get("Resource") is None:
        return ResultSink(table=None, prefix="", transformation=transformation)
    where = f"The ResultWriter of Map state {state.name!r}"
    arguments = _arguments(state, writer, input, effective, scope)
    return ResultSink(table=_text(arguments, "TableName", WRITER_FAILED, where),
                      prefix=_text(arguments, "Prefix", WRITER_FAILED, where, ""),
                      transformation=transformation)


def map_item_input(
    machine: StateMachine,
    state: str,
    index: int,
    value: Any,
    input: Any,
    context: Mapping[str, Any],
    variables: Mapping[str, Any],
) -> Any:
    """The input of item `index` of a Map state: `value`, or its ItemSelector's (or AslError)."""
    found = machine.state(state)
    assert isinstance(found, MapState)
    if not found.has_item_selector:
        return value
    item_context = {**context, "Map": {"Item": {"Index": index, "Value": value}}}
    scope = Scope(item_context, variables, None)
    if found.jsonata:
        return scope.query(found.item_selector, scope.states(input))
    return scope.render(found.item_selector, paths.select(input, found.input_path))


# -- reading, batching, writing -----------------------------------------------------------


def listed_items(value: Mapping[str, Any], source: ItemSource) -> list[Any]:
    """The JSON list at the source's ItemsPointer inside a table item's value."""
    from jsonpath import JSONPointer, JSONPointerError  # not at import: see paths._compile

    pointer = source.items_pointer or ""
    try:
        found = JSONPointer(pointer).resolve(value)
    except (JSONPointerError, KeyError, IndexError, TypeError) as exc:
        raise AslError(READER_FAILED, f"item {source.key!r} of table {source.table!r} has "
                                      f"nothing at ItemsPointer {pointer!r}: {exc}") from None
    if not isinstance(found, list):
        raise AslError(READER_FAILED, f"ItemsPointer {pointer!r} in item {source.key!r} of "
                                      f"table {source.table!r} is a {type(found).__name__}, "
                                      "not a list")
    return found


def batches(items: list[Any], batching: Batching) -> list[dict[str, Any]]:
    """Group consecutive items into batches within the batcher's item and byte limits."""
    grouped: list[dict[str, Any]] = []
    current: list[Any] = []
    size = 0
    for index, item in enumerate(items):
        length = len(json.dumps(item, separators=(",", ":")).encode()) + 1
        if batching.max_bytes is not None and length > batching.max_bytes:
            raise AslError(READER_FAILED, f"item {index} is {length} bytes, more than "
                                          f"MaxInputBytesPerBatch ({batching.max_bytes})")
        full = batching.max_items is not None and len(current) >= batching.max_items
        over = batching.max_bytes is not None and size + length > batching.max_bytes
        if current and (full or over):
            grouped.append(_batch(current, batching))
            current, size = [], 0
        current.append(item)
        size += length
    if current:
        grouped.append(_batch(current, batching))
    return grouped


def _batch(items: list[Any], batching: Batching) -> dict[str, Any]:
    batch: dict[str, Any] = {"Items": items}
    if batching.has_batch_input:
        batch["BatchInput"] = batching.batch_input
    return batch


def result_rows(outcomes: list[Mapping[str, Any]], inputs: list[Any],
                transformation: str) -> list[tuple[str, dict[str, Any]]]:
    """What a ResultWriter writes: (`SUCCEEDED/<index>` or `FAILED/<index>`, value) per child.

    NONE keeps each child's input, status and output (or error and cause); COMPACT only the
    output; FLATTEN, like COMPACT, and a child whose output is a list gives a row an element.
    """
    rows: list[tuple[str, dict[str, Any]]] = []
    for index, (outcome, child_input) in enumerate(zip(outcomes, inputs, strict=True)):
        status = "SUCCEEDED" if outcome["ok"] else "FAILED"
        key = f"{status}/{index:08d}"
        ending = ({"Output": outcome["output"]} if outcome["ok"]
                  else {"Error": outcome["error"], "Cause": outcome["cause"]})
        if transformation == "NONE":
            rows.append((key, {"Index": index, "Status": status, "Input": child_input, **ending}))
        elif transformation == "FLATTEN" and outcome["ok"] and isinstance(outcome["output"], list):
            rows.extend((f"{key}/{position:06d}", {"Index": index, "Output": element})
                        for position, element in enumerate(outcome["output"]))
        else:
            rows.append((key, {"Index": index, **ending}))
    return rows


def transformed(outcomes: list[Mapping[str, Any]], inputs: list[Any],
                transformation: str) -> list[Any]:
    """A Map's output under a ResultWriter without a resource: the rows `result_rows` would
    write, in child order (NONE: each child's details; COMPACT: outputs; FLATTEN: one list)."""
    rows = result_rows(outcomes, inputs, transformation)
    rows.sort(key=lambda row: (row[1]["Index"], row[0].rpartition("/")[2]))
    if transformation == "NONE":
        return [value for _, value in rows]
    return [value.get("Output", {k: v for k, v in value.items() if k != "Index"})
            for _, value in rows]
