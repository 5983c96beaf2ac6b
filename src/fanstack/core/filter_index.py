"""An index of SNS filter policies: the subscriptions a message reaches, found without testing each.

Each OR-free branch of each policy (`FilterPolicy.branches`) is filed in a `RuleIndex`, the index
of event patterns, under one key the branch cannot match without: a key of exact values, `prefix`,
`suffix` or `equals-ignore-case` is found by dict lookups on the message's values, a key with
other operators (`numeric`, `anything-but`, `cidr`) whenever the message has that key, and a
branch of `exists` keys only for every message. `exists` keys are never filed: `exists: false`
holds where the key is absent, and `exists: true` on a Binary attribute, which offers no value to
look up. Attribute-scope policies are looked up by the message's attributes, body-scope ones by
the fields of its JSON body.

The index only narrows: each policy it finds is then tested with `FilterPolicy.matches` itself,
so the answers are the policies' own. The work per message grows with the message's keys and the
policies found, not with the number of policies; below `INDEXED_FROM` policies, testing each one
is cheaper, and is what it does. The index is immutable: when subscriptions change, build a new
one (200 policies take about a millisecond).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

from fanstack.core.event_pattern import Branch, Condition
from fanstack.core.filter_policy import FilterPolicy, attribute_values, parse_body
from fanstack.core.message import MessageAttribute
from fanstack.core.rule_index import RuleIndex
from fanstack.core.specs import BODY_SCOPE

K = TypeVar("K")

INDEXED_FROM = 6
"""Fewer policies are tested one by one: a lookup costs about what testing 4 to 6 policies does."""


class FilterIndex(Generic[K]):
    """Filter policies by key, answering which of them a message matches (SNS fan-out's job)."""

    def __init__(self, policies: Iterable[tuple[K, FilterPolicy | None]]) -> None:
        """Index `policies`, each under its key; a key without a policy matches every message."""
        self._entries = list(policies)
        self._policies = {
            position: policy
            for position, (_, policy) in enumerate(self._entries)
            if policy is not None
        }
        self._unfiltered = [n for n, (_, policy) in enumerate(self._entries) if policy is None]
        self._indexed = len(self._policies) >= INDEXED_FROM
        self._by_attributes, self._by_body = _file(self._policies)

    def matching(self, *, attributes: Mapping[str, MessageAttribute], body: str) -> list[K]:
        """The keys whose policy a message with these attributes and body matches, in order."""
        if not self._indexed:
            return [
                key
                for key, policy in self._entries
                if policy is None or policy.matches(attributes=attributes, body=body)
            ]
        found = self._unfiltered
        if len(self._by_attributes):
            # An attribute offering no values (Binary) holds no filed condition: leave it out.
            fields = {
                name: values
                for name in attributes
                if (values := attribute_values(attributes, name))
            }
            candidates = self._by_attributes.matching_fields(fields)
            found = found + self._confirmed(candidates, attributes, body)
        if len(self._by_body):
            document = parse_body(body)
            if isinstance(document, Mapping):
                candidates = self._by_body.matching(document)
                found = found + self._confirmed(candidates, attributes, body)
        return [self._entries[position][0] for position in sorted(found)]

    def _confirmed(
        self, candidates: list[int], attributes: Mapping[str, MessageAttribute], body: str
    ) -> list[int]:
        return [
            position
            for position in candidates
            if self._policies[position].matches(attributes=attributes, body=body)
        ]


def _file(policies: Mapping[int, FilterPolicy]) -> tuple[RuleIndex[int], RuleIndex[int]]:
    """The branches of attribute-scope and of body-scope policies, by position, without `exists`."""
    by_attributes: list[tuple[int, Branch]] = []
    by_body: list[tuple[int, Branch]] = []
    for position, policy in policies.items():
        filed = by_body if policy.scope == BODY_SCOPE else by_attributes
        for branch in policy.branches():
            needed = (Condition(c.field, c.matchers, None) for c in branch if c.exists is None)
            filed.append((position, tuple(needed)))
    return RuleIndex.of_branches(by_attributes), RuleIndex.of_branches(by_body)
