"""What a refusal may repeat of what a client sent, and how it describes the rest.

A refusal travels through proxies and their logs, and a tablet keeps it with the request it gave back: it repeats
a value only when it is a number, a boolean or a short code (a linkId, an option's code, a status, a date, a unit,
a reference such as "Device/tab-1"), and a key of the client's JSON only when it looks like an identifier (a field's
name, misspelt or not). Anything else may be what a patient or a relative wrote (a free-text answer sent where a
code was expected, a sentence in a reference, words written as a key): it says what kind of value it was, not what
it said. Pure: the services' domain code uses it as the HTTP layer does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

CODE_LIKE = re.compile(r"[A-Za-z0-9°._:/|+\-]{0,120}")
KEY_LIKE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def show(value: Any, like: re.Pattern[str] = CODE_LIKE) -> str:
    """A client value for an error sentence: JSON for a number, a boolean, null or a string ``like`` a code;
    otherwise only what kind of value it is (never free text, never a whole object)."""
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, str):
        if like.fullmatch(value):
            return json.dumps(value, ensure_ascii=False)
        return f"a text of {len(value)} characters (not repeated here)"
    if isinstance(value, list):
        return f"a list of {len(value)} values"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def quoted(text: str) -> str:
    """``show`` for a string the sentence puts in single quotes (an id, a canonical URL, a version)."""
    return f"'{text}'" if CODE_LIKE.fullmatch(text) else show(text)


def key_name(key: str) -> str:
    """A key of the client's JSON for an error sentence: itself when it looks like an identifier, otherwise what it
    is (``show``)."""
    return key if KEY_LIKE.fullmatch(key) else f"a key that is {show(key, KEY_LIKE)}"


# pydantic builds its messages from the schema (allowed values, lengths, patterns: ours), except where a parser
# explains what it read: a UUID's "found `J` at 0" repeats the caller's text. Those say what the value should be.
_PARSED_FROM_THE_INPUT = {
    "uuid_parsing": "Input should be a UUID: 32 hexadecimal digits (0-9, a-f) in groups of 8-4-4-4-12, such as "
    "0f8fad5b-d9cb-469f-a165-70867728950e",
}


def validation_message(error: Mapping[str, Any]) -> str:
    """The sentence for one of pydantic's validation errors (``type``, ``msg``): pydantic's own, unless it would
    repeat part of what the client sent."""
    return _PARSED_FROM_THE_INPUT.get(error.get("type", ""), error.get("msg") or "The value is not valid")


def place(loc: Sequence[Any]) -> tuple[str, str | None]:
    """Where a validation error is (pydantic's ``loc``), as a JSON pointer; and, when a key on the way is no
    identifier (an unexpected key holding words, say), the pointer stops above it and the key comes described
    (``key_name``), else None."""
    parts: list[str] = []
    for part in loc:
        if isinstance(part, str) and not KEY_LIKE.fullmatch(part):
            return "/" + "/".join(parts), key_name(part)
        parts.append(str(part))
    return "/" + "/".join(parts), None
