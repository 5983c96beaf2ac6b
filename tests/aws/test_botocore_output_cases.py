"""botocore's response test cases in reverse: botocore's own parser reads what the codec writes.

For every output case of the protocols fanstack serves, the case's `result` goes through the
serializer (or, for an error case, its code, message and modeled fields through
`serialize_error`), and botocore's response parser, configured as in botocore's own test runner,
must read back the case's result (or error code, message and fields).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.awsrequest import HeadersDict
from botocore.model import OperationModel, ServiceModel
from botocore.parsers import ResponseParserFactory
from botocore.utils import parse_timestamp
from dateutil.tz import tzutc

from fanstack.aws.protocols import AwsError, HttpResponse, protocol_for
from tests.aws.botocore_cases import Case, drop_nulls, from_test_form, load_cases, to_test_form

BOTOCORE_CANNOT_READ = "botocore's parser cannot read this spec form (botocore excludes it too)"
EXCLUDED: dict[str, str] = {
    # An empty <Message/> reads as None, not "".
    "QueryComplexError": BOTOCORE_CANNOT_READ,
    # botocore reads both flattened lists under their member's name `item`.
    "QueryXmlLists": BOTOCORE_CANNOT_READ,
    # An absent blob or union payload is an empty body, which botocore reads as "" / a bad union.
    "RestJsonHttpPayloadTraitsWithNoBlobBody": BOTOCORE_CANNOT_READ,
    "RestJsonHttpPayloadWithUnsetUnion": BOTOCORE_CANNOT_READ,
    # botocore splits list headers on every comma, inside quotes and HTTP dates too.
    "RestJsonInputAndOutputWithQuotedStringHeaders": BOTOCORE_CANNOT_READ,
    "RestJsonInputAndOutputWithTimestampHeaders": BOTOCORE_CANNOT_READ,
    # A header map with an empty prefix collects every response header, the request id too.
    "HttpPrefixHeadersResponse": "an empty-prefix header map also holds x-amzn-RequestId",
}


def _cases() -> list[Any]:
    try:
        return [
            pytest.param(case, id=f"{case.protocol_file}:{case.case_id}")
            for case in load_cases("output")
            if case.case_id not in EXCLUDED
        ]
    except FileNotFoundError as exc:
        return [pytest.param(exc, id="cases-missing")]


CASES = _cases()


def _epoch(value: str) -> float:
    return float(parse_timestamp(value).astimezone(tzutc()).timestamp())


def botocore_reads(
    response: HttpResponse, model: ServiceModel, operation: OperationModel, error: bool
) -> dict[str, Any]:
    """The response as botocore's parser reads it, in the test format (as botocore's runner)."""
    protocol = model.metadata["protocol"]
    factory = ResponseParserFactory()
    factory.set_parser_defaults(timestamp_parser=_epoch)  # as botocore's own runner does
    parser = factory.create_parser(protocol)
    raw = {
        "status_code": response.status,
        "headers": HeadersDict(response.headers),
        "body": response.body,
        "context": {"operation_name": operation.name},
    }
    shape = operation.output_shape
    if not error and protocol == "query" and shape is not None and shape.members:
        shape.serialization.setdefault("resultWrapper", f"{operation.name}Result")
    parsed: dict[str, Any] = parser.parse(raw, shape)
    if error:
        error_shape = model.shape_for_error_code(parsed.get("Error", {}).get("Code"))
        if error_shape is not None:
            parsed.update(parser.parse(raw, error_shape))
        parsed["Error"] = {key: parsed["Error"].get(key) for key in ("Code", "Message")}
    parsed.pop("ResponseMetadata", None)
    return dict(to_test_form(parsed))


def error_of(case: Case, model: ServiceModel) -> AwsError:
    """The `AwsError` a service would raise for an error case."""
    code = case.case.get("errorCode", "")
    shape = model.shape_for_error_code(code)
    status = case.case["response"]["status_code"]
    return AwsError(
        shape.name if shape is not None else code,
        case.case.get("errorMessage", ""),
        status=status,
        sender_fault=status < 500,
        fields=from_test_form(shape, case.case.get("error", {})),
    )


@pytest.mark.parametrize("case", CASES)
def test_botocore_reads_back_what_the_codec_wrote(case: Case | Exception) -> None:
    if isinstance(case, Exception):
        pytest.fail(str(case))
    model = case.model()
    operation = case.operation(model)
    protocol = protocol_for(model)
    if "error" in case.case:
        response = protocol.serialize_error(
            error_of(case, model), operation=operation, request_id="req-1"
        )
        expected = {
            "Error": {
                "Code": case.case.get("errorCode", ""),
                "Message": case.case.get("errorMessage", ""),
            },
            **case.case["error"],
        }
    else:
        output = from_test_form(operation.output_shape, case.case["result"])
        response = protocol.serialize(operation, output or {}, request_id="req-1")
        expected = case.case["result"]
    assert botocore_reads(response, model, operation, "error" in case.case) == drop_nulls(expected)


def test_every_excluded_case_exists() -> None:
    known = {case.case_id for case in load_cases("output")}
    assert set(EXCLUDED) <= known
