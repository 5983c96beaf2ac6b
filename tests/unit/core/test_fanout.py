"""Publish validation of topic fan-out: subjects and FIFO topics' group and deduplication ids."""

from __future__ import annotations

import pytest

from fanstack.core.errors import InvalidParameter, MissingParameter
from fanstack.core.fanout import check_publish
from fanstack.core.specs import TopicSpec

STANDARD = TopicSpec(name="t")
FIFO = TopicSpec(name="t.fifo", fifo=True)


def publish(topic: TopicSpec, **fields: str | None) -> str | None:
    fields.setdefault("subject", None)
    fields.setdefault("group_id", None)
    fields.setdefault("deduplication_id", None)
    dedup_id, size = check_publish(topic, "body", {}, **fields)
    assert size == len("body")
    return dedup_id


@pytest.mark.parametrize("subject", ["Order shipped", "x" * 100, "Tab-free: ok!"])
def test_a_subject_of_printable_text_is_accepted(subject: str) -> None:
    publish(STANDARD, subject=subject)


@pytest.mark.parametrize(
    ("subject", "fragment"),
    [
        ("line\nbreak", "U+000A"),
        ("carriage\rreturn", "U+000D"),
        ("bell\x07", "U+0007"),
        ("delete\x7f", "U+007F"),
        ("separator\u2028", "U+2028"),
        ("lone \udce9 surrogate", "U+DCE9"),
        ("", "1-100"),
        ("x" * 101, "1-100"),
    ],
)
def test_a_subject_with_a_line_break_control_character_or_surrogate_is_rejected(
    subject: str, fragment: str
) -> None:
    with pytest.raises(InvalidParameter, match="Subject") as caught:
        publish(STANDARD, subject=subject)
    assert fragment in str(caught.value)


def test_fifo_topic_ids_may_be_128_characters() -> None:
    longest = "x" * 128
    assert publish(FIFO, group_id=longest, deduplication_id=longest) == longest


@pytest.mark.parametrize("field", ["group_id", "deduplication_id"])
@pytest.mark.parametrize("bad", ["x" * 129, "group 123"])
def test_fifo_topic_ids_over_128_characters_or_with_spaces_are_rejected(
    field: str, bad: str
) -> None:
    ids = {"group_id": "g", "deduplication_id": "d", field: bad}
    with pytest.raises(InvalidParameter, match=field):
        publish(FIFO, **ids)


def test_a_fifo_topic_needs_a_group_id() -> None:
    with pytest.raises(MissingParameter, match="group_id"):
        publish(FIFO, deduplication_id="d")
