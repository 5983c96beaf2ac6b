"""A rest-json operation's `requestUri` template, matched against a request's method and path.

Templates look like `/schedules/{Name}`, `/buckets/{Key+}` (a greedy label spanning `/`) or
`/things/{Id}?tagging&mode=full` (query literals the request must carry). Labels match the raw,
percent-encoded path, so an encoded `/` stays inside a label; their values are decoded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

_LABEL = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True, slots=True)
class UriTemplate:
    """One compiled `method` + `requestUri` of an operation."""

    method: str
    pattern: re.Pattern[str]
    labels: tuple[str, ...]
    query_literals: tuple[tuple[str, str], ...]
    literal_length: int

    @classmethod
    def compile(cls, method: str, request_uri: str) -> UriTemplate:
        """Compile `request_uri` (e.g. `/2015-03-31/functions/{FunctionName}/invocations`)."""
        path, _, query = request_uri.partition("?")
        regex, labels, position = [], [], 0
        for index, found in enumerate(_LABEL.finditer(path)):
            regex.append(re.escape(path[position : found.start()]))
            name = found.group(1)
            greedy = name.endswith("+")
            labels.append(name.rstrip("+"))
            regex.append(f"(?P<l{index}>.+)" if greedy else f"(?P<l{index}>[^/]+)")
            position = found.end()
        regex.append(re.escape(path[position:]))
        literals = tuple(parse_qsl(query, keep_blank_values=True)) if query else ()
        literal_length = len(_LABEL.sub("", path))
        pattern = re.compile("".join(regex) + r"/?\Z")
        return cls(method.upper(), pattern, tuple(labels), literals, literal_length)

    def match(
        self, method: str, path: str, query_pairs: Sequence[tuple[str, str]]
    ) -> dict[str, str] | None:
        """The decoded label values if the request matches this template, else None."""
        if method.upper() != self.method:
            return None
        found = self.pattern.match(path)
        if found is None:
            return None
        present = dict(query_pairs)
        for name, value in self.query_literals:
            if name not in present or (value and present[name] != value):
                return None
        return {label: unquote(found.group(f"l{i}")) for i, label in enumerate(self.labels)}

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Sort key preferring the most literal template when several match."""
        return (self.literal_length, len(self.query_literals), -len(self.labels))
