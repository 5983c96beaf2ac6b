"""A harness for workflow conformance tests: an app's workflows on a backend, the engine driven
step by step, tasks answered by plain Python callables."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fanstack.backends.base import Backend
from fanstack.workflows import Workflows
from fanstack.workflows.engine import Engine
from fanstack.workflows.steps import Step
from fanstack.workflows.store import STEP_QUEUE
from fanstack.workflows.tasks import Tasks

from .conftest import Clock


class Harness:
    """An app's workflows on a backend, with tasks answered by plain Python callables."""

    def __init__(self, backend: Backend, clock: Clock) -> None:
        self.backend = backend
        self.clock = clock
        self.handlers: dict[str, Callable[[Any], Any]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.workflows = Workflows(lambda: backend, lambda: backend, self._no_functions)
        self.engine = Engine(backend, self.workflows.machine, self.run_task)
        self.services = Tasks(lambda: backend, self._no_functions)  # AWS service integrations

    def _no_functions(self, name: str, payload: Any) -> Any:
        raise AssertionError("tasks here are answered by the harness")

    def run_task(self, resource: str, payload: Any, context: Mapping[str, Any]) -> Any:
        self.calls.append((resource, payload))
        if resource.startswith("arn:aws:states:::"):
            return self.services(resource, payload, context)
        return self.handlers[resource](payload)

    def declare(self, name: str, definition: Mapping[str, Any]) -> Any:
        return self.workflows.workflow(name, definition)

    def run(self, *, rounds: int = 200) -> int:
        """Run every due step until none is left; how many ran."""
        ran = 0
        for _ in range(rounds):
            batch = self.backend.receive(STEP_QUEUE, max_messages=10, wait_seconds=0)
            if not batch:
                return ran
            for message in batch:
                self.engine_process(message.body)
                self.backend.delete_messages(STEP_QUEUE, [message.receipt_handle])
                ran += 1
        raise AssertionError("steps kept coming")

    def engine_process(self, body: str) -> None:
        self.engine.process(Step.from_json(body))

    def run_for(self, seconds: float, step: float = 1.0) -> None:
        """Let `seconds` pass, running whatever becomes due."""
        waited = 0.0
        while waited < seconds:
            self.run()
            self.clock.advance(step)
            waited += step
        self.run()
