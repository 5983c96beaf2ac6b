"""Rule, target and archive specs: EventBridge's names, ranges, limits and stored forms."""

from __future__ import annotations

import pytest

from fanstack.core.archives import COMPLETED, RUNNING, ArchiveSpec, ReplaySpec, check_window
from fanstack.core.errors import InvalidEventPattern, LimitExceeded, ValidationException
from fanstack.core.rules import API, BUS, QUEUE, RuleSpec, TargetSpec, rule_arn
from fanstack.core.target_input import TargetInput


def target(**changes: object) -> TargetSpec:
    fields: dict[str, object] = {"id": "t1", "kind": QUEUE, "resource": "orders"}
    fields.update(changes)
    return TargetSpec(**fields)  # type: ignore[arg-type]


def test_target_defaults_are_eventbridges() -> None:
    spec = target()
    assert (spec.maximum_event_age, spec.maximum_retry_attempts) == (86_400, 185)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"maximum_event_age": 59}, "between 60 and 86400"),
        ({"maximum_event_age": 86_401}, "between 60 and 86400"),
        ({"maximum_retry_attempts": -1}, "between 0 and 185"),
        ({"maximum_retry_attempts": 186}, "between 0 and 185"),
        ({"id": "bad id"}, "1-64 letters"),
        ({"kind": "lambda"}, "kind must be one of"),
        ({"kind": API, "resource": "ftp://x"}, "http:// or https://"),
        ({"kind": API, "resource": "http://x", "rate_limit_per_second": 0}, "between 1 and 300"),
        ({"kind": BUS, "resource": "b", "input": TargetInput(input="{}")}, "as it is"),
    ],
)
def test_target_limits_are_enforced_with_their_numbers(
    changes: dict[str, object], words: str
) -> None:
    with pytest.raises(ValidationException, match=words):
        target(**changes)


def test_a_rule_takes_5_targets_with_distinct_ids_and_a_valid_pattern() -> None:
    targets = tuple(target(id=f"t{i}") for i in range(5))
    RuleSpec(bus="b", name="r", event_pattern='{"source":["s"]}', targets=targets)
    with pytest.raises(LimitExceeded, match="5 targets per rule"):
        RuleSpec(
            bus="b", name="r", event_pattern='{"source":["s"]}', targets=(*targets, target(id="x"))
        )
    with pytest.raises(ValidationException, match="unique"):
        RuleSpec(bus="b", name="r", event_pattern='{"source":["s"]}', targets=(target(), target()))
    with pytest.raises(InvalidEventPattern):
        RuleSpec(bus="b", name="r", event_pattern='{"source":"s"}')


def test_rules_and_targets_round_trip_through_their_stored_form() -> None:
    rule = RuleSpec(
        bus="b",
        name="r",
        event_pattern='{"source":["s"]}',
        targets=(target(input=TargetInput(input_path="$.detail"), dead_letter="dlq"),),
        enabled=False,
        description="d",
    )
    assert RuleSpec.from_dict(rule.to_dict()) == rule


def test_rule_arns_leave_the_default_bus_out() -> None:
    assert rule_arn("default", "r").endswith(":rule/r")
    assert rule_arn("orders", "r").endswith(":rule/orders/r")


def test_archive_names_and_retention_are_checked() -> None:
    assert ArchiveSpec(name="a", bus="b", retention_days=7).retention_seconds == 7 * 86_400
    assert ArchiveSpec(name="a", bus="b").retention_seconds is None
    with pytest.raises(ValidationException, match="retention_days"):
        ArchiveSpec(name="a", bus="b", retention_days=-1)
    with pytest.raises(ValidationException, match="1-48"):
        ArchiveSpec(name="a" * 49, bus="b")


def test_replay_progress_follows_the_last_replayed_event_time() -> None:
    replay = ReplaySpec(name="r", archive="a", bus="b", start=100.0, end=200.0, state=RUNNING)
    assert replay.progress() == 0.0
    assert replay.moved(last_replayed=150.0).progress() == 0.5
    assert replay.moved(state=COMPLETED).progress() == 1.0
    assert ReplaySpec.from_dict(replay.moved(rules=("x",)).to_dict()).rules == ("x",)


def test_a_replay_window_runs_forward_and_not_into_the_future() -> None:
    check_window(1.0, 2.0, now=3.0)
    with pytest.raises(ValidationException, match="before"):
        check_window(2.0, 2.0, now=3.0)
    with pytest.raises(ValidationException, match="future"):
        check_window(1.0, 4.0, now=3.0)
