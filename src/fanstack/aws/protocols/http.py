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
    # The form's pairs, read once: identifying the service and parsing both need them.
    _form: list[tuple[str, str]] | None = field(default=None, compare=False, repr=False)

    def header(self, name: str) -> str | None:
        """The value of header `name` (any case), or None."""
        return self.headers.get(name.lower())

    def query_pairs(self) -> list[tuple[str, str]]:
        """The query string's name/value pairs in order, percent-decoded (`a` alone gives `a=`)."""
        return parse_qsl(self.query, keep_blank_values=True)

    def form_pairs(self) -> list[tuple[str, str]]:
        """Query-protocol parameters: the form-encoded body's pairs, else the query string's."""
        if self._form is None:
            object.__setattr__(self, "_form", self._read_form())
        assert self._form is not None
        return self._form

    def _read_form(self) -> list[tuple[str, str]]:
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
