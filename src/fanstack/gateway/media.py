"""Request media types and charsets: which bodies are JSON, and how their bytes become text.

A JSON body is `application/json` or any `application/*+json` (RFC 6839), nothing that merely
contains "json". A request without a Content-Type is taken as `application/json`, as API
Gateway does. A declared charset is honoured when it is a Unicode encoding; anything else is
415 Unsupported Media Type, as API Gateway answers a content type it has no mapping for.
"""

from __future__ import annotations

import codecs
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

JSON = "application/json"
CHARSETS = ("utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"\s*({_TOKEN})/({_TOKEN})\s*")
_PARAMETER = re.compile(rf';\s*({_TOKEN})\s*=\s*({_TOKEN}|"(?:[^"\\]|\\.)*")\s*')


class UnsupportedMediaType(Exception):
    """The body's Content-Type (or its charset) is not one the route accepts: a 415."""


@dataclass(frozen=True, slots=True)
class MediaType:
    """A parsed Content-Type: lower-case type and subtype, and its parameters."""

    type: str
    subtype: str
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_json(self) -> bool:
        """`application/json` or a structured `application/*+json` type."""
        return self.type == "application" and (
            self.subtype == "json" or self.subtype.endswith("+json")
        )

    @property
    def charset(self) -> str | None:
        """The declared charset, lower-case, or None."""
        return self.parameters.get("charset")

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}"


def parse_media_type(header: str) -> MediaType:
    """Parse a Content-Type header (RFC 9110); raise UnsupportedMediaType if malformed."""
    match = _MEDIA_TYPE.match(header)
    if match is None:
        raise UnsupportedMediaType(f"content-type {header!r} is not a media type")
    parameters: dict[str, str] = {}
    position = match.end()
    while position < len(header):
        parameter = _PARAMETER.match(header, position)
        if parameter is None:
            raise UnsupportedMediaType(f"content-type {header!r} has a malformed parameter")
        name, value = parameter.group(1).lower(), parameter.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        parameters[name] = value.lower() if name == "charset" else value
        position = parameter.end()
    return MediaType(match.group(1).lower(), match.group(2).lower(), parameters)


@functools.lru_cache(maxsize=256)  # clients send a few Content-Types over and over
def request_media_type(header: str | None) -> MediaType:
    """The media type of a request body; without a Content-Type, `application/json`."""
    if header is None or not header.strip():
        return MediaType("application", "json")
    return parse_media_type(header)


def decode(raw: bytes, media_type: MediaType) -> str:
    """The body as text in its declared charset (UTF-8 and its JSON siblings if none).

    Raises UnsupportedMediaType for a charset that is not a Unicode encoding, ValueError
    (UnicodeDecodeError) for bytes that are not in the charset.
    """
    encoding = _encoding(media_type.charset, raw, json_body=media_type.is_json)
    text = raw.decode(encoding)
    return text[1:] if text.startswith("\ufeff") else text  # a byte order mark is not content


def _encoding(charset: str | None, raw: bytes, *, json_body: bool) -> str:
    if charset is None:
        # RFC 8259 JSON is UTF-8; json.detect_encoding also recognises UTF-16/32 (RFC 4627).
        return json.detect_encoding(raw) if json_body else "utf-8"
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        name = charset
    if name == "ascii":
        return "utf-8"  # a subset of UTF-8
    if name not in CHARSETS:
        raise UnsupportedMediaType(
            f"charset {charset!r} is not supported; use one of {', '.join(CHARSETS)}"
        )
    return name
