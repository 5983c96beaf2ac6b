"""The declared resources a user touches: `Topic` and `Queue`, speaking SNS and SQS.

An `App` creates them (`app.topic(...)`, `app.queue(...)`) with a way to reach its backend
(opened lazily, once per process); every call goes there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from fanstack.backends.base import Backend
from fanstack.core.batch import BatchResult, check_batch_size, entry_ids
from fanstack.core.errors import (
    FanstackError,
    InvalidParameterValue,
    SubscriptionDoesNotExist,
)
from fanstack.core.filter_policy import FilterPolicy
from fanstack.core.functions import ConsumerSpec
from fanstack.core.message import (
    QUEUE_BATCH_MAX_BYTES,
    TOPIC_BATCH_MAX_BYTES,
    AttributeInput,
    OutgoingMessage,
    ReceivedMessage,
    body_text,
    message_size,
    to_attributes,
)
from fanstack.core.records import EntryResult, PublishRequest, QueueStats, new_message_id
from fanstack.core.references import QueueReferences, check_queue_deletable, queue_references
from fanstack.core.specs import (
    MAX_WAIT_SECONDS,
    SCOPE_ALIASES,
    QueueSpec,
    SubscriptionSpec,
    TopicSpec,
    check_range,
)

BackendProvider = Callable[[], Backend]
MAX_PEEK = 1000  # messages one peek shows at most
Attributes = Mapping[str, AttributeInput] | None


def _raise_or_return(outcome: EntryResult) -> Any:
    if isinstance(outcome, FanstackError):
        raise outcome
    return outcome


class Declarations(Protocol):
    """Where subscriptions and topics are declared (an App), so that they stay declared."""

    def subscribe(self, subscription: SubscriptionSpec) -> None:
        """Declare (and store) a subscription."""
        ...

    def unsubscribe(self, topic: str, queue: str) -> None:
        """Forget (and delete) a subscription."""
        ...

    def forget_topic(self, name: str) -> None:
        """Forget (and delete) a topic with its subscriptions."""
        ...


class Topic:
    """A handle to a topic: `subscribe`, `unsubscribe`, `publish`, `publish_batch`, `delete`."""

    def __init__(
        self, spec: TopicSpec, backend: BackendProvider, declarations: Declarations
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self._backend = backend
        self._declarations = declarations

    def __repr__(self) -> str:
        return f"Topic({self.name!r})"

    def subscribe(
        self,
        queue: Queue | str,
        filter_policy: Mapping[str, Any] | str | None = None,
        filter_scope: str = "attributes",
        raw: bool = False,
    ) -> SubscriptionSpec:
        """Deliver this topic's messages that match `filter_policy` to `queue`."""
        scope = SCOPE_ALIASES.get(filter_scope)
        if scope is None:
            raise InvalidParameterValue(
                f"filter_scope must be 'attributes' or 'body', got {filter_scope!r}"
            )
        policy_json = None
        if filter_policy is not None:
            policy_json = FilterPolicy.parse(filter_policy, scope=scope).to_json()
        queue_name = queue.name if isinstance(queue, Queue) else queue
        subscription = SubscriptionSpec(
            topic=self.name,
            queue=queue_name,
            filter_policy=policy_json,
            filter_scope=scope,
            raw=raw,
        )
        self._declarations.subscribe(subscription)
        return subscription

    def unsubscribe(self, queue: Queue | str) -> None:
        """Stop delivering to `queue` (SNS Unsubscribe); messages it holds stay. No-op if absent."""
        self._declarations.unsubscribe(self.name, queue.name if isinstance(queue, Queue) else queue)

    def delete(self) -> None:
        """Delete the topic and its subscriptions (SNS DeleteTopic); queued messages stay."""
        self._declarations.forget_topic(self.name)

    def publish(
        self,
        body: Any,
        attributes: Attributes = None,
        *,
        subject: str | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> str:
        """Publish one message; returns its id once every matching queue durably holds it."""
        request = _publish_request(body, attributes, subject, group_id, deduplication_id)
        (outcome,) = self._backend().publish(self.name, [request])
        return str(_raise_or_return(outcome))

    async def publish_async(
        self,
        body: Any,
        attributes: Attributes = None,
        *,
        subject: str | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> str:
        """`publish` on an event loop: it goes on serving while the message is stored."""
        request = _publish_request(body, attributes, subject, group_id, deduplication_id)
        (outcome,) = await self._backend().publish_async(self.name, [request])
        return str(_raise_or_return(outcome))

    def publish_batch(self, entries: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Publish up to 10 entries (`id`, `body`, `attributes`, `subject`, `group_id`, ...)."""

        def request(entry: Mapping[str, Any]) -> PublishRequest:
            return _publish_request(
                entry.get("body"),
                entry.get("attributes"),
                entry.get("subject"),
                entry.get("group_id"),
                entry.get("deduplication_id"),
            )

        return _run_batch(
            entries,
            request,
            lambda valid: self._backend().publish(self.name, valid),
            max_bytes=TOPIC_BATCH_MAX_BYTES,
        )


_Request = TypeVar("_Request", PublishRequest, OutgoingMessage)


def _publish_request(
    body: Any,
    attributes: Attributes,
    subject: str | None,
    group_id: str | None,
    deduplication_id: str | None,
) -> PublishRequest:
    """A message to publish, its body and attributes in their stored form."""
    return PublishRequest(
        body_text(body), to_attributes(attributes), subject, group_id, deduplication_id
    )


def _outgoing(
    body: Any,
    attributes: Attributes,
    delay: int | None,
    group_id: str | None,
    deduplication_id: str | None,
) -> OutgoingMessage:
    """A message to send, with a new id."""
    return OutgoingMessage(
        id=new_message_id(),
        body=body_text(body),
        attributes=to_attributes(attributes),
        delay_seconds=delay,
        group_id=group_id,
        deduplication_id=deduplication_id,
    )


def _run_batch(
    entries: Sequence[Mapping[str, Any]],
    build: Callable[[Mapping[str, Any]], _Request],
    submit: Callable[[list[_Request]], list[EntryResult]],
    *,
    max_bytes: int,
) -> BatchResult:
    """Validate a send/publish batch, submit the valid entries at once, report every entry."""
    ids = entry_ids(entries)
    built: list[_Request | FanstackError] = []
    for entry in entries:
        try:
            built.append(build(entry))
        except FanstackError as error:
            built.append(error)
    valid = [item for item in built if not isinstance(item, FanstackError)]
    check_batch_size(
        (message_size(item.body, item.attributes) for item in valid), max_bytes=max_bytes
    )
    stored = iter(submit(valid) if valid else [])
    outcomes = [item if isinstance(item, FanstackError) else next(stored) for item in built]
    return BatchResult.collect(ids, outcomes)


class Queue:
    """A handle to a queue: send, receive, delete, change visibility, purge, redrive, stats."""

    def __init__(self, spec: QueueSpec, backend: BackendProvider) -> None:
        self.spec = spec
        self.name = spec.name
        self._backend = backend

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    def send(
        self,
        body: Any,
        attributes: Attributes = None,
        *,
        delay: int | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> str:
        """Send one message; returns its id once it is durably stored."""
        message = _outgoing(body, attributes, delay, group_id, deduplication_id)
        (outcome,) = self._backend().send(self.name, [message])
        return str(_raise_or_return(outcome))

    async def send_async(
        self,
        body: Any,
        attributes: Attributes = None,
        *,
        delay: int | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> str:
        """`send` on an event loop: it goes on serving while the message is stored."""
        message = _outgoing(body, attributes, delay, group_id, deduplication_id)
        (outcome,) = await self._backend().send_async(self.name, [message])
        return str(_raise_or_return(outcome))

    def send_batch(self, entries: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Send up to 10 entries (`id`, `body`, `attributes`, `delay`, `group_id`, ...)."""

        def message(entry: Mapping[str, Any]) -> OutgoingMessage:
            return _outgoing(
                entry.get("body"),
                entry.get("attributes"),
                entry.get("delay"),
                entry.get("group_id"),
                entry.get("deduplication_id"),
            )

        return _run_batch(
            entries,
            message,
            lambda valid: self._backend().send(self.name, valid),
            max_bytes=QUEUE_BATCH_MAX_BYTES,
        )

    def receive(
        self,
        max_messages: int = 1,
        wait_seconds: int | None = None,
        visibility_timeout: int | None = None,
    ) -> list[ReceivedMessage]:
        """Receive up to 10 messages, long polling up to `wait_seconds` (whole seconds, 0-20)."""
        if wait_seconds is not None:
            check_range("wait_seconds", wait_seconds, 0, MAX_WAIT_SECONDS)
        return self._backend().receive(
            self.name,
            max_messages=max_messages,
            wait_seconds=wait_seconds,
            visibility_timeout=visibility_timeout,
        )

    def delete(self, receipt_handle: str) -> None:
        """Delete a received message by its latest receipt handle (FIFO: before it expires)."""
        (outcome,) = self._backend().delete_messages(self.name, [receipt_handle])
        _raise_or_return(outcome)

    def delete_batch(self, entries: Sequence[Mapping[str, Any] | str]) -> BatchResult:
        """Delete up to 10 messages: receipt handles, or entries with `id` and `receipt_handle`."""
        ids = entry_ids(entries)
        handles = [e if isinstance(e, str) else str(e["receipt_handle"]) for e in entries]
        return BatchResult.collect(ids, self._backend().delete_messages(self.name, handles))

    def change_visibility(self, receipt_handle: str, visibility_timeout: int) -> None:
        """Hide a received message for `visibility_timeout` seconds from now (0 shows it).

        The latest receipt handle works until the next receive, even after the timeout ran out;
        on a FIFO queue only while the message is in flight (`MessageNotInflight`), as in SQS.
        """
        (outcome,) = self._backend().set_visibility(
            self.name, [(receipt_handle, visibility_timeout)]
        )
        _raise_or_return(outcome)

    def change_visibility_batch(self, entries: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Change up to 10 visibility timeouts (`id`, `receipt_handle`, `visibility_timeout`)."""
        ids = entry_ids(entries)
        changes = [(str(e["receipt_handle"]), int(e["visibility_timeout"])) for e in entries]
        return BatchResult.collect(ids, self._backend().set_visibility(self.name, changes))

    def purge(self) -> None:
        """Delete every message (at most once per 60 seconds)."""
        self._backend().purge(self.name)

    def redrive_dead_letters(self) -> int:
        """Move every message this queue dead-lettered back from its DLQ; returns the count.
        Each comes back as a new message, as SQS's redrive makes it: a new id, sent (and
        retained) from the redrive, its body and attributes as they were."""
        return self._backend().redrive_dead_letters(self.name)

    def peek(self, limit: int = 10) -> list[ReceivedMessage]:
        """Up to `limit` (1-1000) messages the queue holds, oldest first, without receiving
        them: no receive count, visibility or receipt handle changes."""
        check_range("limit", limit, 1, MAX_PEEK)
        return self._backend().peek(self.name, limit)

    def delete_queue(self, *, force: bool = False) -> QueueReferences:
        """Delete the queue and its messages (SQS DeleteQueue); see `delete_queue`."""
        return delete_queue(self._backend(), self.name, force=force)

    def stats(self) -> QueueStats:
        """Visible, in flight, delayed, oldest age, DLQ depth, expired and dead-lettered counts."""
        return self._backend().stats(self.name)


def delete_queue(
    backend: Backend, name: str, *, force: bool = False, consumers: Iterable[ConsumerSpec] = ()
) -> QueueReferences:
    """Delete a queue, its messages and its subscriptions; returns what pointed at it.

    Refused with `QueueInUse` while a subscription, another queue's redrive policy or one of
    `consumers` points at it. Forced, the redrive policies naming it are removed too (their
    messages are then retried without a limit), so no queue names a missing dead-letter queue.
    """
    backend.get_queue(name)  # QueueDoesNotExist first, whatever points at the name
    queues = backend.list_queues()
    references = queue_references(
        name, queues=queues, subscriptions=backend.list_subscriptions(), consumers=consumers
    )
    check_queue_deletable(references, force=force)
    for source in queues:
        if source.name in references.redrive_sources:
            backend.set_queue_attributes(replace(source, dead_letter=None, max_receive_count=None))
    backend.delete_queue(name)
    return references


def delete_subscription(backend: Backend, topic: str, queue: str) -> None:
    """Delete the subscription of `queue` to `topic` (SNS Unsubscribe); the queue keeps what
    it holds. `TopicDoesNotExist` or `SubscriptionDoesNotExist` if there is none."""
    backend.get_topic(topic)
    if not any(s.queue == queue for s in backend.list_subscriptions(topic)):
        raise SubscriptionDoesNotExist(topic, queue)
    backend.delete_subscription(topic, queue)
