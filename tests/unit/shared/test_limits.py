"""What the request guard counts as a NUL character in JSON text, and as a JSON body."""

from __future__ import annotations

import orjson
import pytest

from shared.http.limits import holds_nul, is_json_media_type


@pytest.mark.parametrize(
    "value",
    ["\x00", "a\x00b", "\\\x00", {"key\x00": 1}, ["ok", {"deep": ["\x00"]}]],
    ids=["alone", "inside", "after-a-backslash", "in-a-key", "nested"],
)
def test_a_nul_anywhere_is_found(value: object) -> None:
    assert holds_nul(orjson.dumps(value))


@pytest.mark.parametrize(
    "value",
    ["", "plain text", "\\u0000", "\\\\u0000", "\\", "\u00e9t\u00e9 \U0001f600", 0],
    ids=["empty", "plain", "escaped-backslash", "two-escaped-backslashes", "backslash", "unicode", "number"],
)
def test_text_without_a_nul_is_not_refused(value: object) -> None:
    assert not holds_nul(orjson.dumps(value))


def test_escapes_are_read_as_a_json_parser_reads_them() -> None:
    assert holds_nul(rb'"\\\u0000"')  # an escaped backslash, then a NUL
    assert not holds_nul(rb'"\\u0000"')  # an escaped backslash, then the letters u0000


@pytest.mark.parametrize(
    "content_type",
    [
        b"application/json",
        b"application/fhir+json",
        b"Application/JSON",
        b"application/json; charset=utf-8",
        b'application/fhir+json;charset="UTF-8"',
        b"application/json; fhirVersion=4.0",
    ],
)
def test_json_media_types_are_read(content_type: bytes) -> None:
    assert is_json_media_type(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        b"",
        b"text/plain",
        b"text/json",
        b"application/xml",
        b"application/fhir+xml",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"application/json; charset=utf-16",
        b"application/json; charset=latin-1",
        b"application/jsonx",
        b"application/problem+json",
    ],
)
def test_anything_else_is_not(content_type: bytes) -> None:
    assert not is_json_media_type(content_type)
