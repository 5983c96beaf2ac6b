"""What EventBridge resources have on AWS and fanstack only keeps: tags, descriptions of buses
and replays, KMS keys, dead-letter settings of buses, role ARNs, creation times; and the tag
operations.

One item per resource in the `fanstack-aws-events` table, keyed like the catalog's items
(`bus/<bus>`, `rule/<bus>/<rule>`, `target/<bus>/<rule>/<id>`, `archive/<name>`,
`replay/<name>`); what fanstack acts on (patterns, targets, states) stays in the bus catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fanstack.aws.context import CallContext
from fanstack.aws.services.events_names import rule_of_arn, split_arn
from fanstack.backends.base import Backend
from fanstack.bus.catalog import Catalog
from fanstack.core.errors import LimitExceeded, ValidationException

EXTRAS_TABLE = "fanstack-aws-events"
MAX_TAGS = 50


def extras_of(backend: Backend, key: str) -> dict[str, Any]:
    """What is kept for a resource (empty if nothing)."""
    item = backend.table_get(EXTRAS_TABLE, key)
    return dict(item.value) if item is not None else {}


def keep(backend: Backend, key: str, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into what is kept for a resource (a None value forgets that field)."""
    kept = {**extras_of(backend, key), **changes}
    kept = {name: value for name, value in kept.items() if value is not None}
    backend.table_put(EXTRAS_TABLE, key, kept)
    return kept


def forget(backend: Backend, *keys: str, prefix: str | None = None) -> None:
    """Forget what is kept for some resources (and for every key starting with `prefix`)."""
    for key in keys:
        backend.table_delete(EXTRAS_TABLE, key)
    if prefix is not None:
        for item in list(backend.table_items(EXTRAS_TABLE, prefix=prefix)):
            backend.table_delete(EXTRAS_TABLE, item.key)


def made_now(backend: Backend) -> dict[str, Any]:
    """The kept fields of a resource made now: its creation and modification times."""
    now = backend.clock()
    return {"created": now, "modified": now}


def times(
    kept: Mapping[str, Any], created_name: str, modified_name: str | None = None
) -> dict[str, Any]:
    """A resource's kept times as the wire's members (only those known)."""
    answer: dict[str, Any] = {}
    if "created" in kept:
        answer[created_name] = kept["created"]
    if modified_name is not None and "modified" in kept:
        answer[modified_name] = kept["modified"]
    return answer


# -- tags ------------------------------------------------------------------------------------


def tags_from_wire(tags: Any) -> dict[str, str]:
    """`[{"Key": ..., "Value": ...}]` as a mapping."""
    return {str(tag["Key"]): str(tag.get("Value", "")) for tag in tags or []}


def tags_to_wire(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """A mapping of tags as `[{"Key": ..., "Value": ...}]`, by key."""
    return [{"Key": key, "Value": tags[key]} for key in sorted(tags)]


def add_tags(backend: Backend, key: str, tags: Mapping[str, str]) -> None:
    """Add or overwrite tags of a resource (LimitExceededException past 50)."""
    merged = {**extras_of(backend, key).get("tags", {}), **tags}
    if len(merged) > MAX_TAGS:
        raise LimitExceeded(
            f"The resource would have {len(merged)} tags; the limit is {MAX_TAGS} tags."
        )
    keep(backend, key, tags=merged)


def _tagged(call: CallContext, arn: str) -> str:
    """The extras key of a taggable resource (a bus or a rule), which must exist."""
    service, resource = split_arn(arn, "ResourceARN")
    catalog = Catalog(call.backend)
    if service == "events" and resource.startswith("event-bus/"):
        bus = resource.removeprefix("event-bus/")
        catalog.require_bus(bus)
        return f"bus/{bus}"
    if service == "events" and resource.startswith("rule/"):
        bus, rule = rule_of_arn(arn)
        catalog.require_bus(bus)
        catalog.rule(bus, rule)
        return f"rule/{bus}/{rule}"
    raise ValidationException(
        f"Parameter ResourceARN is not valid. Reason: {arn!r} is not an event bus or a rule."
    )


def tag_resource(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    add_tags(call.backend, _tagged(call, str(params.get("ResourceARN") or "")),
             tags_from_wire(params.get("Tags")))  # fmt: skip
    return {}


def untag_resource(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    key = _tagged(call, str(params.get("ResourceARN") or ""))
    removed = set(params.get("TagKeys") or [])
    tags = extras_of(call.backend, key).get("tags", {})
    keep(call.backend, key, tags={k: v for k, v in tags.items() if k not in removed})
    return {}


def list_tags_for_resource(call: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
    key = _tagged(call, str(params.get("ResourceARN") or ""))
    return {"Tags": tags_to_wire(extras_of(call.backend, key).get("tags", {}))}
