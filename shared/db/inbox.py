"""Consumer inbox: which events a durable consumer has already applied, claimed in the handler's transaction."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg


async def claim_new(conn: asyncpg.Connection, consumer: str, event_ids: Iterable[str]) -> set[str]:
    """Record the ids as processed by ``consumer``; returns those seen for the first time.

    Called inside the transaction that applies the events' effects: if it rolls back, the claims go
    with it, and a redelivery is processed again.
    """
    ids = list(dict.fromkeys(event_ids))
    rows = await conn.fetch(
        "INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::text[]) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        consumer,
        ids,
    )
    return {r["event_id"] for r in rows}
