"""Heartbeats, the platform's highest-volume input: written by group commit, many per transaction."""

from __future__ import annotations

import asyncpg

from services.devices import repository
from shared.db.group_commit import GroupCommit, Pending


class HeartbeatWriter(GroupCommit[repository.HeartbeatRow, bool]):
    """``submit`` answers whether the heartbeat was recorded: False when its token's loan has ended."""

    async def commit(self, pool: asyncpg.Pool, batch: list[Pending[repository.HeartbeatRow, bool]]) -> None:
        async with pool.acquire() as conn, conn.transaction():
            recognised = await repository.record_heartbeats(conn, [p.item for p in batch])
        for pending in batch:
            pending.outcome.set_result(pending.item.token_id in recognised)
