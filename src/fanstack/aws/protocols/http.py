"""The HTTP request and response the codec speaks: plain values, independent of any server."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An HTTP request as received: `query` is the raw query string, header names are lower-case."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The value of header `name` (any case), or None."""
        return self.headers.get(name.lower())

    def query_pairs(self) -> list[tuple[str, str]]:
        """The query string's name/value pairs in order, percent-decoded (`a` alone gives `a=`)."""
        return parse_qsl(self.query, keep_blank_values=True)

    def form_pairs(self) -> list[tuple[str, str]]:
        """Query-protocol parameters: the form-encoded body's pairs, else the query string's."""
        content_type = (self.header("content-type") or "").split(";")[0].strip().lower()
        if self.body and content_type in ("", FORM_CONTENT_TYPE):
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError:
                return []
            return parse_qsl(text, keep_blank_values=True)
        return self.query_pairs()


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An HTTP response to send: status, headers (as the service spells them) and body."""

    status: int
    headers: dict[str, str]
    body: bytes
