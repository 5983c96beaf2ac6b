"""The event bus on every backend: put_events, rules, targets, inputs, retries, DLQ, limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fanstack.backends.base import Backend
from fanstack.bus import Bus, Target
from fanstack.bus.catalog import Catalog
from fanstack.bus.delivery import retry_queue
from fanstack.bus.router import Retrier, Router
from fanstack.core.errors import (
    InvalidEventPattern,
    LimitExceeded,
    ResourceNotFound,
    ValidationException,
)
from fanstack.core.events import ingress_queue
from fanstack.core.message import ReceivedMessage
from fanstack.core.rules import MAX_RULES_PER_BUS
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec
from fanstack.core.target_input import InputTransformer
from fanstack.resources import Queue, Topic

from .conftest import Clock, queue

ORDER = {"source": "shop", "detail_type": "OrderPlaced", "detail": {"total": 42, "id": "o1"}}


def make_bus(backend: Backend, name: str = "orders") -> Bus:
    bus = Bus(name, lambda: backend)
    bus.provision(backend)
    return bus


def handle(backend: Backend, name: str, **attributes: Any) -> Queue:
    return Queue(queue(backend, name, **attributes), lambda: backend)


def route(backend: Backend, bus: str = "orders") -> None:
    """Route everything in the bus's ingress queue, as a worker's router does."""
    router, catalog = Router(bus), Catalog(backend)
    while batch := backend.receive(ingress_queue(bus), max_messages=10, wait_seconds=0):
        router.route(backend, catalog, batch)


def retry(backend: Backend, bus: str = "orders", retrier: Retrier | None = None) -> int:
    """Attempt every due delivery of the bus's retry queue once; how many were attempted."""
    retrier = retrier or Retrier(bus)
    attempted = 0
    while batch := backend.receive(retry_queue(bus), max_messages=10, wait_seconds=0):
        for message in batch:
            retrier.attempt(backend, message)
            attempted += 1
    return attempted


def drain(backend: Backend, name: str) -> list[ReceivedMessage]:
    found: list[ReceivedMessage] = []
    while batch := backend.receive(name, max_messages=10, wait_seconds=0):
        found.extend(batch)
        backend.delete_messages(name, [m.receipt_handle for m in batch])
    return found


def bodies(backend: Backend, name: str) -> list[Any]:
    return [json.loads(m.body) for m in drain(backend, name)]


# -- put_events ---------------------------------------------------------------------------


def test_put_events_stores_events_and_routes_them_in_the_eventbridge_envelope(
    backend: Backend,
) -> None:
    bus = make_bus(backend)
    handle(backend, "ordering")
    bus.rule("all-orders", event_pattern={"source": ["shop"]}, targets=[backend_queue(backend)])
    result = bus.put_events([ORDER])
    assert result.failed_entry_count == 0
    [entry] = result.entries
    route(backend)
    [event] = bodies(backend, "ordering")
    assert event["id"] == entry.event_id
    assert event["version"] == "0"
    assert event["detail-type"] == "OrderPlaced"
    assert event["source"] == "shop"
    assert event["account"] == "000000000000"
    assert event["resources"] == []
    assert event["detail"] == {"total": 42, "id": "o1"}
    assert event["time"].endswith("Z") and "region" in event


def backend_queue(backend: Backend, name: str = "ordering") -> Queue:
    return Queue(backend.get_queue(name), lambda: backend)


def test_a_bad_entry_fails_alone_with_eventbridge_codes(backend: Backend) -> None:
    bus = make_bus(backend)
    result = bus.put_events(
        [
            ORDER,
            {"detail_type": "X", "detail": {}},
            {"source": "s", "detail_type": "X", "detail": "{not json"},
            {"source": "aws.ec2", "detail_type": "X", "detail": {}},
            {"source": "s", "detail_type": "X", "detail": "[1, 2]"},
        ]
    )
    codes = [(e.event_id is not None, e.error_code) for e in result.entries]
    assert codes == [
        (True, None),
        (False, "InvalidArgument"),
        (False, "MalformedDetail"),
        (False, "NotAuthorizedForSourceException"),
        (False, "MalformedDetail"),
    ]
    assert result.failed_entry_count == 4
    assert "Source is a required argument" in (result.entries[1].error_message or "")
    assert backend.stats(ingress_queue("orders")).visible == 1


