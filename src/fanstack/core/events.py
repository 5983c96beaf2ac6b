"""PutEvents entries and the EventBridge event envelope, with AWS's limits, pure.

An entry (`source`, `detail_type`, `detail`, `resources`, `time`) becomes the envelope every
target sees: `version`, `id`, `detail-type`, `source`, `account`, `time`, `region`, `resources`,
`detail`. A request holds 1-10 entries of at most 256 KiB together, counted as AWS counts them
(the UTF-8 bytes of source, detail type, detail and each resource, plus 14 with a time); a bad
entry fails alone, with PutEvents' per-entry `error_code` and `error_message`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fanstack.core.arns import arn_scope
from fanstack.core.errors import FanstackError, ValidationException

MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1024
MAX_DETAIL_TYPE_LENGTH = 128
MAX_SOURCE_LENGTH = 256
TIME_BYTES = 14  # what a `time` adds to an entry's size, as AWS counts it
REPLAY_NAME = "replay-name"
INGRESS_PREFIX = "fanstack-bus-"


def ingress_queue(bus: str) -> str:
    """The queue that holds a bus's events until they are routed."""
    return INGRESS_PREFIX + bus


class EntryError(FanstackError):
    """One PutEvents entry that was not accepted; the others in its request still are."""

    sender_fault = True

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True, kw_only=True)
class EventEntry:
    """One entry of a PutEvents request, in EventBridge's vocabulary."""

    source: str | None
    detail_type: str | None
    detail: Mapping[str, Any] | str | None
    resources: Sequence[str] = field(default_factory=tuple)
    time: datetime | str | float | None = None

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> EventEntry:
        """An entry from a mapping with snake_case or AWS's PascalCase keys."""

        def pick(snake: str, pascal: str) -> Any:
            return entry[snake] if snake in entry else entry.get(pascal)

        return cls(
            source=pick("source", "Source"),
            detail_type=pick("detail_type", "DetailType"),
            detail=pick("detail", "Detail"),
            resources=pick("resources", "Resources") or (),
            time=pick("time", "Time"),
        )


def check_request(entries: Sequence[EventEntry]) -> None:
    """Raise ValidationException for a request that fails as a whole (count, total size)."""
    if not 1 <= len(entries) <= MAX_ENTRIES:
        raise ValidationException(
            f"put_events takes 1-{MAX_ENTRIES} entries, got {len(entries)}"
        )
    total = sum(entry_size(entry) for entry in entries)
    if total > MAX_REQUEST_BYTES:
        raise ValidationException(
            f"Total size of the entries in the request is over the limit: {total} bytes; the "
            f"limit is {MAX_REQUEST_BYTES} bytes"
        )


def entry_size(entry: EventEntry) -> int:
    """The size AWS counts for an entry."""
    size = TIME_BYTES if entry.time is not None else 0
    for text in (entry.source, entry.detail_type, _detail_text(entry.detail)):
        if isinstance(text, str):
            size += len(text.encode())
    return size + sum(len(r.encode()) for r in entry.resources if isinstance(r, str))


def make_event(entry: EventEntry, *, event_id: str, now: float) -> dict[str, Any]:
    """The envelope for an accepted entry; raises EntryError with AWS's code otherwise."""
    source = _required(entry.source, "Source")
    if len(source) > MAX_SOURCE_LENGTH:
        raise _invalid("Source", f"Source is longer than {MAX_SOURCE_LENGTH} characters.")
    if source.startswith("aws."):
        raise EntryError("NotAuthorizedForSourceException", "Not authorized for the source.")
    detail_type = _required(entry.detail_type, "DetailType")
    if len(detail_type) > MAX_DETAIL_TYPE_LENGTH:
        raise _invalid(
            "DetailType", f"DetailType is longer than {MAX_DETAIL_TYPE_LENGTH} characters."
        )
    detail = _detail(entry.detail)
    resources = list(entry.resources)
    if isinstance(entry.resources, str) or not all(isinstance(r, str) for r in resources):
        raise _invalid("Resources", "Resources must be a list of strings.")
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": arn_scope().account,
        "time": event_time(entry.time, now),
        "region": arn_scope().region,
        "resources": resources,
        "detail": detail,
    }


def iso_seconds(epoch: float) -> str:
    """ISO 8601 in UTC to the second (`2026-01-01T12:00:00Z`), as EventBridge writes times."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_time(value: datetime | str | float | None, now: float) -> str:
    """The envelope's `time`: ISO 8601 in UTC to the second, as EventBridge writes it."""
    if value is None:
        return iso_seconds(now)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return iso_seconds(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _invalid("Time", f"Time {value!r} is not an ISO 8601 timestamp.") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    else:
        raise _invalid("Time", f"Time {value!r} is not a timestamp.")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> float:
    """Seconds since the epoch of an envelope's `time`."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _required(value: str | None, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(name, f"{name} is a required argument.")
    return value


def _detail(value: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if value is None or value == "":
        raise _invalid("Detail", "Detail is a required argument.")
    try:
        detail = json.loads(value) if isinstance(value, str) else json.loads(json.dumps(value))
    except (TypeError, ValueError):
        raise EntryError("MalformedDetail", "Detail is malformed.") from None
    if not isinstance(detail, dict):
        raise EntryError("MalformedDetail", "Detail is malformed.")
    return detail


def _detail_text(value: Mapping[str, Any] | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


def _invalid(name: str, reason: str) -> EntryError:
    return EntryError("InvalidArgument", f"Parameter {name} is not valid. Reason: {reason}")
