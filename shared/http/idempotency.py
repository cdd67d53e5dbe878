"""Idempotent ingress: the first response to an ``Idempotency-Key`` is stored and replayed to retries.

Used inside the request's transaction: a concurrent retry with the same key waits on the unique
index until the first request commits, then replays its response.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.http.problems import Problem

_KEY = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


def check_key(key: str | None) -> str:
    if key is None:
        raise Problem(
            400,
            "Send an Idempotency-Key header (for example a UUID) so that a retry cannot submit twice.",
            kind="missing-idempotency-key",
        )
    if not _KEY.match(key):
        raise Problem(
            400,
            "The Idempotency-Key header must be 8 to 128 characters among letters, digits and . _ : -",
            kind="invalid-idempotency-key",
        )
    return key


def request_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def claim(
    conn: asyncpg.Connection, scope: str, key: str, body_hash: str, status: int, response: dict[str, Any]
) -> StoredResponse | None:
    """Store the response this request will get; returns None when the key is new, else the stored response.

    The response is known before the work is done (its id is chosen up front), so it is stored with the
    key in one statement, and rolls back with the work if the transaction fails.
    """
    first = await conn.fetchval(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status, response) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT DO NOTHING RETURNING true",
        scope,
        key,
        body_hash,
        status,
        response,
    )
    if first:
        return None
    row = await conn.fetchrow(
        "SELECT request_hash, status, response FROM idempotency_keys WHERE scope = $1 AND key = $2",
        scope,
        key,
    )
    assert row is not None
    if row["request_hash"] != body_hash:
        raise Problem(
            422,
            "This Idempotency-Key was already used for a different request; use a new key for new content.",
            kind="idempotency-key-reused",
        )
    return StoredResponse(row["status"], row["response"])