@pytest.mark.parametrize("count", [0, 11])
def test_put_events_takes_one_to_ten_entries(backend: Backend, count: int) -> None:
    bus = make_bus(backend)
    with pytest.raises(ValidationException, match="1-10 entries"):
        bus.put_events([ORDER] * count)
    assert backend.stats(ingress_queue("orders")).visible == 0


def test_put_events_over_256_kib_in_total_fails_whole(backend: Backend) -> None:
    bus = make_bus(backend)
    big = {"source": "s", "detail_type": "X", "detail": {"pad": "x" * 100_000}}
    with pytest.raises(ValidationException, match="over the limit"):
        bus.put_events([big, big, big])
    assert backend.stats(ingress_queue("orders")).visible == 0
    assert bus.put_events([big, big]).failed_entry_count == 0


# -- rules and targets ---------------------------------------------------------------------


def test_each_event_reaches_the_targets_of_every_matching_rule_only(backend: Backend) -> None:
    bus = make_bus(backend)
    for name in ("big", "small", "all"):
        handle(backend, name)
    bus.rule(
        "big",
        event_pattern={"detail": {"total": [{"numeric": [">=", 100]}]}},
        targets=[backend_queue(backend, "big")],
    )
    bus.rule(
        "small",
        event_pattern={"detail": {"total": [{"numeric": ["<", 100]}]}},
        targets=[backend_queue(backend, "small")],
    )
    bus.rule("all", event_pattern={"source": ["shop"]}, targets=[backend_queue(backend, "all")])
    bus.put_events([{**ORDER, "detail": {"total": t}} for t in (5, 150, 99, 100)])
    route(backend)
    assert sorted(e["detail"]["total"] for e in bodies(backend, "big")) == [100, 150]
    assert sorted(e["detail"]["total"] for e in bodies(backend, "small")) == [5, 99]
    assert len(bodies(backend, "all")) == 4


def test_topic_function_and_bus_targets(backend: Backend) -> None:
    bus = make_bus(backend)
    audit = make_bus(backend, "audit")
    handle(backend, "audited")
    audited = backend_queue(backend, "audited")
    audit.rule("keep", event_pattern={"source": ["shop"]}, targets=[audited])
    backend.create_topic(TopicSpec(name="orders-topic"))
    handle(backend, "from-topic")
    backend.subscribe(SubscriptionSpec(topic="orders-topic", queue="from-topic", raw=True))
    handle(backend, "fanstack-async-billing")
    function = _function_named("billing")
    bus.rule(
        "fan",
        event_pattern={"detail-type": ["OrderPlaced"]},
        targets=[Topic(backend.get_topic("orders-topic"), lambda: backend, None), function, audit],
    )
    event_id = bus.put_event("shop", "OrderPlaced", {"id": "o1"})
    route(backend)
    route(backend, "audit")
    assert [e["id"] for e in bodies(backend, "from-topic")] == [event_id]
    [invocation] = bodies(backend, "fanstack-async-billing")
    assert invocation["payload"]["id"] == event_id
    assert [e["id"] for e in bodies(backend, "audited")] == [event_id]


def _function_named(name: str) -> Any:
    from fanstack.core.functions import FunctionSpec
    from fanstack.runtime.functions import Function

    class _NoInvoker:
        def run(self, *args: Any) -> Any:
            raise AssertionError("not invoked here")

        def enqueue(self, *args: Any) -> None:
            raise AssertionError("not invoked here")

    return Function(lambda e, c: None, FunctionSpec(name=name), invoker=_NoInvoker())


def test_disabled_rules_route_nothing_and_changes_reach_every_process(backend: Backend) -> None:
    bus = make_bus(backend)
    handle(backend, "ordering")
    rule = bus.rule("r", event_pattern={"source": ["shop"]}, targets=[backend_queue(backend)])
    other_process = Bus("orders", lambda: backend)
    rule.disable()
    assert not other_process.describe_rule("r").enabled
    bus.put_events([ORDER])
    route(backend)
    assert bodies(backend, "ordering") == []
    rule.enable()
    rule.update(event_pattern={"source": ["other"]})
    bus.put_events([ORDER, {**ORDER, "source": "other"}])
    route(backend)
    assert [e["source"] for e in bodies(backend, "ordering")] == ["other"]
    rule.delete()
    with pytest.raises(ResourceNotFound):
        other_process.describe_rule("r")
    bus.put_events([{**ORDER, "source": "other"}])
    route(backend)
    assert bodies(backend, "ordering") == []


