"""What the request guard counts as a NUL character in JSON text."""

from __future__ import annotations

import orjson
import pytest

from shared.http.limits import holds_nul


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
