"""Bounded tables: what the delivery guarantees need is kept, and only as long as they need it.

- outbox rows, once published, for 7 days (a re-publish from the database after a NATS disaster);
- inbox rows for 35 days: longer than any stream keeps a message that could be redelivered (30 days);
- Idempotency-Keys for 30 days: a tablet retries within hours, not months.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg

from shared.periodic import every

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    outbox_days: int = 7
    inbox_days: int = 35
    idempotency_days: int = 30


async def purge(conn: asyncpg.Connection, retention: Retention = Retention()) -> dict[str, int]:
    removed = {}
    for table, column, days in (
        ("outbox", "published_at", retention.outbox_days),
        ("inbox", "processed_at", retention.inbox_days),
        ("idempotency_keys", "created_at", retention.idempotency_days),
    ):
        status = await conn.execute(f"DELETE FROM {table} WHERE {column} < now() - make_interval(days => $1)", days)
        removed[table] = int(status.split()[-1])
    return removed


async def run_housekeeping(pool: asyncpg.Pool, stop: asyncio.Event, every_s: float = 3600.0) -> None:
    async def housekeeping() -> None:
        async with pool.acquire() as conn:
            removed = await purge(conn)
        if any(removed.values()):
            log.info("housekeeping removed %s", removed)

    await every(every_s, stop, housekeeping, name="housekeeping")