def test_a_process_starting_with_the_same_code_keeps_runtime_changes(backend: Backend) -> None:
    bus = make_bus(backend)
    handle(backend, "ordering")
    rule = bus.rule("r", event_pattern={"source": ["shop"]}, targets=[backend_queue(backend)])
    rule.disable()
    version = Catalog(backend).bus_version("orders")
    restarted = Bus("orders", lambda: backend)
    restarted.rule("r", event_pattern={"source": ["shop"]}, targets=[backend_queue(backend)])
    restarted.provision(backend)
    assert not restarted.describe_rule("r").enabled
    assert Catalog(backend).bus_version("orders") == version  # nothing for routers to reload
    new_code = Bus("orders", lambda: backend)
    new_code.rule("r", event_pattern={"source": ["other"]}, targets=[backend_queue(backend)])
    new_code.provision(backend)
    assert new_code.describe_rule("r").event_pattern == '{"source":["other"]}'


def test_an_invalid_pattern_is_rejected_when_declared(backend: Backend) -> None:
    bus = make_bus(backend)
    with pytest.raises(InvalidEventPattern, match="source"):
        bus.rule("bad", event_pattern={"source": "shop"})
    assert bus.rules() == []


def test_rule_and_bus_limits(backend: Backend) -> None:
    bus = make_bus(backend)
    queues = [handle(backend, f"q{i}") for i in range(6)]
    with pytest.raises(LimitExceeded, match="5 targets per rule"):
        bus.rule("many", event_pattern={"source": ["s"]}, targets=queues)
    for i in range(MAX_RULES_PER_BUS):
        bus.rule(f"r{i}", event_pattern={"source": [f"s{i}"]})
    with pytest.raises(LimitExceeded, match="300 rules per bus"):
        bus.rule("one-too-many", event_pattern={"source": ["s"]})


# -- inputs ---------------------------------------------------------------------------------


def test_constant_path_and_transformer_inputs(backend: Backend) -> None:
    bus = make_bus(backend)
    for name in ("constant", "path", "transformed"):
        handle(backend, name)
    bus.rule(
        "inputs",
        event_pattern={"source": ["shop"]},
        targets=[
            Target(backend_queue(backend, "constant"), input={"fixed": True}),
            Target(backend_queue(backend, "path"), input_path="$.detail"),
            Target(
                backend_queue(backend, "transformed"),
                input_transformer=InputTransformer(
                    input_paths={"total": "$.detail.total", "id": "$.detail.id"},
                    input_template=(
                        '{"order": <id>, "amount": <total>, "rule": <aws.events.rule-name>}'
                    ),
                ),
            ),
        ],
    )
    bus.put_events([ORDER])
    route(backend)
    assert bodies(backend, "constant") == [{"fixed": True}]
    assert bodies(backend, "path") == [{"total": 42, "id": "o1"}]
    assert bodies(backend, "transformed") == [{"order": "o1", "amount": 42, "rule": "inputs"}]


def test_a_transformer_that_renders_invalid_json_dead_letters_without_retries(
    backend: Backend,
) -> None:
    bus = make_bus(backend)
    handle(backend, "target")
    handle(backend, "dlq")
    bus.rule(
        "broken",
        event_pattern={"source": ["shop"]},
        targets=[
            Target(
                backend_queue(backend, "target"),
                input_transformer={
                    "input_paths": {"id": "$.detail.id"},
                    "input_template": '{"id": <id>, "oops": }',
                },
                dead_letter="dlq",
            )
        ],
    )
    bus.put_events([ORDER])
    route(backend)
    assert drain(backend, "target") == []
    [dead] = drain(backend, "dlq")
    assert dead.message_attributes["ERROR_CODE"].string_value == "INVALID_JSON"
    assert backend.stats(retry_queue("orders")).visible == 0


# -- failures, retries and the target DLQ ---------------------------------------------------


