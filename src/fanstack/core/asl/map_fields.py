"""A Map state's own fields, checked when the definition is declared: the item processor and
its mode, where the items come from (`ItemsPath`/`Items`, or a distributed Map's `ItemReader`),
`ItemSelector`, `ItemBatcher`, `ResultWriter`, concurrency and tolerated failures.

A distributed Map reads its items from a fanstack table, where Step Functions reads S3:
`arn:fanstack:states:::table:scan` (every item of a table, optionally under a key prefix, each as
`{"Key", "Value"}`) or `arn:fanstack:states:::table:getItem` with `ReaderConfig.InputType`
`JSON` (the JSON list found at `ItemsPointer` inside one item's value). `ResultWriter` with
`arn:fanstack:states:::table:putItem` writes each child's result into a table, as Step
Functions writes result files to S3; without a `Resource` it only transforms the output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fanstack.core.asl import choice
from fanstack.core.asl.fields import MAX_TIMEOUT_SECONDS, StateReader, check_int, check_payload

MAX_BATCH_BYTES = 262_144
MAX_LABEL = 40
MAX_READER_ITEMS = 100_000_000
TABLE_SCAN = "arn:fanstack:states:::table:scan"
TABLE_GET_ITEM = "arn:fanstack:states:::table:getItem"
TABLE_PUT_ITEM = "arn:fanstack:states:::table:putItem"
TRANSFORMATIONS = ("NONE", "COMPACT", "FLATTEN")

_DISTRIBUTED_ONLY = ("ItemReader", "ItemBatcher", "ResultWriter", "ToleratedFailurePercentage",
                     "ToleratedFailurePercentagePath", "ToleratedFailureCount",
                     "ToleratedFailureCountPath", "Label")
_READER_FIELDS = frozenset({"Resource", "ReaderConfig", "Parameters", "Arguments"})
_READER_CONFIG_FIELDS = frozenset({"InputType", "ItemsPointer", "MaxItems", "MaxItemsPath"})
_WRITER_FIELDS = frozenset({"Resource", "WriterConfig", "Parameters", "Arguments"})
_WRITER_CONFIG_FIELDS = frozenset({"OutputType", "Transformation"})
_BATCHER_FIELDS = frozenset({"MaxItemsPerBatch", "MaxItemsPerBatchPath", "MaxInputBytesPerBatch",
                             "MaxInputBytesPerBatchPath", "BatchInput"})
_NESTED_FIELDS = frozenset({"StartAt", "States", "Comment", "QueryLanguage"})


def processor(reader: StateReader) -> tuple[Mapping[str, Any], str, frozenset[str]]:
    """A Map's item processor (or legacy Iterator), its field prefix and its allowed fields."""
    if ("ItemProcessor" in reader.raw) == ("Iterator" in reader.raw):
        raise ValueError("exactly one of fields 'ItemProcessor' and 'Iterator' is needed")
    name = "ItemProcessor" if "ItemProcessor" in reader.raw else "Iterator"
    found = reader.raw[name]
    if not isinstance(found, Mapping):
        raise ValueError(f"field {name!r} must be an object")
    allowed = _NESTED_FIELDS | {"ProcessorConfig"} if name == "ItemProcessor" else _NESTED_FIELDS
    return found, f"{name}.", allowed


def map_fields(reader: StateReader, config: Any) -> dict[str, Any]:
    """The MapState fields besides the processor and what every work state has."""
    mode, execution_type = _processor_config(config)
    if mode == "INLINE":
        for name in _DISTRIBUTED_ONLY:
            if name in reader.raw:
                raise ValueError(f"field {name!r} needs ItemProcessor.ProcessorConfig.Mode "
                                 "DISTRIBUTED")
    selector = "Parameters" if "Parameters" in reader.raw else "ItemSelector"
    if selector == "Parameters" and "ItemSelector" in reader.raw:
        raise ValueError("fields 'ItemSelector' and 'Parameters' are mutually exclusive")
    label = reader.raw.get("Label")
    if label is not None and not (isinstance(label, str) and 0 < len(label) <= MAX_LABEL):
        raise ValueError(f"field 'Label' must be a string of 1 to {MAX_LABEL} characters")
    item_reader = _item_reader(reader)
    if item_reader is not None and ("Items" in reader.raw or "ItemsPath" in reader.raw):
        raise ValueError("field 'ItemReader' cannot stand beside Items or ItemsPath")
    return {
        "mode": mode, "execution_type": execution_type,
        "items_path": reader.io_path("ItemsPath", reference=True),
        "items": reader.payload("Items"), "has_items": "Items" in reader.raw,
        "item_selector": reader.payload(selector), "has_item_selector": selector in reader.raw,
        "reader": item_reader, "batcher": _batcher(reader), "writer": _result_writer(reader),
        "max_concurrency": reader.seconds("MaxConcurrency", low=0) or 0,
        "max_concurrency_path": reader.exclusive_path("MaxConcurrency"),
        "tolerated_failure_percentage": reader.number("ToleratedFailurePercentage", 0, 100),
        "tolerated_failure_percentage_path": reader.exclusive_path("ToleratedFailurePercentage"),
        "tolerated_failure_count": reader.seconds("ToleratedFailureCount", low=0),
        "tolerated_failure_count_path": reader.exclusive_path("ToleratedFailureCount"),
        "label": label,
    }


