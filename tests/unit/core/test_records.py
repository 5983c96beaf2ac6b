"""Ids fanstack issues: version 4 UUIDs, written as the `uuid` module writes them."""

from __future__ import annotations

import uuid

from fanstack.core import records


def test_an_id_is_the_text_of_a_version_4_uuid_of_the_same_random_bits() -> None:
    for seed in range(200):
        records._ids.seed(seed)
        made = records.new_id()
        records._ids.seed(seed)
        expected = str(uuid.UUID(int=records._ids.getrandbits(128), version=4))
        assert made == expected
        assert uuid.UUID(made).version == 4 and uuid.UUID(made).variant == uuid.RFC_4122
    records._ids.seed()


def test_ids_do_not_repeat() -> None:
    assert len({records.new_message_id() for _ in range(10_000)}) == 10_000
