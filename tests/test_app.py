"""The public API: declaration, lazy provisioning, batches and their limits, errors by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fanstack
from fanstack import (
    App,
    BatchEntryIdsNotDistinct,
    BatchRequestTooLong,
    EmptyBatchRequest,
    FanstackError,
    InvalidFilterPolicy,
    InvalidParameterValue,
    TooManyEntriesInBatchRequest,
    TopicDoesNotExist,
)


@pytest.fixture
def app(tmp_path: Path) -> App:
    return App("test", data_dir=tmp_path / "state")


def test_data_dir_defaults_to_dot_fanstack_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = App("cwd")
    app.queue("q").send("x")
    assert (tmp_path / ".fanstack" / "fanstack.db").exists()
    app.close()


def test_declaring_opens_nothing_until_first_use(tmp_path: Path) -> None:
    app = App("lazy", data_dir=tmp_path / "state")
    app.topic("t").subscribe(app.queue("q"), raw=True)
    assert not (tmp_path / "state").exists()
    app.configure(data_dir=tmp_path / "elsewhere")
    app.topics["t"].publish("hi")
    assert [m.body for m in app.queues["q"].receive()] == ["hi"]
    assert (tmp_path / "elsewhere" / "fanstack.db").exists()
    with pytest.raises(InvalidParameterValue, match="already bound"):
        app.configure(data_dir=tmp_path / "late")


def test_resources_declared_after_first_use_are_created(app: App) -> None:
    first = app.queue("first")
    first.send("x")
    late = app.queue("late")
    topic = app.topic("t")
    topic.subscribe(late, raw=True)
    topic.publish("y")
    assert [m.body for m in late.receive()] == ["y"]


def test_an_invalid_filter_policy_fails_where_it_is_declared(app: App) -> None:
    topic = app.topic("t")
    queue = app.queue("q")
    with pytest.raises(InvalidFilterPolicy):
        topic.subscribe(queue, filter_policy={"k": "not-a-list"})


def test_plain_attribute_values_reach_the_queue_typed(app: App) -> None:
    topic = app.topic("t")
    queue = app.queue("q")
    topic.subscribe(queue, raw=True)
    topic.publish(
        {"order": 1}, attributes={"market": "ru", "qty": 3, "tags": ["a"], "sig": b"\x01"}
    )
    (message,) = queue.receive()
    assert json.loads(message.body) == {"order": 1}
    assert message.attributes == {"market": "ru", "qty": 3, "tags": ["a"], "sig": b"\x01"}
    types = {name: a.data_type for name, a in message.message_attributes.items()}
    assert types == {"market": "String", "qty": "Number", "tags": "String.Array", "sig": "Binary"}


def test_send_batch_reports_each_entry_by_id(app: App) -> None:
    queue = app.queue("q", max_message_size=1024)
    result = queue.send_batch(
        [
            {"id": "a", "body": "ok"},
            {"id": "b", "body": "x" * 2000},
            {"id": "c", "body": "fine", "attributes": {"bad name": "v"}},
            {"id": "d", "body": "also ok", "delay": 0},
        ]
    )
    assert [s.id for s in result.successful] == ["a", "d"]
    assert {f.id: f.code for f in result.failed} == {
        "b": "InvalidParameterValue",
        "c": "InvalidAttributeName",
    }
    assert all(f.sender_fault for f in result.failed)
    assert sorted(m.body for m in queue.receive(max_messages=10)) == ["also ok", "ok"]


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ([], EmptyBatchRequest),
        ([{"id": str(i), "body": "x"} for i in range(11)], TooManyEntriesInBatchRequest),
        ([{"id": "same", "body": "x"}, {"id": "same", "body": "y"}], BatchEntryIdsNotDistinct),
        (
            [{"id": "a", "body": "x" * 600_000}, {"id": "b", "body": "y" * 500_000}],
            BatchRequestTooLong,
        ),
        ([{"id": "not ok!", "body": "x"}], InvalidParameterValue),
    ],
)
def test_malformed_batches_are_rejected_whole_and_store_nothing(
    app: App, entries: list[dict[str, str]], error: type[FanstackError]
) -> None:
    queue = app.queue("q")
    topic = app.topic("t")
    topic.subscribe(queue, raw=True)
    with pytest.raises(error):
        queue.send_batch(entries)
    with pytest.raises(error):
        topic.publish_batch(entries)
    assert queue.stats().visible == 0


def test_delete_and_change_visibility_batches(app: App) -> None:
    queue = app.queue("q")
    for n in range(3):
        queue.send(f"m{n}")
    messages = queue.receive(max_messages=10)
    changed = queue.change_visibility_batch(
        [{"id": "x", "receipt_handle": messages[0].receipt_handle, "visibility_timeout": 0}]
    )
    assert changed.ok
    deleted = queue.delete_batch(
        [
            {"id": "a", "receipt_handle": messages[1].receipt_handle},
            {"id": "b", "receipt_handle": "junk"},
        ]
    )
    assert [s.id for s in deleted.successful] == ["a"]
    assert [(f.id, f.code) for f in deleted.failed] == [("b", "ReceiptHandleIsInvalid")]
    assert queue.stats().visible == 1


def test_dead_letter_needs_max_receive_count_and_matching_type(app: App) -> None:
    dlq = app.queue("dlq")
    with pytest.raises(InvalidParameterValue, match="max_receive_count"):
        app.queue("q", dead_letter=dlq)
    with pytest.raises(InvalidParameterValue, match="FIFO"):
        app.queue("q.fifo", fifo=True, dead_letter=dlq, max_receive_count=3)


def test_redeclaring_a_queue_updates_its_attributes(tmp_path: Path) -> None:
    App("v1", data_dir=tmp_path).queue("q", visibility_timeout=10).send("x")
    app = App("v2", data_dir=tmp_path)
    queue = app.queue("q", visibility_timeout=60)
    assert app.backend.get_queue("q").visibility_timeout == 60
    assert queue.stats().visible == 1


def test_every_error_is_a_fanstack_error_with_a_code() -> None:
    for name in fanstack.__all__:
        value = getattr(fanstack, name)
        if isinstance(value, type) and issubclass(value, Exception):
            if issubclass(value, fanstack.FanstackSignal):
                # Control-flow signals stay outside the error family on purpose.
                assert not issubclass(value, FanstackError)
                continue
            assert issubclass(value, FanstackError)
            assert value.code


def test_a_topic_can_be_unsubscribed_and_deleted_and_stays_so_on_reopen(tmp_path: Path) -> None:
    app = App("shop", data_dir=tmp_path)
    orders = app.topic("orders")
    kept, dropped = app.queue("kept"), app.queue("dropped")
    orders.subscribe(kept, raw=True)
    orders.subscribe(dropped, raw=True)
    orders.unsubscribe(dropped)
    orders.publish("one")
    assert [m.body for m in kept.receive()] == ["one"]
    assert dropped.receive() == []
    orders.delete()
    with pytest.raises(TopicDoesNotExist):
        orders.publish("two")
    app.close()
    app.backend  # noqa: B018 - reopening provisions what is still declared
    assert [t.name for t in app.backend.list_topics()] == []
    app.close()
