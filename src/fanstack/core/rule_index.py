"""An index of event patterns that finds the ones matching an event without testing each one.

The event is flattened once into field path -> leaf values. Each branch of each pattern is filed
under one *anchor*, a condition it cannot match without:

- a condition whose rules are all exact values, `equals-ignore-case`, `prefix` or `suffix` is
  filed in dicts of its field: exact values by `value_key`, case-folded values by the lowered
  value, prefixes and suffixes by themselves, found again by slicing the event's value at each
  length filed for that field. Of those, the anchor is the one whose keys the fewest branches
  share, so a common `source` does not make every rule of that source a candidate;
- else a condition that needs its field present (`numeric`, `anything-but`, `wildcard`, `cidr`,
  `exists: true`...) is filed under its field and tried whenever the event has that field;
- a branch with no such condition (only `exists: false`, or none) is tried for every event.

A branch found through its anchor is a candidate; its other conditions are then checked with
`Condition.holds`, the very test `EventPattern.matches` uses, so both give the same answers. The
work per event grows with the event's fields and the candidates, not with the number of rules.
The index is immutable: to add or remove a rule, build a new one (10,000 rules build in well
under a second).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from fanstack.core.event_pattern import Branch, Condition, EventPattern, Paths, flatten
from fanstack.core.matchers import EQUALS_IGNORE_CASE, EXACT, PREFIX, SUFFIX, value_key

K = TypeVar("K", bound=Hashable)

_LOOKUP_KINDS = frozenset((EXACT, EQUALS_IGNORE_CASE, PREFIX, SUFFIX))

LookupKey = tuple[str, str, bool, Any]
"""Where a rule is filed: field, matcher kind, ignore_case, operand."""


class _Affixes:
    """Branch ids by prefix (or suffix) of one field, and the lengths to slice values at."""

    __slots__ = ("fold", "ids", "lengths", "prefix")

    def __init__(self, *, prefix: bool, fold: bool) -> None:
        self.prefix = prefix
        self.fold = fold
        self.ids: dict[str, list[int]] = {}
        self.lengths: list[int] = []

    def add(self, affix: str, branch: int) -> None:
        self.ids.setdefault(affix, []).append(branch)
        self.lengths = sorted({*self.lengths, len(affix)})

    def collect(self, value: str, found: set[int]) -> None:
        text = value.lower() if self.fold else value
        size = len(text)
        for length in self.lengths:
            if length > size:
                return
            ids = self.ids.get(text[:length] if self.prefix else text[size - length :])
            if ids:
                found.update(ids)


class _FieldIndex:
    """Everything filed under one field path."""

    __slots__ = ("affixes", "exact", "folded", "scan")

    def __init__(self) -> None:
        self.exact: dict[tuple[str, Any] | None, list[int]] = {}
        self.folded: dict[str, list[int]] = {}
        self.affixes: dict[tuple[bool, bool], _Affixes] = {}
        self.scan: list[int] = []

    def add(self, kind: str, ignore_case: bool, operand: Any, branch: int) -> None:
        if kind == EXACT:
            self.exact.setdefault(operand, []).append(branch)
        elif kind == EQUALS_IGNORE_CASE:
            self.folded.setdefault(operand, []).append(branch)
        else:
            shape = (kind == PREFIX, ignore_case)
            if shape not in self.affixes:
                self.affixes[shape] = _Affixes(prefix=kind == PREFIX, fold=ignore_case)
            self.affixes[shape].add(operand, branch)

    def collect(self, values: list[Any], found: set[int]) -> None:
        """Add the branches whose anchor on this field any of `values` satisfies."""
        if self.scan:
            found.update(self.scan)
        for value in values:
            if self.exact:
                ids = self.exact.get(value_key(value))
                if ids:
                    found.update(ids)
            if not isinstance(value, str):
                continue
            if self.folded:
                ids = self.folded.get(value.lower())
                if ids:
                    found.update(ids)
            for affixes in self.affixes.values():
                affixes.collect(value, found)


class RuleIndex(Generic[K]):
    """Event patterns by key, answering which of them match an event (event-ruler's job)."""

    def __init__(self, rules: Iterable[tuple[K, EventPattern]]) -> None:
        """Index `rules`; patterns given under the same key are ORed into one rule."""
        self._build((key, branch) for key, pattern in rules for branch in pattern.branches)

    @classmethod
    def of_branches(cls, branches: Iterable[tuple[K, Branch]]) -> RuleIndex[K]:
        """Index branches compiled elsewhere, each under its rule's key (a key's are ORed)."""
        index = cls.__new__(cls)
        index._build(branches)
        return index

    def _build(self, keyed: Iterable[tuple[K, Branch]]) -> None:
        self._keys: list[K] = []
        positions: dict[K, int] = {}
        branches: list[tuple[int, Branch]] = []
        for key, branch in keyed:
            if key not in positions:
                positions[key] = len(self._keys)
                self._keys.append(key)
            branches.append((positions[key], branch))
        self._fields: dict[str, _FieldIndex] = {}
        self._always: list[int] = []
        self._rule_of: list[int] = []
        self._rest: list[tuple[Condition, ...]] = []
        self._paths = Paths(condition.field for _, branch in branches for condition in branch)
        sharing = Counter(key for _, branch in branches for key in _branch_keys(branch))
        for rule, branch in branches:
            self._file(rule, branch, sharing)

    def __len__(self) -> int:
        """The number of rules (distinct keys)."""
        return len(self._keys)

    def matching(self, event: Mapping[str, Any]) -> list[K]:
        """The keys whose pattern matches `event`, in the order given, each once."""
        return self.matching_fields(flatten(event, self._paths))

    def matching_fields(self, fields: Mapping[str, list[Any]]) -> list[K]:
        """The keys whose branches hold for leaf values by field path (an event, flattened)."""
        found: set[int] = set(self._always)
        for path, values in fields.items():
            entry = self._fields.get(path)
            if entry is not None:
                entry.collect(values, found)
        matched: set[int] = set()
        for branch in found:
            rule = self._rule_of[branch]
            if rule in matched:
                continue
            for condition in self._rest[branch]:
                if not condition.holds(fields.get(condition.field)):
                    break
            else:
                matched.add(rule)
        return [self._keys[rule] for rule in sorted(matched)]

    def _file(self, rule: int, branch: Branch, sharing: Counter[LookupKey]) -> None:
        number = len(self._rule_of)
        self._rule_of.append(rule)
        lookups = [c for c in branch if _lookup_keys(c)]
        if lookups:
            anchor = min(lookups, key=lambda c: sum(sharing[k] for k in _lookup_keys(c)))
            for matcher in anchor.matchers:
                entry = self._entry(anchor.field)
                entry.add(matcher.kind, matcher.ignore_case, matcher.operand, number)
            self._rest.append(tuple(c for c in branch if c is not anchor))
            return
        self._rest.append(branch)
        required = [c for c in branch if c.exists is not False]
        if not required:
            self._always.append(number)
            return
        quietest = min(required, key=lambda c: len(self._scan_of(c.field)))
        self._entry(quietest.field).scan.append(number)

    def _scan_of(self, path: str) -> list[int]:
        entry = self._fields.get(path)
        return entry.scan if entry is not None else []

    def _entry(self, path: str) -> _FieldIndex:
        entry = self._fields.get(path)
        if entry is None:
            entry = self._fields[path] = _FieldIndex()
        return entry


def _lookup_keys(condition: Condition) -> list[LookupKey]:
    """Where a condition can be filed for dict lookups; empty if it must be tested instead."""
    if condition.exists is not None or not condition.matchers:
        return []
    if any(matcher.kind not in _LOOKUP_KINDS for matcher in condition.matchers):
        return []
    return [(condition.field, m.kind, m.ignore_case, m.operand) for m in condition.matchers]


def _branch_keys(branch: Branch) -> set[LookupKey]:
    return {key for condition in branch for key in _lookup_keys(condition)}
