"""`fanstack topics | queues | publish | send | receive | purge`: resources and their messages."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from fanstack.cli.base import (
    emit_json,
    main,
    nothing_to_show,
    open_store,
    plain_table,
    print_table,
)
from fanstack.core.errors import FanstackError, InvalidAttributeValue
from fanstack.core.message import MessageAttribute, OutgoingMessage, ReceivedMessage, to_attributes
from fanstack.core.records import PublishRequest, QueueStats, new_message_id

INTERNAL_PREFIX = "fanstack-"  # the queues fanstack declares for itself are named so


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
def topics(ctx: click.Context, as_json: bool) -> None:
    """List topics and their subscriptions."""
    with open_store(ctx) as backend:
        rows: list[dict[str, Any]] = []
        for topic in backend.list_topics():
            subscriptions = backend.list_subscriptions(topic.name)
            rows.append(
                {
                    "name": topic.name,
                    "fifo": topic.fifo,
                    "subscriptions": [
                        {
                            "queue": s.queue,
                            "raw": s.raw,
                            "filter_scope": s.filter_scope,
                            "filter_policy": json.loads(s.filter_policy)
                            if s.filter_policy
                            else None,
                        }
                        for s in subscriptions
                    ],
                }
            )
    if as_json:
        emit_json(rows)
        return
    if not rows:
        nothing_to_show("topics", backend)
        return
    table = plain_table("topic", "fifo", "subscription", "delivery", "filter policy")
    for row in rows:
        entries: list[dict[str, Any] | None] = row["subscriptions"] or [None]
        for index, sub in enumerate(entries):
            table.add_row(
                row["name"] if index == 0 else "",
                ("yes" if row["fifo"] else "no") if index == 0 else "",
                sub["queue"] if sub else "-",
                ("raw" if sub["raw"] else "enveloped") if sub else "",
                _policy_text(sub) if sub else "",
            )
    print_table(table)


def _policy_text(subscription: dict[str, Any]) -> str:
    policy = subscription["filter_policy"]
    if policy is None:
        return "(everything)"
    scope = "body " if subscription["filter_scope"] == "MessageBody" else ""
    return scope + json.dumps(policy, separators=(",", ":"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Show fanstack's internal queues too (async invocations, bus, schedules, ...).",
)
@click.pass_context
def queues(ctx: click.Context, as_json: bool, show_all: bool) -> None:
    """List queues with their depths, in-flight counts, oldest age and DLQ depth."""
    with open_store(ctx) as backend:
        every = backend.list_queues()
        shown = [spec for spec in every if show_all or not is_internal(spec.name)]
        stats = [(spec, backend.stats(spec.name)) for spec in shown]
    if as_json:
        emit_json(
            [
                {**s.to_dict(), "fifo": spec.fifo, "dead_letter": spec.dead_letter}
                for spec, s in stats
            ]
        )
        return
    if not stats:
        hidden = len(every) - len(shown)
        nothing_to_show("queues", backend, f" ({hidden} internal: --all shows them)" * bool(hidden))
        return
    table = plain_table("queue", "visible", "in flight", "delayed", "oldest", "dead letter (depth)")
    for spec, s in stats:
        table.add_row(
            spec.name,
            str(s.visible),
            str(s.in_flight),
            str(s.delayed),
            _age(s),
            "-" if spec.dead_letter is None else f"{spec.dead_letter} ({s.dead_letter_depth})",
        )
    print_table(table)


def is_internal(queue: str) -> bool:
    """Whether fanstack made the queue for itself (async invocations, bus, schedules, ...)."""
    return queue.startswith(INTERNAL_PREFIX)


def _age(stats: QueueStats) -> str:
    return "-" if stats.oldest_age is None else f"{stats.oldest_age:.1f}s"


def _parse_attributes(values: Sequence[str]) -> dict[str, MessageAttribute]:
    """`k=v` (String), `k:Number=5`, `k:String.Array=["a","b"]`, `k:Binary=<base64>`."""
    raw: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidAttributeValue(f"--attr {item!r}: expected NAME=VALUE or NAME:TYPE=VALUE")
        name, _, data_type = key.partition(":")
        data_type = data_type or "String"
        if data_type.split(".", 1)[0] == "Binary":
            raw[name] = {"DataType": data_type, "BinaryValue": value}
        else:
            raw[name] = {"DataType": data_type, "StringValue": value}
    return to_attributes(raw)


_attr_option = click.option(
    "--attr",
    "attrs",
    multiple=True,
    metavar="NAME[:TYPE]=VALUE",
    help="A message attribute; TYPE is String (default), Number, String.Array or Binary.",
)


@main.command()
@click.argument("topic")
@click.argument("body")
@_attr_option
@click.option("--subject", default=None, help="The envelope's Subject.")
@click.option("--group-id", default=None, help="Message group id (FIFO topics).")
@click.option("--deduplication-id", default=None, help="Deduplication id (FIFO topics).")
@click.pass_context
def publish(
    ctx: click.Context,
    topic: str,
    body: str,
    attrs: tuple[str, ...],
    subject: str | None,
    group_id: str | None,
    deduplication_id: str | None,
) -> None:
    """Publish BODY (`-` reads standard input) to TOPIC; prints the message id."""
    with open_store(ctx) as backend:
        request = PublishRequest(
            body=_body(body),
            attributes=_parse_attributes(attrs),
            subject=subject,
            group_id=group_id,
            deduplication_id=deduplication_id,
        )
        click.echo(_single(backend.publish(topic, [request])))


@main.command()
@click.argument("queue")
@click.argument("body")
@_attr_option
@click.option("--delay", type=int, default=None, help="Delay in seconds (0-900).")
@click.option("--group-id", default=None, help="Message group id (FIFO queues).")
@click.option("--deduplication-id", default=None, help="Deduplication id (FIFO queues).")
@click.pass_context
def send(
    ctx: click.Context,
    queue: str,
    body: str,
    attrs: tuple[str, ...],
    delay: int | None,
    group_id: str | None,
    deduplication_id: str | None,
) -> None:
    """Send BODY (`-` reads standard input) to QUEUE; prints the message id."""
    with open_store(ctx) as backend:
        message = OutgoingMessage(
            id=new_message_id(),
            body=_body(body),
            attributes=_parse_attributes(attrs),
            delay_seconds=delay,
            group_id=group_id,
            deduplication_id=deduplication_id,
        )
        click.echo(_single(backend.send(queue, [message])))


def _body(body: str) -> str:
    """BODY as given, or standard input when it is `-`."""
    return sys.stdin.read() if body == "-" else body


def _single(results: Sequence[str | FanstackError | None]) -> str:
    (result,) = results
    if isinstance(result, FanstackError):
        raise result
    return result or ""


@main.command()
@click.argument("queue")
@click.option("--max", "max_messages", type=int, default=1, show_default=True)
@click.option("--wait", "wait_seconds", type=float, default=0, show_default=True)
@click.option("--visibility-timeout", type=int, default=None)
@click.option("--delete", is_flag=True, help="Delete each message once printed.")
@click.pass_context
def receive(
    ctx: click.Context,
    queue: str,
    max_messages: int,
    wait_seconds: float,
    visibility_timeout: int | None,
    delete: bool,
) -> None:
    """Receive messages from QUEUE and print one JSON line each."""
    with open_store(ctx) as backend:
        messages = backend.receive(
            queue,
            max_messages=max_messages,
            wait_seconds=wait_seconds,
            visibility_timeout=visibility_timeout,
        )
        for message in messages:
            emit_json(message_record(message))
        if delete and messages:
            for outcome in backend.delete_messages(queue, [m.receipt_handle for m in messages]):
                if isinstance(outcome, FanstackError):
                    raise outcome


def message_record(message: ReceivedMessage) -> dict[str, Any]:
    """A received (or peeked) message as the JSON line `receive` prints."""
    record: dict[str, Any] = {
        "id": message.id,
        "body": message.body,
        "attributes": {k: v.to_dict() for k, v in message.message_attributes.items()},
        "receipt_handle": message.receipt_handle,
        "receive_count": message.receive_count,
        "sent_timestamp": message.sent_timestamp,
    }
    for name in ("group_id", "sequence_number", "failure", "source_queue"):
        value = getattr(message, name)
        if value is not None:
            record[name] = value
    if message.lost_receives is not None:  # dead-lettered: receives that failed, and lost ones
        record["failed_receives"] = message.failed_receives
        record["lost_receives"] = message.lost_receives
    return record


@main.command()
@click.argument("queue")
@click.pass_context
def purge(ctx: click.Context, queue: str) -> None:
    """Delete every message in QUEUE (once per 60 seconds)."""
    with open_store(ctx) as backend:
        backend.purge(queue)
        click.echo(f"purged {queue}")
