"""Revoked device tokens: a returned, lost or stolen tablet's token stops working within seconds.

Each service that accepts device tokens keeps ``revoked_tokens`` in its own schema (written by the
devices service in the transaction that ends the loan, or by a consumer of ``tablet.returned`` /
``tablet.lost`` elsewhere). Every process holds the whole list in memory (a few bytes per loan ever
ended) and polls for new rows, so checking a token costs a set lookup and every replica learns of a
revocation within one poll interval, whichever replica consumed the event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta

import asyncpg

from shared.periodic import every

# A row's revoked_at is its transaction's start, and it becomes visible at commit: each poll looks this
# far behind the newest row it has seen, so a slow transaction's row is not skipped.
LOOKBACK = timedelta(seconds=60)


class RevocationList:
    def __init__(self) -> None:
        self._revoked: set[str] = set()
        self._newest: datetime | None = None

    def is_revoked(self, token_id: str) -> bool:
        return token_id in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    async def refresh(self, conn: asyncpg.Connection) -> int:
        """Load the revocations committed since the last refresh; returns how many were new."""
        if self._newest is None:
            rows = await conn.fetch("SELECT token_id, revoked_at FROM revoked_tokens")
        else:
            rows = await conn.fetch(
                "SELECT token_id, revoked_at FROM revoked_tokens WHERE revoked_at >= $1", self._newest - LOOKBACK
            )
        before = len(self._revoked)
        for row in rows:
            self._revoked.add(row["token_id"])
            if self._newest is None or row["revoked_at"] > self._newest:
                self._newest = row["revoked_at"]
        if self._newest is None:
            self._newest = await conn.fetchval("SELECT now()")
        return len(self._revoked) - before

    async def run(self, pool: asyncpg.Pool, stop: asyncio.Event, every_s: float = 0.5) -> None:
        async def refresh() -> None:
            async with pool.acquire() as conn:
                await self.refresh(conn)

        await every(every_s, stop, refresh, name="revocation refresh")


async def revoke(conn: asyncpg.Connection, token_ids: Iterable[str], reason: str) -> None:
    """Record revocations (idempotent: a token revoked twice stays revoked once)."""
    await conn.execute(
        "INSERT INTO revoked_tokens (token_id, reason) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING",
        list(token_ids),
        reason,
    )
