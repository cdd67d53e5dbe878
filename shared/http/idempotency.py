"""Idempotent ingress: the first response to an ``Idempotency-Key`` is stored and replayed to retries.

The keys are written by ``shared.http.ingress.IngressWriter`` in the transaction that does the work;
a concurrent retry with the same key waits on the unique index until that transaction commits, then
replays its response.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Header

from shared.http.problems import Problem

# What a key may be: what check_key takes, and what the documents say.
KEY_PATTERN = r"^[A-Za-z0-9._:\-]{8,128}$"
_KEY = re.compile(KEY_PATTERN)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


# The header as the documents give it: its form is what check_key takes (a FastAPI ``Header`` parameter would be
# documented as any text or null).
KEY_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 8, "maxLength": 128, "pattern": KEY_PATTERN}

# For routes that read the header themselves (no FastAPI ``Header`` parameter), where a missing key is refused.
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "8 to 128 characters among letters, digits and . _ : -; a retry sends the same key.",
    "schema": KEY_SCHEMA,
}

# A key a command takes if one is sent: the route reads it as ``OptionalKey`` and passes ``openapi_extra=OPTIONAL_KEY``.
OptionalKey = Annotated[str | None, Header(alias="Idempotency-Key", include_in_schema=False)]
OPTIONAL_KEY: dict[str, Any] = {
    "parameters": [
        {
            **IDEMPOTENCY_KEY_PARAMETER,
            "required": False,
            "description": "Optional: 8 to 128 characters among letters, digits and . _ : -; a retry with the same "
            "key gets the first answer, and the command is done once.",
        }
    ]
}


def check_key(key: str | None) -> str:
    if key is None:
        raise Problem(
            400,
            "Send an Idempotency-Key header (for example a UUID) so that a retry cannot submit twice.",
            kind="missing-idempotency-key",
        )
    if not _KEY.fullmatch(key):
        raise Problem(
            400,
            "The Idempotency-Key header must be 8 to 128 characters among letters, digits and . _ : -",
            kind="invalid-idempotency-key",
        )
    return key


def request_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def key_reused() -> Problem:
    return Problem(
        422,
        "This Idempotency-Key was already used for a different request; use a new key for new content.",
        kind="idempotency-key-reused",
    )


async def claim_key(conn: Any, *, scope: str, key: str, body_hash: str) -> StoredResponse | None:
    """For a command done in one transaction: claim the key in it (None: go ahead), or get the response
    the first request with this key received. A concurrent request with the same key waits on the unique
    index until the first one commits, then replays its response."""
    claimed = await conn.fetchval(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status, response) VALUES ($1, $2, $3, 0, '{}') "
        "ON CONFLICT DO NOTHING RETURNING 1",
        scope,
        key,
        body_hash,
    )
    if claimed:
        return None
    row = await conn.fetchrow(
        "SELECT request_hash, status, response FROM idempotency_keys WHERE scope = $1 AND key = $2", scope, key
    )
    if row["request_hash"] != body_hash:
        raise key_reused()
    return StoredResponse(row["status"], row["response"])


async def remember_response(conn: Any, *, scope: str, key: str, status: int, body: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status = $3, response = $4 WHERE scope = $1 AND key = $2", scope, key, status, body
    )
