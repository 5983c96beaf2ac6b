"""botocore's own protocol test cases, loaded for running in reverse against the codec.

The cases come from botocore's source distribution (`tests/unit/protocols`), which
`./scripts/test` extracts into `.venv/botocore-protocol-tests/` at install time. Each case embeds
its own service model; the JSON format writes timestamps as epoch numbers, blobs as text and
special floats as strings, so values are normalised to that form before comparing.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

CASES_DIR = Path(__file__).resolve().parents[2] / ".venv" / "botocore-protocol-tests"
PROTOCOL_FILES = ("query", "json", "json_1_0", "json_1_0-query-compatible", "rest-json")
MISSING = (
    f"botocore's protocol test cases are missing from {CASES_DIR}: run ./scripts/test "
    "(it extracts tests/unit/protocols from the pinned botocore sdist) before these tests"
)


@dataclass(frozen=True)
class Case:
    """One test case with the service model it is stated against."""

    protocol_file: str
    direction: str
    case_id: str
    suite: dict[str, Any]
    case: dict[str, Any]

    @property
    def operation_name(self) -> str:
        return str(self.case["given"].get("name", "OperationName"))

    def model(self) -> ServiceModel:
        description = {
            key: copy.deepcopy(value) for key, value in self.suite.items() if key != "cases"
        }
        description["operations"] = {self.operation_name: copy.deepcopy(self.case["given"])}
        return ServiceModel(description)

    def operation(self, model: ServiceModel) -> OperationModel:
        return model.operation_model(self.operation_name)


def load_cases(direction: str) -> Iterator[Case]:
    """Every case of the protocols fanstack serves, in `input` or `output` direction."""
    if not CASES_DIR.is_dir():
        raise FileNotFoundError(MISSING)
    for protocol_file in PROTOCOL_FILES:
        path = CASES_DIR / direction / f"{protocol_file}.json"
        for suite in json.loads(path.read_text()):
            for index, case in enumerate(suite["cases"]):
                case_id = case.get("id") or f"{suite['description']}#{index}"
                yield Case(protocol_file, direction, case_id, suite, case)


def to_test_form(value: Any) -> Any:
    """A parsed value as the test format writes it: epoch numbers, text blobs, float strings."""
    if isinstance(value, dict):
        return {key: to_test_form(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_test_form(item) for item in value]
    if isinstance(value, datetime):
        seconds = round(value.timestamp(), 6)
        return int(seconds) if seconds.is_integer() else seconds
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8")
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
    return value


def drop_nulls(value: Any) -> Any:
    """A test value without its `null` members (the format's way to say "not set")."""
    if isinstance(value, dict):
        return {key: drop_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [drop_nulls(item) for item in value]
    return value


def from_test_form(shape: Shape | None, value: Any) -> Any:
    """A test value as a service would hand it to the serializer (datetimes, bytes, floats)."""
    if shape is None or value is None:
        return value
    if isinstance(shape, StructureShape):
        if shape.is_document_type:
            return value
        return {name: from_test_form(shape.members.get(name), item) for name, item in value.items()}
    if isinstance(shape, ListShape):
        return [from_test_form(shape.member, item) for item in value]
    if isinstance(shape, MapShape):
        return {key: from_test_form(shape.value, item) for key, item in value.items()}
    if shape.type_name == "timestamp":
        return datetime.fromtimestamp(value, UTC)
    if shape.type_name == "blob" and isinstance(value, str):
        return value.encode("utf-8")
    if shape.type_name in ("float", "double") and isinstance(value, str):
        return float(value)
    return value


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased, as `HttpRequest` carries them."""
    return {name.lower(): value for name, value in headers.items()}
