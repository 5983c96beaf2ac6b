"""Batch requests as a whole: entry ids, entry counts, the total size and their AWS error codes."""

from __future__ import annotations

import pytest

from fanstack.core.batch import check_batch_size, entry_ids
from fanstack.core.errors import (
    BatchEntryIdsNotDistinct,
    BatchRequestTooLong,
    EmptyBatchRequest,
    InvalidBatchEntryId,
    InvalidParameterValue,
    TooManyEntriesInBatchRequest,
)
from fanstack.core.message import QUEUE_BATCH_MAX_BYTES, TOPIC_BATCH_MAX_BYTES


def test_entry_ids_are_returned_in_order_or_defaulted_to_the_index() -> None:
    assert entry_ids([{"id": "a"}, {"id": "b-2_x"}]) == ["a", "b-2_x"]
    assert entry_ids([{}, {}]) == ["0", "1"]


@pytest.mark.parametrize("bad", ["not ok!", "", "x" * 81, "caf\u00e9"])
def test_an_invalid_entry_id_has_sqs_error_code(bad: str) -> None:
    with pytest.raises(InvalidBatchEntryId, match="1-80 letters") as caught:
        entry_ids([{"id": bad}])
    assert caught.value.code == "AWS.SimpleQueueService.InvalidBatchEntryId"
    assert isinstance(caught.value, InvalidParameterValue)


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ([], EmptyBatchRequest),
        ([{"id": str(n)} for n in range(11)], TooManyEntriesInBatchRequest),
        ([{"id": "a"}, {"id": "a"}], BatchEntryIdsNotDistinct),
    ],
)
def test_malformed_batches_are_rejected_whole(
    entries: list[dict[str, str]], error: type[Exception]
) -> None:
    with pytest.raises(error):
        entry_ids(entries)


def test_queue_batches_take_one_mebibyte_and_topic_batches_256_kib() -> None:
    assert (QUEUE_BATCH_MAX_BYTES, TOPIC_BATCH_MAX_BYTES) == (1_048_576, 262_144)
    check_batch_size([QUEUE_BATCH_MAX_BYTES // 2] * 2, max_bytes=QUEUE_BATCH_MAX_BYTES)
    with pytest.raises(BatchRequestTooLong, match="1048577 bytes in all; the limit is 1048576"):
        check_batch_size([QUEUE_BATCH_MAX_BYTES, 1], max_bytes=QUEUE_BATCH_MAX_BYTES)
    with pytest.raises(BatchRequestTooLong, match="the limit is 262144 bytes"):
        check_batch_size([TOPIC_BATCH_MAX_BYTES, 1], max_bytes=TOPIC_BATCH_MAX_BYTES)