def test_a_missing_target_dead_letters_at_once_with_eventbridge_attributes(
    backend: Backend,
) -> None:
    bus = make_bus(backend)
    handle(backend, "gone")
    handle(backend, "dlq")
    bus.rule(
        "r",
        event_pattern={"source": ["shop"]},
        targets=[Target(backend_queue(backend, "gone"), id="t1", dead_letter="dlq")],
    )
    backend.delete_queue("gone")
    event_id = bus.put_event("shop", "OrderPlaced", {"id": "o1"})
    route(backend)
    [dead] = drain(backend, "dlq")
    attributes = {k: v.string_value for k, v in dead.message_attributes.items()}
    assert json.loads(dead.body)["id"] == event_id
    assert attributes["ERROR_CODE"] == "NO_RESOURCE"
    assert attributes["RULE_ARN"].endswith(":rule/orders/r")
    assert attributes["TARGET_ARN"].endswith(":gone")
    assert attributes["RETRY_ATTEMPTS"] == "0"
    assert "EXHAUSTED_RETRY_CONDITION" not in attributes
    assert "ERROR_MESSAGE" in attributes


def test_a_fifo_dead_letter_queue_is_refused(backend: Backend) -> None:
    bus = make_bus(backend)
    handle(backend, "target")
    dlq = handle(backend, "dlq.fifo", fifo=True)
    with pytest.raises(ValidationException, match="standard queues only"):
        bus.rule(
            "r",
            event_pattern={"source": ["shop"]},
            targets=[Target(backend_queue(backend, "target"), dead_letter=dlq)],
        )


def test_fifo_queue_targets_take_a_group_id_and_deduplicate_by_event_id(
    backend: Backend,
) -> None:
    bus = make_bus(backend)
    target = handle(backend, "ordered.fifo", fifo=True)
    with pytest.raises(ValidationException, match="message_group_id"):
        bus.rule("r", event_pattern={"source": ["shop"]}, targets=[target])
    bus.rule(
        "r",
        event_pattern={"source": ["shop"]},
        targets=[Target(target, message_group_id="orders")],
    )
    bus.put_events([ORDER])
    route(backend)
    [message] = drain(backend, "ordered.fifo")
    assert message.group_id == "orders"
    assert message.deduplication_id == json.loads(message.body)["id"]


def test_a_target_that_keeps_failing_is_retried_then_dead_lettered(
    backend: Backend, clock: Clock, failing_endpoint: Any
) -> None:
    bus = make_bus(backend)
    handle(backend, "dlq")
    bus.rule(
        "hook",
        event_pattern={"source": ["shop"]},
        targets=[
            Target(failing_endpoint.destination, maximum_retry_attempts=2, dead_letter="dlq")
        ],
    )
    bus.put_events([ORDER])
    route(backend)
    attempts = 0
    for _ in range(10):
        attempts += retry(backend)
        clock.advance(301)
    assert attempts == 3 == len(failing_endpoint.requests)  # the first try and 2 retries
    [dead] = drain(backend, "dlq")
    attributes = {k: v.string_value for k, v in dead.message_attributes.items()}
    assert attributes["ERROR_CODE"] == "ERROR_FROM_TARGET"
    assert attributes["RETRY_ATTEMPTS"] == "2"
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"


def test_an_event_older_than_the_maximum_age_is_dead_lettered(
    backend: Backend, clock: Clock, failing_endpoint: Any
) -> None:
    bus = make_bus(backend)
    handle(backend, "dlq")
    bus.rule(
        "hook",
        event_pattern={"source": ["shop"]},
        targets=[Target(failing_endpoint.destination, maximum_event_age=60, dead_letter="dlq")],
    )
    bus.put_events([ORDER])
    route(backend)
    retry(backend)
    clock.advance(400)
    retry(backend)
    [dead] = drain(backend, "dlq")
    attributes = {k: v.string_value for k, v in dead.message_attributes.items()}
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumEventAgeInSeconds"
    assert len(failing_endpoint.requests) == 1


def test_an_http_target_gets_the_event(backend: Backend, accepting_endpoint: Any) -> None:
    bus = make_bus(backend)
    bus.rule(
        "hook",
        event_pattern={"source": ["shop"]},
        targets=[Target(accepting_endpoint.destination, input_path="$.detail")],
    )
    bus.put_events([ORDER])
    route(backend)
    assert retry(backend) == 1
    assert [json.loads(body) for body in accepting_endpoint.requests] == [ORDER["detail"]]
    assert backend.stats(retry_queue("orders")).visible == 0


def test_internal_queues_are_created_for_each_bus(backend: Backend) -> None:
    make_bus(backend)
    names = {spec.name for spec in backend.list_queues()}
    assert {ingress_queue("orders"), retry_queue("orders")} <= names
    assert isinstance(backend.get_queue(ingress_queue("orders")), QueueSpec)
