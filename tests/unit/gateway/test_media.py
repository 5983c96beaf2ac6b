"""Media types and charsets of request bodies."""

from __future__ import annotations

import pytest

from fanstack.gateway.media import (
    MediaType,
    UnsupportedMediaType,
    decode,
    parse_media_type,
    request_media_type,
)


@pytest.mark.parametrize(
    ("header", "is_json"),
    [
        ("application/json", True),
        ("Application/JSON", True),
        ("application/json; charset=utf-8", True),
        ("application/vnd.api+json", True),
        ('application/merge-patch+json ; charset="UTF-8"', True),
        ("application/jsonp-evil", False),
        ("application/json-seq", False),
        ("text/json", False),
        ("text/plain; note=json", False),
        ("application/x-json+xml", False),
    ],
)
def test_only_application_json_and_structured_json_types_are_json(
    header: str, is_json: bool
) -> None:
    assert parse_media_type(header).is_json is is_json


@pytest.mark.parametrize(
    "header", ["json", "application/", "/json", "application/json;;", "application/json; x"]
)
def test_a_malformed_content_type_is_unsupported(header: str) -> None:
    with pytest.raises(UnsupportedMediaType, match="content-type"):
        parse_media_type(header)


def test_parameters_are_parsed_and_charset_lowercased() -> None:
    media = parse_media_type('application/json; Charset="UTF-16LE"; profile="a\\"b"')
    assert (media.type, media.subtype, str(media)) == ("application", "json", "application/json")
    assert media.charset == "utf-16le"
    assert media.parameters["profile"] == 'a"b'


def test_a_missing_content_type_means_json_as_on_api_gateway() -> None:
    assert request_media_type(None) == MediaType("application", "json")
    assert request_media_type("  ").is_json


@pytest.mark.parametrize(
    "charset", ["utf-8", "UTF8", "utf-16", "utf-16le", "utf-16-be", "utf-32", "utf-32le", "ascii"]
)
def test_unicode_charsets_are_honoured(charset: str) -> None:
    text = '{"name": "Zoë"}' if charset != "ascii" else '{"name": "Zoe"}'
    media = parse_media_type(f"application/json; charset={charset}")
    assert decode(text.encode(charset), media) == text


@pytest.mark.parametrize("charset", ["iso-8859-1", "latin1", "cp1252", "shift_jis", "nonsense"])
def test_other_charsets_are_unsupported(charset: str) -> None:
    with pytest.raises(UnsupportedMediaType, match="charset"):
        decode(b"{}", parse_media_type(f"application/json; charset={charset}"))


def test_without_a_charset_json_may_be_any_unicode_encoding_and_text_is_utf8() -> None:
    json_type, text_type = MediaType("application", "json"), MediaType("text", "plain")
    assert decode('{"a": "ü"}'.encode("utf-16-le"), json_type) == '{"a": "ü"}'
    assert decode("\ufeff{}".encode(), json_type) == "{}"  # a byte order mark is not content
    with pytest.raises(UnicodeDecodeError):
        decode("ü".encode("latin-1"), text_type)


def test_bytes_not_in_the_declared_charset_do_not_decode() -> None:
    with pytest.raises(UnicodeDecodeError):
        decode(b'{"a":1}', parse_media_type("application/json; charset=utf-16"))
