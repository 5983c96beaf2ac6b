"""`fanstack delete-queue | delete-topic | unsubscribe`: take resources away.

A queue that a subscription or another queue's redrive policy points at is kept unless
`--force` (`core.references`).
"""

from __future__ import annotations

import click

from fanstack.cli.base import main, open_store
from fanstack.resources import delete_queue, delete_subscription


@main.command("delete-queue")
@click.argument("queue")
@click.option(
    "--force",
    is_flag=True,
    help="Delete it even if subscriptions or redrive policies point at it (those go too).",
)
@click.pass_context
def delete_queue_command(ctx: click.Context, queue: str, force: bool) -> None:
    """Delete QUEUE with its messages and subscriptions."""
    with open_store(ctx) as backend:
        references = delete_queue(backend, queue, force=force)
    also = f" ({references.describe()}: removed too)" if references else ""
    click.echo(f"deleted queue {queue}{also}")


@main.command("delete-topic")
@click.argument("topic")
@click.pass_context
def delete_topic(ctx: click.Context, topic: str) -> None:
    """Delete TOPIC and its subscriptions (what queues hold from it stays)."""
    with open_store(ctx) as backend:
        subscriptions = backend.list_subscriptions(topic)
        backend.get_topic(topic)  # TopicDoesNotExist
        backend.delete_topic(topic)
    click.echo(f"deleted topic {topic} and {len(subscriptions)} subscription(s)")


@main.command()
@click.argument("topic")
@click.argument("queue")
@click.pass_context
def unsubscribe(ctx: click.Context, topic: str, queue: str) -> None:
    """Stop delivering TOPIC's messages to QUEUE (what QUEUE holds stays)."""
    with open_store(ctx) as backend:
        delete_subscription(backend, topic, queue)
    click.echo(f"unsubscribed {queue} from {topic}")
