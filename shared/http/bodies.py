"""JSON request bodies read by the routes that take the raw request (the tablets' ingress), and stored as they
came (a FHIR resource is kept whole, in a jsonb column)."""

from __future__ import annotations

from typing import Any

import orjson

from shared.http.problems import NOT_JSON, NOT_UTF8, Problem, unreadable_body


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise unreadable_body(NOT_JSON if _is_utf8(body) else NOT_UTF8) from None


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def storable_json(value: Any) -> orjson.Fragment:
    """``value`` encoded once, here, as the jsonb codec (``shared.db.pool``) would write it; the codec passes a
    ``Fragment`` on as it is. orjson reads JSON nested up to 1,024 levels but writes 254 at most: a body nested
    deeper than that is the caller's 422 here. At the database it failed the statement of every request committed
    with it, and asyncpg's message about the value (its ``repr``) overflowed Python's stack: a 500."""
    try:
        return orjson.Fragment(orjson.dumps(value))
    except orjson.JSONEncodeError:
        raise Problem(
            422,
            "The request body is nested too deeply to be stored (more than 254 levels of arrays and objects); "
            "send the documented shape.",
            kind="too-deeply-nested",
        ) from None
