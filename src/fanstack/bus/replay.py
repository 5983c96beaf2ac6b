"""Replays: re-sending an archive's events of a time window to its bus (a worker service).

`start_replay` stores the replay's record (STARTING) and a job message in the `fanstack-replays`
queue. A `Replayer` leases the job, re-sends the archived events in event-time order, 10 at a
time, each with `replay-name` set (so no archive keeps it again) and, when the
replay names rules, only to those rules; after every 10 events it records its progress with a
conditional write, which is also how it learns that the replay was cancelled. A replayer that
dies leaves the job to reappear; the next one resumes after the last recorded event.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from fanstack.backends.base import Backend
from fanstack.bus.catalog import Catalog
from fanstack.bus.router import RULES_ATTRIBUTE
from fanstack.core.archives import (
    CANCELLED,
    CANCELLING,
    COMPLETED,
    FAILED,
    RUNNING,
    STARTING,
    ReplaySpec,
    check_window,
    time_key,
)
from fanstack.core.errors import (
    ConditionalCheckFailed,
    FanstackError,
    ResourceAlreadyExists,
    ValidationException,
)
from fanstack.core.events import REPLAY_NAME, ingress_queue, parse_time
from fanstack.core.message import MessageAttribute, OutgoingMessage
from fanstack.core.queue_rules import MAX_RECEIVE_BATCH

log = logging.getLogger("fanstack.bus")

REPLAY_QUEUE = "fanstack-replays"
JOB_VISIBILITY = 60
POLL_WAIT = 1.0


def start_replay(
    backend: Backend,
    name: str,
    archive: str,
    start: float,
    end: float,
    rules: Sequence[str] | None = None,
) -> ReplaySpec:
    """Record a replay and queue its job; ResourceAlreadyExists if the name is taken."""
    catalog = Catalog(backend)
    spec = catalog.archive(archive)
    check_window(start, end, backend.clock())
    if rules is not None:
        known = {rule.name for rule in catalog.rules(spec.bus)}
        missing = sorted(set(rules) - known)
        if missing:
            raise ValidationException(f"replay {name!r}: bus {spec.bus!r} has no rules {missing}")
    replay = ReplaySpec(
        name=name,
        archive=archive,
        bus=spec.bus,
        start=start,
        end=end,
        rules=tuple(rules) if rules is not None else None,
    )
    try:
        catalog.put_replay(replay)
    except ConditionalCheckFailed:
        raise ResourceAlreadyExists(f"Replay {name} already exists.") from None
    job = OutgoingMessage(id=str(uuid.uuid4()), body=name)
    [result] = backend.send(REPLAY_QUEUE, [job])
    if isinstance(result, FanstackError):
        raise result
    return replay


def cancel_replay(backend: Backend, name: str) -> ReplaySpec:
    """Ask a replay to stop (CANCELLING until its replayer stops, then CANCELLED)."""
    catalog = Catalog(backend)
    while True:
        replay, version = catalog.replay_item(name)
        if replay.done:
            raise ValidationException(f"Replay {name} is {replay.state} and cannot be cancelled.")
        state = CANCELLED if replay.state == STARTING else CANCELLING
        changes = {"state": state, "ended_at": backend.clock() if state == CANCELLED else None}
        try:
            catalog.put_replay(replay.moved(**changes), if_version=version)
        except ConditionalCheckFailed:
            continue  # the replayer recorded progress meanwhile; look again
        return replay.moved(**changes)


class Replayer:
    """Runs replays (a worker service; one job at a time per process)."""

    name = "bus-replayer"

    def run(self, backend: Backend, stopping: threading.Event) -> None:
        """Lease replay jobs and run them until stopped."""
        while not stopping.is_set():
            for job in backend.receive(
                REPLAY_QUEUE, max_messages=1, wait_seconds=POLL_WAIT,
                visibility_timeout=JOB_VISIBILITY,
            ):
                if self.replay(backend, job.body, job.receipt_handle, stopping):
                    backend.delete_messages(REPLAY_QUEUE, [job.receipt_handle])

    def replay(self, backend: Backend, name: str, handle: str, stopping: threading.Event) -> bool:
        """Run one replay; True when it reached a final state (its job is done)."""
        catalog = Catalog(backend)
        replay, version = catalog.replay_item(name)
        if replay.done:
            return True
        if replay.state == CANCELLING:
            catalog.put_replay(
                replay.moved(state=CANCELLED, ended_at=backend.clock()), if_version=version
            )
            return True
        if replay.state == STARTING:
            replay = replay.moved(state=RUNNING, started_at=backend.clock())
            version = catalog.put_replay(replay, if_version=version).version
        try:
            for chunk in _chunks(catalog, replay):
                if stopping.is_set():
                    return False  # the job reappears; a replayer resumes after the last chunk
                self._send(backend, replay, [event for _, event in chunk])
                last_key, last_event = chunk[-1]
                replay = replay.moved(
                    replayed=replay.replayed + len(chunk),
                    last_replayed=parse_time(last_event["time"]),
                    resume_after=last_key,
                )
                version = catalog.put_replay(replay, if_version=version).version
                backend.set_visibility(REPLAY_QUEUE, [(handle, JOB_VISIBILITY)])
        except ConditionalCheckFailed:
            current, version = catalog.replay_item(name)
            if current.state == CANCELLING:
                final = current.moved(state=CANCELLED, ended_at=backend.clock())
                catalog.put_replay(final, if_version=version)
                return True
            raise
        except FanstackError as error:
            log.exception("replay failed", extra={"replay": name})
            current, version = catalog.replay_item(name)
            catalog.put_replay(
                current.moved(state=FAILED, reason=str(error), ended_at=backend.clock()),
                if_version=version,
            )
            return True
        final = replay.moved(state=COMPLETED, ended_at=backend.clock())
        catalog.put_replay(final, if_version=version)
        return True

    def _send(self, backend: Backend, replay: ReplaySpec, events: list[dict[str, Any]]) -> None:
        attributes = {}
        if replay.rules is not None:
            attributes[RULES_ATTRIBUTE] = MessageAttribute("String", json.dumps(replay.rules))
        messages = [
            OutgoingMessage(
                id=str(uuid.uuid4()),
                body=json.dumps(
                    {**event, REPLAY_NAME: replay.name}, ensure_ascii=False, separators=(",", ":")
                ),
                attributes=attributes,
            )
            for event in events
        ]
        for result in backend.send(ingress_queue(replay.bus), messages):
            if isinstance(result, FanstackError):
                raise result


def _chunks(catalog: Catalog, replay: ReplaySpec) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The events still to replay, in event-time order, 10 at a time.

    Event times are whole seconds; the window takes those from `start` to `end`, both included.
    """
    after = replay.resume_after or time_key(math.ceil(replay.start))
    until = time_key(math.floor(replay.end) + 1)
    chunk: list[tuple[str, dict[str, Any]]] = []
    for key, event in catalog.archived(replay.archive, after, until):
        chunk.append((key, event))
        if len(chunk) == MAX_RECEIVE_BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
