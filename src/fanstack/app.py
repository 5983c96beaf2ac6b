"""The public API: an `App` declares topics and queues; their resources speak SNS/SQS.

Resources are declared in code and created (or brought up to date) in the backend when the app
first touches it, so `fanstack run app.py --data-dir X` can choose where state lives first.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from fanstack.backends import Backend, open_backend
from fanstack.bus import Bus, Buses
from fanstack.core.errors import (
    FunctionDoesNotExist,
    InvalidParameterValue,
    TopicDoesNotExist,
)
from fanstack.core.filter_policy import FilterPolicy
from fanstack.core.functions import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_EVENT_AGE,
    DEFAULT_MEMORY_MB,
    DEFAULT_RETRY_ATTEMPTS,
    DEFAULT_RETRY_LATER_LIMIT,
    DEFAULT_TIMEOUT,
    ConsumerSpec,
    FunctionSpec,
)
from fanstack.core.message import (
    AttributeInput,
)
from fanstack.core.outcome import Outcome
from fanstack.core.retry import RetryPolicy
from fanstack.core.rules import MAX_RULES_PER_BUS
from fanstack.core.specs import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_RETENTION,
    DEFAULT_VISIBILITY_TIMEOUT,
    QueueSpec,
    SubscriptionSpec,
    TopicSpec,
    check_dead_letter,
)
from fanstack.notifications import EndpointNotifications
from fanstack.observability.metered_backend import MeteredBackend
from fanstack.observability.metrics import enabled as metrics_enabled
from fanstack.observability.metrics import metrics
from fanstack.observability.traced_backend import TracedBackend
from fanstack.resources import Queue, Topic, delete_queue
from fanstack.runtime.dispatcher import Dispatcher, WorkerStore
from fanstack.runtime.functions import Function, Handler
from fanstack.runtime.role import is_function_worker
from fanstack.runtime.services import Capability
from fanstack.schedules import Schedule, Schedules, rule_schedule
from fanstack.workflows import Workflow, Workflows

if TYPE_CHECKING:
    from fanstack.gateway.api import Api
    from fanstack.table import Table
    from fanstack.utilities.circuit_breaker import CircuitBreaker

DEFAULT_DATA_DIR = ".fanstack"
QUEUE_OPTIONS = frozenset(
    {
        "visibility_timeout",
        "delay",
        "retention",
        "max_message_size",
        "receive_wait",
        "max_receive_count",
        "fifo",
        "content_based_deduplication",
    }
)
Attributes = Mapping[str, AttributeInput] | None


class App:
    """The registry of a fanstack application's resources, bound to one backend."""

    def __init__(
        self,
        name: str,
        *,
        data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR,
        backend: Backend | str | None = None,
        durability: str = "normal",
    ) -> None:
        self.name = name
        self.data_dir = data_dir
        self.durability = durability
        self._backend_choice = backend
        self._backend: Backend | None = None
        self._lock = threading.RLock()
        self.topics: dict[str, Topic] = {}
        self.queues: dict[str, Queue] = {}
        self._subscriptions: list[SubscriptionSpec] = []
        self.functions: dict[str, Function] = {}
        self.consumers: list[ConsumerSpec] = []
        self._runtime: Dispatcher | None = None
        self._api: Api | None = None
        self.buses = Buses(self.backend_provider, lambda: self._backend)
        self.workflows = Workflows(
            self.backend_provider, lambda: self._backend, self._run_function
        )
        self.schedules = Schedules(
            self.backend_provider,
            lambda: self._backend,
            lambda: [rule_schedule(rule) for rule in self.buses.scheduled_rules()],
        )
        self.buses.on_scheduled_rule = self.schedules.declare_rule
        self.capabilities: list[Capability] = [
            self.buses, self.workflows, self.schedules, EndpointNotifications()
        ]

    def configure(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        backend: Backend | str | None = None,
    ) -> None:
        """Choose where state lives before first use (the CLI's `--data-dir`, `--backend`)."""
        if self._backend is not None:
            raise InvalidParameterValue(f"app {self.name!r} is already bound to its backend")
        if data_dir is not None:
            self.data_dir = data_dir
        if backend is not None:
            self._backend_choice = backend

    @property
    def backend(self) -> Backend:
        """The backend, opened on first use with every declared resource created in it."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    choice = self._backend_choice
                    backend = (
                        choice
                        if isinstance(choice, Backend)
                        else open_backend(
                            choice, data_dir=self.data_dir, durability=self.durability
                        )
                    )
                    if metrics_enabled():
                        backend = MeteredBackend(backend, metrics())
                    backend = TracedBackend(backend)
                    self._provision(backend)
                    self._backend = backend
        return self._backend

    def backend_provider(self) -> Backend:
        """The backend, for parts that must not open it before they use it (same as `backend`)."""
        return self.backend

    def _use_store(self, data_dir: str | None, backend_url: str | None) -> None:
        """In a worker process: use the dispatcher's store, unless this app opened its own."""
        if self._backend is None:
            self.configure(data_dir=data_dir, backend=backend_url)

    def _provision(self, backend: Backend) -> None:
        # Dead-letter queues first, so a redrive policy always points at an existing queue.
        for queue in sorted(self.queues.values(), key=lambda q: q.spec.dead_letter is not None):
            backend.declare_queue(queue.spec)
        for topic in self.topics.values():
            backend.create_topic(topic.spec)
        for subscription in self._subscriptions:
            backend.subscribe(subscription)
        for capability in self.capabilities:
            capability.provision(backend)

    def topic(
        self, name: str, *, fifo: bool = False, content_based_deduplication: bool = False
    ) -> Topic:
        """Declare a topic (SNS): publish once, deliver to every matching subscription."""
        spec = TopicSpec(
            name=name, fifo=fifo, content_based_deduplication=content_based_deduplication
        )
        topic = Topic(spec, self.backend_provider, self)
        with self._lock:
            self.topics[name] = topic
            if self._backend is not None:
                self._backend.create_topic(spec)
        return topic

    def queue(
        self,
        name: str,
        *,
        visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
        delay: int = 0,
        retention: int = DEFAULT_RETENTION,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        receive_wait: int = 0,
        max_receive_count: int | None = None,
        dead_letter: Queue | str | None = None,
        fifo: bool = False,
        content_based_deduplication: bool = False,
    ) -> Queue:
        """Declare a queue (SQS), optionally with a dead-letter queue after `max_receive_count`."""
        dead_letter_name = dead_letter.name if isinstance(dead_letter, Queue) else dead_letter
        if dead_letter_name is not None and max_receive_count is None:
            raise InvalidParameterValue(
                f"queue {name!r}: dead_letter needs max_receive_count (1-1000) to redrive"
            )
        spec = QueueSpec(
            name=name,
            visibility_timeout=visibility_timeout,
            delay=delay,
            retention=retention,
            max_message_size=max_message_size,
            receive_wait=receive_wait,
            max_receive_count=max_receive_count,
            dead_letter=dead_letter_name,
            fifo=fifo,
            content_based_deduplication=content_based_deduplication,
        )
        if dead_letter_name in self.queues:
            check_dead_letter(spec, self.queues[dead_letter_name].spec)
        queue = Queue(spec, self.backend_provider)
        with self._lock:
            self.queues[name] = queue
            if self._backend is not None:
                self._backend.declare_queue(spec)
        return queue

    def subscribe(self, subscription: SubscriptionSpec) -> None:
        """Record a subscription and store it when (or if) the backend is open."""
        if subscription.filter_policy:
            # Validate now, so a bad policy fails where it is declared.
            FilterPolicy.parse(subscription.filter_policy, scope=subscription.filter_scope)
        with self._lock:
            self._subscriptions = [
                s
                for s in self._subscriptions
                if (s.topic, s.queue) != (subscription.topic, subscription.queue)
            ]
            self._subscriptions.append(subscription)
            if self._backend is not None:
                self._backend.subscribe(subscription)

    def unsubscribe(self, topic: str, queue: str) -> None:
        """Forget a subscription and delete it from the backend (no-op if absent)."""
        with self._lock:
            self._subscriptions = [
                s for s in self._subscriptions if (s.topic, s.queue) != (topic, queue)
            ]
        self.backend.delete_subscription(topic, queue)

    def forget_topic(self, name: str) -> None:
        """Forget a topic and its subscriptions, and delete them (TopicDoesNotExist if absent)."""
        with self._lock:
            self.topics.pop(name, None)
            self._subscriptions = [s for s in self._subscriptions if s.topic != name]
        self.backend.delete_topic(name)

    def delete_queue(self, name: str, *, force: bool = False) -> None:
        """Forget a queue and delete it with its messages and subscriptions; `QueueInUse`
        while a subscription, a redrive policy or a consumer of this app points at it, unless
        `force` (which removes the redrive policies naming it too)."""
        with self._lock:
            delete_queue(self.backend, name, force=force, consumers=self.consumers)
            self.queues.pop(name, None)
            self._subscriptions = [s for s in self._subscriptions if s.queue != name]

    def close(self) -> None:
        """Stop idle worker processes and close the backend's connections (state stays)."""
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    @property
    def data_dir_path(self) -> str:
        """The data dir as an absolute path (worker processes get it, whatever their cwd)."""
        return os.path.abspath(self.data_dir)

    @property
    def backend_url(self) -> str | None:
        """The URL of the chosen backend (what worker processes open), if one was chosen."""
        choice = self._backend_choice
        if isinstance(choice, Backend):
            return choice.url
        return choice

    @property
    def api(self) -> Api:
        """The HTTP API: routes declared with `app.api.post(...)` or `app.api.openapi(doc)`."""
        if is_function_worker():
            return cast("Api", _UNSERVED_API)
        with self._lock:
            if self._api is None:
                from fanstack.gateway.api import Api
                from fanstack.gateway.integrations import Targets

                targets = Targets(
                    topics=self.topics,
                    queues=self.queues,
                    functions=self.functions,
                    buses=self.buses.declared,
                    workflows=self.workflows.declared,
                    callbacks=self.workflows,
                )
                self._api = Api(self.name, targets)
            return self._api

    @property
    def runtime(self) -> Dispatcher:
        """Worker pools and consumers of this app's functions (started by `fanstack run`)."""
        with self._lock:
            if self._runtime is None:
                self._runtime = Dispatcher(
                    self.backend_provider,
                    functions=self.functions,
                    consumers=self.consumers,
                    worker_store=lambda: WorkerStore(self.data_dir_path, self.backend_url),
                    services=lambda: [s for c in self.capabilities for s in c.services()],
                )
            return self._runtime

    def bus(self, name: str = "default", *, max_rules: int = MAX_RULES_PER_BUS) -> Bus:
        """Declare an event bus (EventBridge): put events; rules route them to targets.

        `max_rules` is the bus's rule quota (EventBridge's default, 300, is adjustable too).
        """
        return self.buses.bus(name, max_rules=max_rules)

    def schedule(self, name: str, expression: str, target: Any, **options: Any) -> Schedule:
        """Declare a schedule (EventBridge Scheduler): `target` (a function, queue, topic, bus or
        workflow) gets `input` on a `rate(...)`, `cron(...)` or `at(...)` expression; options:
        timezone, start, end, flexible_window_minutes, input, maximum_event_age,
        maximum_retry_attempts, dead_letter, enabled, action_after_completion, description."""
        return self.schedules.schedule(name, expression, target, **options)

    def workflow(
        self, name: str, definition: Mapping[str, Any] | str, *, type: str = "STANDARD"
    ) -> Workflow:
        """Declare a workflow (Step Functions): an Amazon States Language state machine."""
        return self.workflows.workflow(name, definition, type=type)

    def _run_function(self, name: str, payload: Any) -> Outcome:
        """Run a declared function for a workflow task, waiting for a free worker."""
        function = self.functions.get(name)
        if function is None:
            raise FunctionDoesNotExist(name)
        return self.runtime.pool(function).invoke(payload, block=True)

    def queue_for(self, name: str) -> Queue:
        """The handle of a queue declared here or already in the backend."""
        queue = self.queues.get(name)
        if queue is None:
            # QueueDoesNotExist if absent
            queue = Queue(self.backend.get_queue(name), self.backend_provider)
        return queue

    def table(self, name: str) -> Table:
        """A key-value table in this app's backend (idempotency records, breaker state, ...)."""
        from fanstack.table import Table

        return Table(self.backend_provider, name)

    def function(
        self,
        handler: Handler | None = None,
        *,
        name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        memory_mb: int | None = DEFAULT_MEMORY_MB,
        concurrency: int = DEFAULT_CONCURRENCY,
        retry_attempts: int = DEFAULT_RETRY_ATTEMPTS,
        max_event_age: int = DEFAULT_MAX_EVENT_AGE,
        on_success: Any = None,
        on_failure: Any = None,
        circuit_breaker: CircuitBreaker | None = None,
    ) -> Any:
        """Declare a function (Lambda): `@app.function` or `@app.function(timeout=10, ...)`."""

        def declare(handler: Handler) -> Function:
            spec = FunctionSpec(
                name=name or handler.__name__,
                timeout=timeout,
                memory_mb=memory_mb,
                concurrency=concurrency,
                retry_attempts=retry_attempts,
                max_event_age=max_event_age,
            )
            if spec.name in self.functions:
                raise InvalidParameterValue(f"function {spec.name!r} is declared twice")
            function = Function(
                handler,
                spec,
                invoker=_AppInvoker(self),
                use_store=self._use_store,
                on_success=on_success,
                on_failure=on_failure,
                circuit_breaker=circuit_breaker,
            )
            self.queue(spec.async_queue, visibility_timeout=math.ceil(timeout) + 30)
            self.functions[spec.name] = function
            return function

        return declare(handler) if handler is not None else declare

    def consumer(
        self,
        queue: Queue | str,
        *,
        batch_size: int = 10,
        batch_window: float = 0,
        max_concurrency: int | None = None,
        report_batch_item_failures: bool = True,
        retry: RetryPolicy | None = None,
        retry_later_limit: float = DEFAULT_RETRY_LATER_LIMIT,
        **function_options: Any,
    ) -> Callable[[Handler], Function]:
        """Declare a function fed by a queue in batches (an event source mapping).

        The queue may be one the app declares or one the store already holds (made over the
        AWS API, or by another app); the latter is looked up when the consumers start.
        """
        queue_name = queue.name if isinstance(queue, Queue) else queue
        if queue_name not in self.queues and self._backend is not None:
            self._backend.get_queue(queue_name)  # QueueDoesNotExist now, if the store is open

        def declare(handler: Handler) -> Function:
            function: Function = self.function(handler, **function_options)
            self.consumers.append(
                ConsumerSpec(
                    queue=queue_name,
                    function=function.name,
                    batch_size=batch_size,
                    batch_window=batch_window,
                    max_concurrency=max_concurrency,
                    report_batch_item_failures=report_batch_item_failures,
                    retry=retry or RetryPolicy(),
                    retry_later_limit=retry_later_limit,
                )
            )
            return function

        return declare

    def subscriber(
        self,
        topic: Topic | str,
        *,
        queue: str,
        filter_policy: Mapping[str, Any] | str | None = None,
        filter_scope: str = "attributes",
        raw: bool = False,
        **options: Any,
    ) -> Callable[[Handler], Function]:
        """Topic -> own durable queue (+ DLQ) -> consumer function, in one declaration.

        `options` are queue options (visibility_timeout, delay, retention, max_receive_count,
        fifo, content_based_deduplication), consumer options (batch_size, batch_window,
        max_concurrency, report_batch_item_failures, retry) and function options.
        """
        handle = topic if isinstance(topic, Topic) else self.topics.get(topic)
        if handle is None:
            raise TopicDoesNotExist(str(topic))
        queue_options = {k: options.pop(k) for k in list(options) if k in QUEUE_OPTIONS}
        retry = options.get("retry") or RetryPolicy()
        queue_options.setdefault("max_receive_count", retry.max_attempts)
        fifo = bool(queue_options.get("fifo"))
        suffix = ".fifo" if fifo else ""
        base = queue.removesuffix(".fifo")
        dead_letter = self.queue(f"{base}-dlq{suffix}", fifo=fifo)
        target = self.queue(queue, dead_letter=dead_letter, **queue_options)
        handle.subscribe(target, filter_policy=filter_policy, filter_scope=filter_scope, raw=raw)
        return self.consumer(target, **options)


class _UnservedApi:
    """`app.api` in a function worker (`runtime/role.py`): any call or setting on it is
    accepted and dropped."""

    def __getattr__(self, name: str) -> Any:
        return self._accept

    def __setattr__(self, name: str, value: Any) -> None:
        pass

    def _accept(self, *args: Any, **kwargs: Any) -> _UnservedApi:
        return self


_UNSERVED_API = _UnservedApi()


class _AppInvoker:
    """Runs an app's functions in its runtime and queues their asynchronous invocations."""

    def __init__(self, app: App) -> None:
        self.app = app

    def run(self, function: Function, payload: Any, log_fields: Mapping[str, Any]) -> Outcome:
        """Run now in a worker of the function's pool (TooManyRequests when all are busy)."""
        return self.app.runtime.pool(function).invoke(payload, block=False, log_fields=log_fields)

    def enqueue(self, function: Function, body: str) -> None:
        """Store the invocation in the function's asynchronous queue."""
        self.app.queue_for(function.spec.async_queue).send(body)


__all__ = ["DEFAULT_DATA_DIR", "App", "Queue", "Topic"]
