"""Frames between the dispatcher and a worker, read from a real pipe."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

import pytest

from fanstack.runtime.protocol import ChannelClosed, ChannelTimeout, FrameReader, encode


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    for fd in (read, write):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_frames_that_arrive_together_or_in_pieces_are_read_one_by_one(
    pipe: tuple[int, int],
) -> None:
    read, write = pipe
    frames = FrameReader(read)
    claim, answer = encode({"claim": {"table": "t"}}), encode({"ok": True, "result": "é" * 50})
    os.write(write, claim + answer)  # two frames in one write
    deadline = time.monotonic() + 5
    assert frames.read(deadline) == {"claim": {"table": "t"}}
    assert frames.read(deadline) == {"ok": True, "result": "é" * 50}
    big = encode({"event": "x" * 200_000})  # more than a pipe holds, and than one read

    def send() -> None:
        os.write(write, big[:3])  # the header split too
        time.sleep(0.01)
        os.write(write, big[3:100])
        os.write(write, big[100:])

    writer = threading.Thread(target=send)
    writer.start()
    assert frames.read(deadline) == {"event": "x" * 200_000}
    writer.join()


def test_a_frame_that_does_not_come_in_time_or_a_closed_pipe_is_said(
    pipe: tuple[int, int],
) -> None:
    read, write = pipe
    frames = FrameReader(read)
    os.write(write, encode({"ok": True})[:6])
    with pytest.raises(ChannelTimeout):
        frames.read(time.monotonic() + 0.05)
    os.close(write)
    with pytest.raises(ChannelClosed):
        frames.read(time.monotonic() + 5)


def test_a_frame_over_the_limit_is_refused_before_it_is_read(pipe: tuple[int, int]) -> None:
    read, write = pipe
    os.write(write, (1 << 31).to_bytes(4, "big"))
    with pytest.raises(ChannelClosed, match="exceeds"):
        FrameReader(read).read(time.monotonic() + 5)
