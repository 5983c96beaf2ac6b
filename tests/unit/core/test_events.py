"""PutEvents entries and the event envelope: AWS's sizes, codes and time format."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fanstack.core.errors import ValidationException
from fanstack.core.events import (
    MAX_REQUEST_BYTES,
    EntryError,
    EventEntry,
    check_request,
    entry_size,
    event_time,
    make_event,
    parse_time,
)

NOW = datetime(2026, 3, 1, 9, 30, 15, 750_000, tzinfo=UTC).timestamp()


def entry(**changes: object) -> EventEntry:
    fields: dict[str, object] = {"source": "shop", "detail_type": "OrderPlaced", "detail": {"a": 1}}
    fields.update(changes)
    return EventEntry(**fields)  # type: ignore[arg-type]


def test_the_envelope_has_eventbridge_fields_and_a_whole_second_utc_time() -> None:
    event = make_event(entry(resources=["arn:x"]), event_id="e1", now=NOW)
    assert event == {
        "version": "0",
        "id": "e1",
        "detail-type": "OrderPlaced",
        "source": "shop",
        "account": "000000000000",
        "time": "2026-03-01T09:30:15Z",
        "region": "us-east-1",
        "resources": ["arn:x"],
        "detail": {"a": 1},
    }


def test_detail_given_as_json_text_is_parsed() -> None:
    assert make_event(entry(detail='{"b": [1, 2]}'), event_id="e", now=NOW)["detail"] == {
        "b": [1, 2]
    }


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"source": None}, "InvalidArgument", "Source is a required argument"),
        ({"source": ""}, "InvalidArgument", "Source is a required argument"),
        ({"detail_type": None}, "InvalidArgument", "DetailType is a required argument"),
        ({"detail_type": "x" * 129}, "InvalidArgument", "longer than 128"),
        ({"detail": None}, "InvalidArgument", "Detail is a required argument"),
        ({"detail": "{oops"}, "MalformedDetail", "Detail is malformed"),
        ({"detail": "[1]"}, "MalformedDetail", "Detail is malformed"),
        ({"source": "aws.s3"}, "NotAuthorizedForSourceException", "Not authorized"),
        ({"resources": "arn:x"}, "InvalidArgument", "Resources must be a list"),
        ({"time": "yesterday"}, "InvalidArgument", "not an ISO 8601"),
    ],
)
def test_a_bad_entry_gets_eventbridges_code_and_message(
    changes: dict[str, object], code: str, words: str
) -> None:
    with pytest.raises(EntryError, match=words) as caught:
        make_event(entry(**changes), event_id="e", now=NOW)
    assert caught.value.code == code


def test_entry_size_counts_as_aws_does() -> None:
    sized = entry(source="ab", detail_type="cd", detail='{"é":1}', resources=["r1", "r22"])
    assert entry_size(sized) == 2 + 2 + len('{"é":1}'.encode()) + 2 + 3
    assert entry_size(entry(source="ab", detail_type="cd", detail="{}", time=NOW)) == 2 + 2 + 2 + 14


def test_a_request_holds_1_to_10_entries_of_256_kib_together() -> None:
    check_request([entry()] * 10)
    with pytest.raises(ValidationException, match="1-10 entries"):
        check_request([])
    with pytest.raises(ValidationException, match="1-10 entries"):
        check_request([entry()] * 11)
    def padded(size: int) -> EventEntry:  # an entry of exactly `size` bytes
        base = entry_size(entry(detail='{"p":""}'))
        return entry(detail='{"p":"' + "x" * (size - base) + '"}')

    check_request([padded(MAX_REQUEST_BYTES)])
    with pytest.raises(ValidationException, match=f"limit is {MAX_REQUEST_BYTES} bytes"):
        check_request([padded(MAX_REQUEST_BYTES + 1)])


@pytest.mark.parametrize(
    "given",
    [
        "2026-03-01T09:30:15Z",
        "2026-03-01T10:30:15+01:00",
        datetime(2026, 3, 1, 9, 30, 15, tzinfo=UTC),
        datetime(2026, 3, 1, 9, 30, 15),
        NOW,
    ],
)
def test_event_times_are_written_in_utc_to_the_second(given: object) -> None:
    assert event_time(given, 0) == "2026-03-01T09:30:15Z"  # type: ignore[arg-type]
    assert parse_time(event_time(given, 0)) == int(NOW)  # type: ignore[arg-type]


def test_entries_read_snake_case_or_aws_keys() -> None:
    aws = {"Source": "s", "DetailType": "d", "Detail": "{}", "Resources": ["r"]}
    ours = {"source": "s", "detail_type": "d", "detail": "{}", "resources": ["r"]}
    assert EventEntry.from_dict(aws) == EventEntry.from_dict(ours)
