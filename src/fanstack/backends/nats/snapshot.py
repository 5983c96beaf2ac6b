"""Snapshots of the NATS backend's state: the whole `State` as JSON-ready data, and back.

A snapshot lets a process start without replaying the journal from its first entry, and lets
the journal be purged behind it. Payloads shared by several deliveries are written once.
"""

from __future__ import annotations

from typing import Any

from fanstack.backends.nats.state import Payload, QueueState, State, Stored
from fanstack.core.errors import InvalidParameterValue
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec


def to_snapshot(state: State) -> dict[str, Any]:
    """The whole state as JSON-ready data (payloads shared by deliveries are written once)."""
    payload_ids: dict[int, int] = {}
    payloads: list[list[Any]] = []

    def payload_id(payload: Payload) -> int:
        key = id(payload)
        if key not in payload_ids:
            payload_ids[key] = len(payloads)
            payloads.append(
                [payload.message_id, payload.body, payload.attributes, payload.envelope]
            )
        return payload_ids[key]

    queues = []
    for queue in state.queues.values():
        messages = [
            [
                m.seq,
                payload_id(m.payload),
                m.unsubscribe_url,
                m.sent_at,
                m.visible_at,
                m.expires_at,
                m.group_id,
                m.dedup_id,
                m.receive_count,
                m.first_received_at,
                m.receipt,
                m.failure,
                m.source_queue,
                m.failed_receives,
                m.lost_receives,
            ]
            for m in sorted(queue.messages.values(), key=lambda m: m.seq)
        ]
        queues.append(
            {
                "spec": queue.spec.to_json(),
                "messages": messages,
                "last_purge": queue.last_purge,
                "expired": queue.expired,
                "dead_lettered": queue.dead_lettered,
            }
        )
    return {
        "version": 1,
        "next_seq": state.next_seq,
        "catalog_version": state.catalog_version,
        "payloads": payloads,
        "queues": queues,
        "topics": [spec.to_json() for spec in state.topics.values()],
        "subscriptions": [spec.to_json() for spec in state.subscriptions.values()],
        "dedup": [[s, d, m, e] for (s, d), (m, e) in state.dedup.items()],
    }


def from_snapshot(data: dict[str, Any]) -> State:
    """Rebuild the state a snapshot describes."""
    if data.get("version") != 1:
        raise InvalidParameterValue(f"unknown snapshot version {data.get('version')!r}")
    state = State()
    state.next_seq = data["next_seq"]
    state.catalog_version = data["catalog_version"]
    payloads = [Payload(*row) for row in data["payloads"]]
    for raw in data["queues"]:
        queue = QueueState(QueueSpec.from_json(raw["spec"]))
        queue.last_purge = raw["last_purge"]
        queue.expired = raw["expired"]
        queue.dead_lettered = raw["dead_lettered"]
        for row in raw["messages"]:
            # Absent in snapshots of earlier versions.
            failed, lost = (row[13], row[14]) if len(row) > 13 else (0, None)
            (
                seq,
                payload,
                url,
                sent,
                visible,
                expires,
                group,
                dedup,
                count,
                first,
                receipt,
                failure,
                source,
            ) = row[:13]
            queue.add(
                Stored(
                    seq=seq,
                    payload=payloads[payload],
                    unsubscribe_url=url,
                    sent_at=sent,
                    visible_at=visible,
                    expires_at=expires,
                    group_id=group,
                    dedup_id=dedup,
                    receive_count=count,
                    first_received_at=first,
                    receipt=receipt,
                    failure=failure,
                    source_queue=source,
                    failed_receives=failed,
                    lost_receives=lost,
                )
            )
        state.queues[queue.spec.name] = queue
    for text in data["topics"]:
        spec = TopicSpec.from_json(text)
        state.topics[spec.name] = spec
    for text in data["subscriptions"]:
        subscription = SubscriptionSpec.from_json(text)
        state.subscriptions[(subscription.topic, subscription.queue)] = subscription
    state.dedup = {(s, d): (m, e) for s, d, m, e in data["dedup"]}
    return state
