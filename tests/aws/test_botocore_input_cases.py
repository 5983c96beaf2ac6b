"""botocore's request test cases in reverse: the codec reads each serialized request back.

For every input case of the protocols fanstack serves, the case's `serialized` request (method,
URI, headers, body) goes through the parser, which must name the case's operation and yield its
`params`. Excluded are the cases whose params cannot be recovered from the request because they
test what a client adds or drops on its own (listed below with the reason).
"""

from __future__ import annotations

from typing import Any

import pytest

from fanstack.aws.protocols import HttpRequest, protocol_for
from tests.aws.botocore_cases import Case, drop_nulls, load_cases, lower_headers, to_test_form

CLIENT_ONLY = "client-side behaviour, nothing of it reaches the server to read back"
EXCLUDED: dict[str, str] = {
    # The SDK gzips the body itself; the case states no body to read back.
    "SDKAppliedContentEncoding_awsQuery": CLIENT_ONLY,
    "SDKAppendsGzipAndIgnoresHttpProvidedEncoding_awsQuery": CLIENT_ONLY,
    "SDKAppliedContentEncoding_awsJson1_1": CLIENT_ONLY,
    "SDKAppendsGzipAndIgnoresHttpProvidedEncoding_awsJson1_1": CLIENT_ONLY,
    "SDKAppliedContentEncoding_awsJson1_0": CLIENT_ONLY,
    "SDKAppendsGzipAndIgnoresHttpProvidedEncoding_awsJson1_0": CLIENT_ONLY,
    "SDKAppliedContentEncoding_restJson1": CLIENT_ONLY,
    "SDKAppendedGzipAfterProvidedEncoding_restJson1": CLIENT_ONLY,
    # The SDK fills an idempotency token the caller left out: the params lack what is sent.
    "QueryProtocolIdempotencyTokenAutoFill": CLIENT_ONLY,
    "RestJsonQueryIdempotencyTokenAutoFill": CLIENT_ONLY,
    # Empty lists/maps and null headers are not sent at all: the params hold what the wire lacks.
    "RestJsonOmitsEmptyListQueryValues": "empty lists are omitted from the query string",
    "RestJsonHttpPrefixHeadersAreNotPresent": "an empty header map sends no header",
    "RestJsonNullAndEmptyHeaders": "an empty list header is not sent",
    "QueryEmptyQueryMaps": "an empty map is not sent",
    # The client drops a map entry that a named member overrides: the params hold it, the wire not.
    "RestJsonQueryPrecedence": "client-side precedence of named query members over the map",
    # Whether a query-parameter map also holds named members' parameters is not on the wire;
    # the parser gives the map all of them, as RestJsonAllQueryStringTypes states.
    "RestJsonQueryParamsStringListMap": "the wire cannot tell a named parameter from a map entry",
    # An endpoint URL with a base path is client configuration, not part of the operation's URI.
    "RestJsonHostWithPath": "the client's endpoint base path",
    # botocore encodes this header as JSON (`jsonvalue`), the case as a raw media-type string;
    # fanstack reads what botocore sends (botocore excludes this case from its own run too).
    "MediaTypeHeaderInputBase64": "botocore encodes the mediaType header differently",
}


def _cases() -> list[Any]:
    try:
        return [
            pytest.param(case, id=f"{case.protocol_file}:{case.case_id}")
            for case in load_cases("input")
            if case.case_id not in EXCLUDED
        ]
    except FileNotFoundError as exc:
        return [pytest.param(exc, id="cases-missing")]


CASES = _cases()


def request_of(case: Case) -> HttpRequest:
    """The HTTP request a case states, with the RPC headers a case may leave unstated."""
    serialized = case.case["serialized"]
    headers = lower_headers(serialized.get("headers", {}))
    metadata = case.suite["metadata"]
    if metadata["protocol"] == "json":
        # JSON cases that assert only the body omit the target header every client sends.
        headers.setdefault("x-amz-target", f"{metadata['targetPrefix']}.{case.operation_name}")
    path, _, query = serialized["uri"].partition("?")
    body = serialized.get("body", "").encode("utf-8")
    return HttpRequest(serialized.get("method", "POST"), path, query, headers, body)


@pytest.mark.parametrize("case", CASES)
def test_parser_reads_back_what_botocore_serialized(case: Case | Exception) -> None:
    if isinstance(case, Exception):
        pytest.fail(str(case))
    model = case.model()
    operation, params = protocol_for(model).parse(request_of(case))
    assert operation.name == case.operation_name
    assert to_test_form(params) == drop_nulls(case.case["params"])


def test_every_excluded_case_exists() -> None:
    known = {case.case_id for case in load_cases("input")}
    assert set(EXCLUDED) <= known
