"""The previous NATS layout: recognized and refused, never read or changed.

Layout 1 kept a namespace `NS` as one journal stream `NS` (subject `fanstack.NS.journal`) and a
snapshot object store `NS_SNAPSHOTS`; every process replayed it into memory. Layout 2 keeps queue
state in JetStream itself (see the package docstring). Opening layout 1 with this version stops
with the steps to take: its tables (`NS_TABLES`) are read unchanged by layout 2, but its queued
messages are in the journal, which layout 2 does not read.
"""

from __future__ import annotations

from typing import Any

from nats.js.errors import NotFoundError

from fanstack.core.errors import IncompatibleStore


async def refuse_previous_layout(js: Any, namespace: str) -> None:
    """Raise IncompatibleStore if `namespace` holds a layout-1 journal."""
    try:
        info = await js.stream_info(namespace)
    except NotFoundError:
        return
    journal = f"fanstack.{namespace}.journal"
    if journal not in (info.config.subjects or []):
        return
    raise IncompatibleStore(
        f"NATS stream {namespace!r} holds fanstack's previous layout (a journal of "
        f"{info.state.messages} entries replayed by every process); this version keeps queue "
        "state in JetStream streams and consumers instead and does not read the journal. "
        "To move: drain the queues with the previous fanstack version (or accept losing the "
        f"messages still queued), then delete the stream {namespace!r} and its object store "
        f"'{namespace}_SNAPSHOTS' (nats stream rm {namespace}; nats object rm "
        f"{namespace}_SNAPSHOTS) and start again; tables in '{namespace}_TABLES' are kept and "
        "read as they are. Or use another namespace: ?stream=NEWNAME in the backend URL."
    )