def _processor_config(config: Any) -> tuple[str, str | None]:
    if not isinstance(config, Mapping):
        raise ValueError("field 'ItemProcessor.ProcessorConfig' must be an object")
    for name in config:
        if name not in ("Mode", "ExecutionType"):
            raise ValueError(f"field 'ItemProcessor.ProcessorConfig.{name}' is not allowed")
    mode, execution_type = config.get("Mode", "INLINE"), config.get("ExecutionType")
    if mode not in ("INLINE", "DISTRIBUTED"):
        raise ValueError(f"field 'ItemProcessor.ProcessorConfig.Mode' must be INLINE or "
                         f"DISTRIBUTED, not {mode!r}")
    if mode == "DISTRIBUTED" and execution_type not in ("STANDARD", "EXPRESS"):
        raise ValueError("field 'ItemProcessor.ProcessorConfig.ExecutionType' must be STANDARD "
                         f"or EXPRESS in DISTRIBUTED mode, not {execution_type!r}")
    if mode == "INLINE" and execution_type is not None:
        raise ValueError("field 'ItemProcessor.ProcessorConfig.ExecutionType' needs DISTRIBUTED")
    return str(mode), execution_type


def _object(reader: StateReader, name: str, allowed: frozenset[str]) -> dict[str, Any] | None:
    """ItemReader, ItemBatcher or ResultWriter: an object of known fields, expressions checked."""
    value = reader.raw.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"field {name!r} must be an object")
    wrong = "Parameters" if reader.jsonata else "Arguments"
    for key in value:
        if key not in allowed or key == wrong:
            raise ValueError(f"field '{name}.{key}' is not allowed here")
    if "Resource" in value and not isinstance(value["Resource"], str):
        raise ValueError(f"field '{name}.Resource' must be a string")
    if "Parameters" in value:
        check_payload(value["Parameters"], field=f"{name}.Parameters")
    reader.check_expressions(value, name)
    return value


def _arguments(reader: StateReader, name: str, value: Mapping[str, Any],
               needed: tuple[str, ...]) -> None:
    """The reader's or writer's Parameters (Arguments) name the fields `needed`."""
    field = "Arguments" if reader.jsonata else "Parameters"
    given = value.get(field)
    if not isinstance(given, Mapping):
        raise ValueError(f"field '{name}.{field}' must be an object naming {', '.join(needed)}")
    for key in needed:
        if key not in given and f"{key}.$" not in given:
            raise ValueError(f"field '{name}.{field}' must give {key!r}")


