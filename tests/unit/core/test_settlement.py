"""Settling a batch: the policy as plain values (what is deleted, retried, handed back)."""

from __future__ import annotations

import random

import pytest

from fanstack.core.message import ReceivedMessage
from fanstack.core.outcome import Outcome
from fanstack.core.retry import RetryPolicy
from fanstack.core.settlement import (
    REPORTED_FAILURE,
    ConsumerPolicy,
    failed_item_ids,
    settle,
)

POLICY = ConsumerPolicy(
    report_item_failures=True,
    retry=RetryPolicy(base_delay=4, max_delay=4, max_attempts=3),
    max_receive_count=3,
    retry_later_limit=60,
)
ERROR = {"errorType": "ValueError", "errorMessage": "bad", "stackTrace": ["  line 1"]}


def message(n: int, receive_count: int = 1) -> ReceivedMessage:
    return ReceivedMessage(
        id=f"m{n}",
        body="{}",
        message_attributes={},
        receipt_handle=f"h{n}",
        receive_count=receive_count,
        sent_timestamp=0.0,
        first_receive_timestamp=0.0,
        queue="q",
    )


BATCH = [message(1), message(2), message(3, receive_count=3)]


def test_success_deletes_the_batch() -> None:
    decision = settle(BATCH, Outcome(ok=True, result=None), POLICY)
    assert decision.delete == ("h1", "h2", "h3")
    assert (decision.retry, decision.hand_back, decision.label) == ((), (), "success")


def test_reported_item_failures_are_retried_the_rest_deleted() -> None:
    result = {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]}
    decision = settle(BATCH, Outcome(ok=True, result=result), POLICY, rng=random.Random(1))
    assert decision.delete == ("h1",)
    assert [(r.receipt_handle, r.reason) for r in decision.retry] == [
        ("h2", REPORTED_FAILURE),
        ("h3", REPORTED_FAILURE),
    ]
    assert 0 <= decision.retry[0].delay <= 4
    assert decision.retry[1].delay == 0  # its queue dead-letters it on the next receive
    assert decision.label == "partial"


def test_reports_are_ignored_unless_the_consumer_reports_item_failures() -> None:
    policy = ConsumerPolicy(
        report_item_failures=False, retry=POLICY.retry, max_receive_count=3, retry_later_limit=60
    )
    result = {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert settle(BATCH, Outcome(ok=True, result=result), policy).delete == ("h1", "h2", "h3")


def test_an_error_fails_every_message_with_its_summary() -> None:
    decision = settle(BATCH, Outcome(ok=False, error=ERROR), POLICY)
    assert decision.delete == ()
    assert {r.reason for r in decision.retry} == {"ValueError: bad\n  line 1"}
    assert (decision.failed, decision.label) == (3, "error")


def test_retry_later_hands_back_uncounted_until_the_limit() -> None:
    outcome = Outcome(ok=False, signal="RetryLater", delay=2.5, error=ERROR)
    decision = settle(BATCH, outcome, POLICY, deferral_expired={"m2"})
    assert decision.hand_back == (("h1", 3), ("h3", 3))
    (retry,) = decision.retry
    assert retry.receipt_handle == "h2"
    assert "retried later for more than 60 s" in retry.reason
    assert decision.label == "retry-later"


def test_an_interrupted_batch_goes_back_uncounted_at_once() -> None:
    decision = settle(BATCH, Outcome(ok=False, error=ERROR), POLICY, interrupted=True)
    assert decision.hand_back == (("h1", 0), ("h2", 0), ("h3", 0))
    assert (decision.delete, decision.retry, decision.label) == ((), (), "interrupted")


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (None, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "m1"}]}, {"m1"}),
        ({"batchItemFailures": [{"itemIdentifier": "elsewhere"}]}, {"m1", "m2"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"m1", "m2"}),
        ({"batchItemFailures": "m1"}, {"m1", "m2"}),
        ({"batchItemFailures": [{"id": "m1"}]}, {"m1", "m2"}),
    ],
)
def test_batch_item_failures_are_read_as_lambda_reads_them(
    response: object, failed: set[str]
) -> None:
    assert failed_item_ids(response, ["m1", "m2"]) == failed
