"""docs/aws.md's table of answered operations is the one the code makes."""

from __future__ import annotations

from pathlib import Path

from fanstack.aws.supported import BEGIN, END, section

PAGE = Path(__file__).resolve().parents[2] / "docs" / "aws.md"


def test_the_page_lists_exactly_the_operations_the_endpoint_answers() -> None:
    text = PAGE.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == section(), (
        "docs/aws.md is out of date: replace its table with `python -m fanstack.aws.supported`"
    )
