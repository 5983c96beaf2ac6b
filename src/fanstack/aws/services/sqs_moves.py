"""SQS message move tasks: a dead-letter queue's messages moved back, in the background.

Without a destination, each message goes back to the queue it was dead-lettered from (the
store's redrive, atomic per message); with one, messages are received from the DLQ, sent to
the destination and then deleted (at least once, as SQS's own tasks). A task's progress is
kept in a table, so every process lists the same tasks; one task at a time per source.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.backends.base import Backend
from fanstack.core.errors import FanstackError, InvalidParameterValue, ResourceNotFound
from fanstack.core.message import OutgoingMessage, with_trace_context
from fanstack.core.records import new_message_id

MOVES_TABLE = "fanstack-aws-message-moves"
RUNNING, COMPLETED, CANCELLING, CANCELLED, FAILED = (
    "RUNNING",
    "COMPLETED",
    "CANCELLING",
    "CANCELLED",
    "FAILED",
)
BATCH = 10


class MessageMoves:
    """The move tasks of one store."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def start(
        self, call: CallContext, source: str, destination: str | None, rate: int | None
    ) -> str:
        """Start moving `source`'s messages; returns the task handle."""
        self.backend.get_queue(source)
        if destination is not None:
            self.backend.get_queue(destination)
        sources = [s.name for s in self.backend.list_queues() if s.dead_letter == source]
        if destination is None and not sources:
            raise InvalidParameterValue(
                f"Source queue {source} is not the dead-letter queue of any queue; name a "
                "DestinationArn"
            )
        if rate is not None and not 1 <= rate <= 500:
            raise InvalidParameterValue(
                f"MaxNumberOfMessagesPerSecond is {rate}; it must be between 1 and 500"
            )
        for existing in self._tasks(source):
            if existing["Status"] in (RUNNING, CANCELLING):
                raise InvalidParameterValue(
                    f"There is already a task running for the source queue {source}"
                )
        handle = f"{uuid.uuid4()}:{source}"
        stats = self.backend.stats(source)
        task: dict[str, Any] = {
            "TaskHandle": handle,
            "Status": RUNNING,
            "SourceArn": call.arn("sqs", source),
            "ApproximateNumberOfMessagesMoved": 0,
            "ApproximateNumberOfMessagesToMove": stats.visible,
            "StartedTimestamp": int(time.time() * 1000),
        }
        if destination is not None:
            task["DestinationArn"] = call.arn("sqs", destination)
        if rate is not None:
            task["MaxNumberOfMessagesPerSecond"] = rate
        self._save(task)
        worker = threading.Thread(
            target=self._run,
            args=(handle, source, destination, sources, rate),
            name=f"move-{source}",
            daemon=True,
        )
        worker.start()
        return handle

    def cancel(self, handle: str) -> int:
        """Ask a running task to stop; returns how many it had moved."""
        item = self.backend.table_get(MOVES_TABLE, handle)
        if item is None or item.value["Status"] not in (RUNNING, CANCELLING):
            raise ResourceNotFound(f"Task {handle} does not exist or is not running")
        task = dict(item.value)
        task["Status"] = CANCELLING
        self._save(task)
        return int(task["ApproximateNumberOfMessagesMoved"])

    def recent(self, source: str, limit: int) -> list[dict[str, Any]]:
        """The most recent tasks of `source`, newest first (a handle only while running)."""
        self.backend.get_queue(source)
        tasks = sorted(self._tasks(source), key=lambda t: t["StartedTimestamp"], reverse=True)
        return [
            {k: v for k, v in task.items() if k != "TaskHandle" or task["Status"] == RUNNING}
            for task in tasks[:limit]
        ]

    # -- the task itself -------------------------------------------------------------------

    def _run(
        self,
        handle: str,
        source: str,
        destination: str | None,
        sources: list[str],
        rate: int | None,
    ) -> None:
        moved = 0
        status = COMPLETED
        failure: str | None = None
        try:
            while not self._cancelled(handle):
                started = time.monotonic()
                count = (
                    self._redrive_some(sources, rate or 100)
                    if destination is None
                    else self._move_some(source, destination)
                )
                moved += count
                self._progress(handle, moved)
                if count == 0:
                    break
                if rate is not None:
                    time.sleep(max(0.0, count / rate - (time.monotonic() - started)))
            else:
                status = CANCELLED
        except FanstackError as error:
            status, failure = FAILED, str(error)
        self._finish(handle, moved, status, failure)

    def _redrive_some(self, sources: list[str], limit: int) -> int:
        return sum(
            self.backend.move_dead_letters(self.backend.get_queue(name), limit) for name in sources
        )

    def _move_some(self, source: str, destination: str) -> int:
        messages = self.backend.receive(source, max_messages=BATCH, wait_seconds=0)
        if not messages:
            return 0
        outgoing = []
        for message in messages:
            attributes: Mapping[str, Any] = message.message_attributes
            if message.trace_context is not None:
                attributes = with_trace_context(attributes, message.trace_context)
            outgoing.append(
                OutgoingMessage(
                    id=new_message_id(),
                    body=message.body,
                    attributes=attributes,
                    group_id=message.group_id,
                    deduplication_id=message.deduplication_id,
                )
            )
        for result in self.backend.send(destination, outgoing):
            if isinstance(result, FanstackError):
                raise result
        self.backend.delete_messages(source, [m.receipt_handle for m in messages])
        return len(messages)

    # -- the stored record -----------------------------------------------------------------

    def _tasks(self, source: str) -> list[dict[str, Any]]:
        return [
            dict(item.value)
            for item in self.backend.table_items(MOVES_TABLE)
            if item.key.endswith(f":{source}")
        ]

    def _save(self, task: Mapping[str, Any]) -> None:
        self.backend.table_put(MOVES_TABLE, str(task["TaskHandle"]), dict(task))

    def _cancelled(self, handle: str) -> bool:
        item = self.backend.table_get(MOVES_TABLE, handle)
        return item is not None and item.value["Status"] == CANCELLING

    def _progress(self, handle: str, moved: int) -> None:
        item = self.backend.table_get(MOVES_TABLE, handle)
        if item is not None:
            self._save({**item.value, "ApproximateNumberOfMessagesMoved": moved})

    def _finish(self, handle: str, moved: int, status: str, failure: str | None) -> None:
        item = self.backend.table_get(MOVES_TABLE, handle)
        if item is None:
            return
        task = {**item.value, "ApproximateNumberOfMessagesMoved": moved, "Status": status}
        if failure is not None:
            task["FailureReason"] = failure
        self._save(task)