def _item_reader(reader: StateReader) -> dict[str, Any] | None:
    found = _object(reader, "ItemReader", _READER_FIELDS)
    if found is None:
        return None
    resource = found.get("Resource")
    if resource not in (TABLE_SCAN, TABLE_GET_ITEM):
        raise ValueError(f"field 'ItemReader.Resource' {resource!r} is not supported: fanstack "
                         f"reads items with {TABLE_SCAN} or {TABLE_GET_ITEM}")
    needed = ("TableName",) if resource == TABLE_SCAN else ("TableName", "Key")
    _arguments(reader, "ItemReader", found, needed)
    config = found.get("ReaderConfig", {})
    if not isinstance(config, Mapping):
        raise ValueError("field 'ItemReader.ReaderConfig' must be an object")
    for key in config:
        if key not in _READER_CONFIG_FIELDS or (key == "MaxItemsPath" and reader.jsonata):
            raise ValueError(f"field 'ItemReader.ReaderConfig.{key}' is not allowed here")
    if resource == TABLE_GET_ITEM:
        if config.get("InputType") != "JSON":
            raise ValueError("field 'ItemReader.ReaderConfig.InputType' must be JSON for "
                             f"{TABLE_GET_ITEM}")
        pointer = config.get("ItemsPointer")
        if not isinstance(pointer, str) or not pointer.startswith("/"):
            raise ValueError("field 'ItemReader.ReaderConfig.ItemsPointer' must be a JSON "
                             "pointer (\"/orders\") to the list inside the item's value")
    elif "InputType" in config or "ItemsPointer" in config:
        raise ValueError(f"fields InputType and ItemsPointer are for {TABLE_GET_ITEM}; "
                         f"{TABLE_SCAN} yields each item as {{Key, Value}}")
    if "MaxItems" in config and "MaxItemsPath" in config:
        raise ValueError("fields 'ItemReader.ReaderConfig.MaxItems' and 'MaxItemsPath' are "
                         "mutually exclusive")
    max_items = config.get("MaxItems")
    if max_items is not None and not reader.is_expression(max_items):
        check_int(max_items, "ItemReader.ReaderConfig.MaxItems", 1, MAX_READER_ITEMS)
    if "MaxItemsPath" in config:
        choice.check_path(config["MaxItemsPath"], field="ItemReader.ReaderConfig.MaxItemsPath",
                          reference=True)
    return found


def _batcher(reader: StateReader) -> dict[str, Any] | None:
    batcher = _object(reader, "ItemBatcher", _BATCHER_FIELDS)
    if batcher is None:
        return None
    if not any(name in batcher for name in _BATCHER_FIELDS - {"BatchInput"}):
        raise ValueError("field 'ItemBatcher' needs MaxItemsPerBatch or MaxInputBytesPerBatch")
    for name, high in (("MaxItemsPerBatch", MAX_TIMEOUT_SECONDS),
                       ("MaxInputBytesPerBatch", MAX_BATCH_BYTES)):
        if name in batcher and f"{name}Path" in batcher:
            raise ValueError(f"fields 'ItemBatcher.{name}' and '{name}Path' are mutually "
                             "exclusive")
        value = batcher.get(name)
        if value is not None and not reader.is_expression(value):
            check_int(value, f"ItemBatcher.{name}", 1, high)
        if f"{name}Path" in batcher:
            if reader.jsonata:
                raise ValueError(f"field 'ItemBatcher.{name}Path' is JSONPath-only")
            choice.check_path(batcher[f"{name}Path"], field=f"ItemBatcher.{name}Path",
                              reference=True)
    batch_input = batcher.get("BatchInput")
    if batch_input is not None and not reader.jsonata:
        if not isinstance(batch_input, Mapping):
            raise ValueError("field 'ItemBatcher.BatchInput' must be an object")
        check_payload(batch_input, field="ItemBatcher.BatchInput")
    return batcher


def _result_writer(reader: StateReader) -> dict[str, Any] | None:
    writer = _object(reader, "ResultWriter", _WRITER_FIELDS)
    if writer is None:
        return None
    resource = writer.get("Resource")
    if resource is None and "WriterConfig" not in writer:
        raise ValueError("field 'ResultWriter' needs a Resource or a WriterConfig")
    if resource is not None:
        if resource != TABLE_PUT_ITEM:
            raise ValueError(f"field 'ResultWriter.Resource' {resource!r} is not supported: "
                             f"fanstack writes results with {TABLE_PUT_ITEM}")
        _arguments(reader, "ResultWriter", writer, ("TableName",))
    elif "Parameters" in writer or "Arguments" in writer:
        raise ValueError("field 'ResultWriter' takes Parameters (Arguments) only with a Resource")
    config = writer.get("WriterConfig", {})
    if not isinstance(config, Mapping):
        raise ValueError("field 'ResultWriter.WriterConfig' must be an object")
    for key in config:
        if key not in _WRITER_CONFIG_FIELDS:
            raise ValueError(f"field 'ResultWriter.WriterConfig.{key}' is not allowed here")
    if config.get("OutputType", "JSON") != "JSON":
        raise ValueError("field 'ResultWriter.WriterConfig.OutputType' must be JSON")
    if config.get("Transformation", "NONE") not in TRANSFORMATIONS:
        raise ValueError("field 'ResultWriter.WriterConfig.Transformation' must be one of "
                         f"{', '.join(TRANSFORMATIONS)}")
    return writer
