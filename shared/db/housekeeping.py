"""Bounded tables: what the delivery guarantees need is kept, and only as long as they need it.

- outbox rows, once published, for 7 days (a re-publish from the database after a NATS disaster);
- inbox rows as long as the stream their consumer reads could deliver the event again (a durable consumer
  recreated, which starts from the beginning of its stream, ``DeliverPolicy.ALL``): the stream's ``max_age``
  (``topology.STREAMS``: 30 days, ALERTS a week, INCLUSION a year), plus the outbox's 7 days (an event
  re-published from an outbox is stored again, its age starting over) and a day. Rows of a consumer the
  service no longer has are kept as long as the longest stream's would be;
- Idempotency-Keys for 30 days: a tablet retries within hours, not months.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from shared.messaging.topology import DAY, STREAMS, ConsumerSpec
from shared.periodic import every

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    outbox_days: int = 7
    idempotency_days: int = 30
    # Beyond what the stream and a re-publish from the outbox need: clocks apart, an hour between purges.
    inbox_margin_days: int = 1


def inbox_days(consumer: ConsumerSpec | None, retention: Retention = Retention()) -> int:
    """How long ``consumer``'s inbox rows are kept (None: a consumer the service no longer has)."""
    streams = [s for s in STREAMS if consumer is None or s.name == consumer.stream] or list(STREAMS)
    longest = max(s.max_age_s for s in streams)
    return math.ceil(longest / DAY) + retention.outbox_days + retention.inbox_margin_days


async def purge(
    conn: asyncpg.Connection, retention: Retention = Retention(), consumers: Sequence[ConsumerSpec] = ()
) -> dict[str, int]:
    """Delete what is no longer needed; ``consumers`` are the service's (each keeps its inbox rows as long as
    its stream requires, any other consumer's are kept as long as the longest stream's would be)."""
    removed = {}
    for table, column, days in (
        ("outbox", "published_at", retention.outbox_days),
        ("idempotency_keys", "created_at", retention.idempotency_days),
    ):
        status = await conn.execute(f"DELETE FROM {table} WHERE {column} < now() - make_interval(days => $1)", days)
        removed[table] = int(status.split()[-1])
    status = await conn.execute(
        "DELETE FROM inbox WHERE processed_at < now() - make_interval(days => coalesce("
        "(SELECT k.days FROM unnest($1::text[], $2::int[]) AS k (consumer, days) WHERE k.consumer = inbox.consumer),"
        " $3))",
        [c.durable for c in consumers],
        [inbox_days(c, retention) for c in consumers],
        inbox_days(None, retention),
    )
    removed["inbox"] = int(status.split()[-1])
    return removed


async def run_housekeeping(
    pool: asyncpg.Pool, stop: asyncio.Event, consumers: Sequence[ConsumerSpec] = (), every_s: float = 3600.0
) -> None:
    async def housekeeping() -> None:
        async with pool.acquire() as conn:
            removed = await purge(conn, consumers=consumers)
        if any(removed.values()):
            log.info("housekeeping removed %s", removed)

    await every(every_s, stop, housekeeping, name="housekeeping")
