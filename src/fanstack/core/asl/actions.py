"""What the interpreter answers when a state is entered, completed or failed: an `Action` the
durable engine (or the express runner) carries out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fanstack.core.asl.states import StateMachine


@dataclass(frozen=True, slots=True)
class Next:
    """Go to `state` with `output`; `variables` are the workflow variables from then on."""

    state: str
    output: Any
    variables: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Succeed:
    """This (sub)machine ends with `output` (a Succeed state, or `End: true`)."""

    output: Any


@dataclass(frozen=True, slots=True)
class Fail:
    """This (sub)machine fails with `error` and `cause`."""

    error: str
    cause: str


@dataclass(frozen=True, slots=True)
class Delay:
    """A Wait: `seconds` from now, or `until` (an ISO timestamp); then do `then`."""

    seconds: float | None
    until: str | None
    then: Next | Succeed


@dataclass(frozen=True, slots=True)
class RunTask:
    """Run `resource` with `payload`, then call `complete` (or `fail`) with its outcome."""

    resource: str
    payload: Any
    timeout_seconds: float | None
    heartbeat_seconds: float | None
    wait_for_token: bool
    credentials: Any


@dataclass(frozen=True, slots=True)
class RunBranches:
    """Run every branch of a Parallel on `input`, then `complete` with their outputs in order."""

    branches: tuple[StateMachine, ...]
    input: Any


@dataclass(frozen=True, slots=True)
class RunMap:
    """Run `processor` on each item (its input from `map_item_input`), then `complete`.

    `items` is None when `reader` says where to read them; `batcher` groups the selected items
    into batches, each one child; `writer` says where the children's results go.
    `max_concurrency` is the effective limit (40 inline, 10,000 distributed, or less).
    """

    processor: StateMachine
    items: list[Any] | None
    max_concurrency: int
    tolerated_failure_percentage: float | None
    tolerated_failure_count: int | None
    mode: str
    reader: ItemSource | None = None
    batcher: Batching | None = None
    writer: ResultSink | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """Enter the same state again after `delay_seconds`; `retrier` has now made `attempt`."""

    delay_seconds: float
    retrier: int
    attempt: int


@dataclass(frozen=True, slots=True)
class ItemSource:
    """Where a distributed Map reads its items: a table's items, or a JSON list in one item."""

    resource: str
    table: str
    key: str | None = None
    prefix: str = ""
    items_pointer: str | None = None
    max_items: int | None = None


@dataclass(frozen=True, slots=True)
class Batching:
    """`ItemBatcher`: at most `max_items` items and `max_bytes` bytes of items a child."""

    max_items: int | None
    max_bytes: int | None
    batch_input: Any = None
    has_batch_input: bool = False


@dataclass(frozen=True, slots=True)
class ResultSink:
    """`ResultWriter`: the table results go to (None: only transform the output)."""

    table: str | None
    prefix: str
    transformation: str


Action = Next | Succeed | Fail | Delay | RunTask | RunBranches | RunMap | Retry
