"""State machines on the wire <-> fanstack's workflows: ARNs, the stored workflow, what AWS keeps
beside it.

A state machine is a workflow: its name, definition and type live in the workflows table that
`app.workflow(...)` stores declared workflows in, so the worker role's engine runs it and
`fanstack workflows` lists it. What AWS has and fanstack only keeps (the role, the definition
text as given, tags, logging and tracing settings, creation and update times) lives in one row
per state machine of its own table.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.protocols.errors import AwsError
from fanstack.backends.base import Backend
from fanstack.core.asl.definition import parse_definition
from fanstack.core.asl.states import StateMachine
from fanstack.core.errors import InvalidDefinition, StateMachineDoesNotExist, ValidationException
from fanstack.workflows import EXPRESS, STANDARD, Workflow, express
from fanstack.workflows.starts import check_name
from fanstack.workflows.store import WORKFLOWS_TABLE, ExecutionRecord
from fanstack.workflows.tasks import Tasks

MACHINE_EXTRAS_TABLE = "fanstack-aws-state-machines"
DEFAULT_ROLE = "role/fanstack-workflows"  # the role a machine declared in Python reports
TYPES = (STANDARD, EXPRESS)
DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineExtras:
    """What a state machine has on AWS beyond its workflow."""

    created: float
    updated: float
    role_arn: str | None = None
    definition_text: str | None = None  # as the caller gave it (Describe answers with it)
    tags: dict[str, str] = field(default_factory=dict)
    logging: dict[str, Any] | None = None
    tracing: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> MachineExtras:
        """From the stored form (unknown fields ignored)."""
        known = {k: v for k, v in value.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# -- ARNs ------------------------------------------------------------------------------------


def machine_arn(call: CallContext, name: str) -> str:
    """`arn:aws:states:<region>:<account>:stateMachine:<name>`."""
    return call.arn("states", f"stateMachine:{name}")


def execution_arn(call: CallContext, record: ExecutionRecord) -> str:
    """`arn:aws:states:<region>:<account>:execution:<machine>:<name>`."""
    return call.arn("states", f"execution:{record.workflow}:{record.name}")


def machine_name(arn: Any) -> str:
    """The state machine an ARN names (InvalidArn if it names none)."""
    parts = str(arn or "").split(":")
    if len(parts) != 7 or parts[0] != "arn" or parts[5] != "stateMachine" or not parts[6]:
        raise AwsError("InvalidArn", f"Invalid Arn: 'Resource type not valid in this context: "
                                     f"{arn}'")  # fmt: skip
    return parts[6]


def execution_key(arn: Any) -> str:
    """`<machine>:<name>` of an execution ARN (InvalidArn if it is not one)."""
    parts = str(arn or "").split(":")
    if len(parts) != 8 or parts[0] != "arn" or parts[5] not in ("execution", "express"):
        raise AwsError("InvalidArn", f"Invalid Arn: 'Resource type not valid in this context: "
                                     f"{arn}'")  # fmt: skip
    return f"{parts[6]}:{parts[7]}"


# -- definitions -----------------------------------------------------------------------------


def checked_definition(name: str, definition: Any, type: str) -> StateMachine:
    """The parsed definition, validated as `app.workflow(...)` validates it (InvalidDefinition
    naming the state and field), Express's limits included."""
    if type not in TYPES:
        raise ValidationException(
            f"Value '{type}' at 'type' failed to satisfy constraint: "
            "Member must satisfy enum value set: [STANDARD, EXPRESS]"
        )
    machine = parse_definition(str(definition or ""))
    if type == EXPRESS:
        try:
            express.check_definition(name, machine)
        except ValidationException as error:
            raise InvalidDefinition(str(error)) from None
    return machine


def compact(machine: StateMachine) -> str:
    """A definition as the workflows table keeps it (as `Workflow.definition` writes it)."""
    return json.dumps(machine.definition, separators=(",", ":"))


def revision_id(definition: str) -> str:
    """A revision id that changes when the definition does."""
    return hashlib.sha256(definition.encode()).hexdigest()[:32]


def page_size(params: Mapping[str, Any]) -> int:
    """`maxResults` (0 or absent: the default page of 100; at most 1000)."""
    limit = int(params.get("maxResults") or 0)
    if not 0 <= limit <= MAX_PAGE:
        raise ValidationException(
            f"Value '{limit}' at 'maxResults' failed to satisfy constraint: "
            f"Member must have value less than or equal to {MAX_PAGE}"
        )
    return limit or DEFAULT_PAGE


def check_machine_name(name: str) -> None:
    """InvalidName unless `name` is a valid state machine name."""
    try:
        check_name("state machine", name)
    except ValidationException as error:
        raise AwsError("InvalidName", f"Invalid Name: '{name}' ({error})") from None


# -- the stored workflow and its extras ------------------------------------------------------


def stored_machine(call: CallContext, name: str) -> Mapping[str, Any]:
    """The workflows table's row of a state machine (StateMachineDoesNotExist if none)."""
    item = call.backend.table_get(WORKFLOWS_TABLE, name)
    if item is None:
        raise StateMachineDoesNotExist(f"State Machine Does Not Exist: '{machine_arn(call, name)}'")
    return item.value


def is_declared(call: CallContext, name: str) -> bool:
    """Whether the app's code declares this workflow (its code, not the wire, owns it)."""
    return name in call.app.workflows.declared


def workflow_of(call: CallContext, name: str) -> Workflow:
    """The workflow of a state machine: the app's declared one, or one stored by the wire."""
    declared = call.app.workflows.declared.get(name)
    if declared is not None:
        return declared
    stored = stored_machine(call, name)
    provider = call.app.backend_provider
    tasks = Tasks(provider, call.app.workflows.run_function)
    machine = parse_definition(stored["definition"])
    return Workflow(name, machine, str(stored.get("type", STANDARD)), provider, run_task=tasks)


def extras_of(backend: Backend, name: str) -> MachineExtras:
    """A state machine's extras (for one declared in Python, created now)."""
    item = backend.table_get(MACHINE_EXTRAS_TABLE, name)
    if item is not None:
        return MachineExtras.from_dict(item.value)
    now = time.time()
    extras = MachineExtras(created=now, updated=now)
    save_extras(backend, name, extras)
    return extras


def save_extras(backend: Backend, name: str, extras: MachineExtras) -> None:
    """Store a state machine's extras."""
    backend.table_put(MACHINE_EXTRAS_TABLE, name, extras.to_dict())


def forget_extras(backend: Backend, name: str) -> None:
    """Drop a deleted state machine's extras."""
    backend.table_delete(MACHINE_EXTRAS_TABLE, name)


def role_of(call: CallContext, extras: MachineExtras) -> str:
    """The role a state machine reports (the one given, or fanstack's)."""
    return extras.role_arn or f"arn:aws:iam::{call.settings.account}:{DEFAULT_ROLE}"


def definition_text(stored: Mapping[str, Any], extras: MachineExtras) -> str:
    """The definition as the caller gave it, while it is still the stored one."""
    text = str(stored["definition"])
    given = extras.definition_text
    if given is not None and same_definition(given, text):
        return given
    return text


def same_definition(left: str, right: str) -> bool:
    """Whether two definition texts are the same JSON document."""
    try:
        return bool(json.loads(left) == json.loads(right))
    except ValueError:
        return False
