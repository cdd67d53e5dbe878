"""Bounded tables: what the delivery guarantees need is kept, and only as long as they need it.

- outbox rows, once published, for 7 days (a re-publish from the database after a NATS disaster);
- inbox rows as long as the stream their consumer reads could deliver the event again (a durable consumer
  recreated, which starts from the beginning of its stream, ``DeliverPolicy.ALL``): the stream's ``max_age``
  (``topology.STREAMS``: 30 days, ALERTS a week, INCLUSION a year), plus the outbox's 7 days (an event
  re-published from an outbox is stored again, its age starting over) and a day. Rows of a consumer the
  service no longer has are kept as long as the longest stream's would be;
- Idempotency-Keys for 30 days: a tablet retries within hours, not months;
- what a service keeps of its own for a set time (the questionnaire's photos no message names), each a ``Purge``
  it hands over, deleted the same way.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from shared.db.pool import plan_for_these_values
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


# Rows one DELETE removes: a short transaction (a few tens of milliseconds), whose locks and WAL the hot path, which
# writes to the same tables, never waits behind; each chunk finds its rows through an index on their age
# (migration 0004), so that the last chunk costs what the first one did.
PURGE_CHUNK_ROWS = 5000
# How long a round may go on deleting; what is left goes at the next round (an hour later).
PURGE_BUDGET_S = 300.0

# The DELETE of one chunk, run until it removes fewer rows than a chunk. Parameters: the age in days, then the
# chunk's size (and for the inbox, first, the consumer). The rows are named by their physical address (ctid): the
# outer DELETE is then a TID scan, whatever it estimates the subquery returns (joined on the key, it read the
# whole table whenever the estimate was large). No one updates a row this old; if someone did, the row would
# have left that address and be kept until the next round, not deleted.
PURGE_OUTBOX = (
    "DELETE FROM outbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM outbox "
    "WHERE published_at < now() - make_interval(days => $1) ORDER BY published_at LIMIT $2))"
)
PURGE_IDEMPOTENCY_KEYS = (
    "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys "
    "WHERE created_at < now() - make_interval(days => $1) ORDER BY created_at LIMIT $2))"
)
PURGE_INBOX = (
    "DELETE FROM inbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM inbox WHERE consumer = $1 "
    "AND processed_at < now() - make_interval(days => $2) ORDER BY processed_at LIMIT $3))"
)
# The consumers that have inbox rows, one index probe each (a loose index scan): a service has a handful, and a
# DISTINCT would read every row.
INBOX_CONSUMERS = (
    "WITH RECURSIVE c AS ((SELECT consumer FROM inbox ORDER BY consumer LIMIT 1) UNION ALL "
    "SELECT (SELECT consumer FROM inbox WHERE consumer > c.consumer ORDER BY consumer LIMIT 1) FROM c "
    "WHERE c.consumer IS NOT NULL) SELECT consumer FROM c WHERE consumer IS NOT NULL"
)


@dataclass(frozen=True)
class Purge:
    """A table of a service's own, purged with the shared ones: ``statement`` deletes one chunk, oldest first,
    through an index, and its parameters are ``args`` then the chunk's size, as ``PURGE_OUTBOX``'s are."""

    table: str  # the key of its count in what ``purge`` answers (and logs)
    statement: str
    args: tuple[object, ...] = ()


async def purge_chunk(conn: asyncpg.Connection, statement: str, *args: object) -> int:
    """One chunk of the purge, in its own transaction; how many rows it deleted.

    Planned for its values: a plan cached while the table was small (the service's first hours) would be a
    sequential scan for ever after, and a chunk runs a few times an hour, so planning it costs nothing."""
    async with conn.transaction():
        await plan_for_these_values(conn)
        status = await conn.execute(statement, *args)
    return int(status.split()[-1])


async def purge(
    conn: asyncpg.Connection,
    retention: Retention = Retention(),
    consumers: Sequence[ConsumerSpec] = (),
    *,
    purges: Sequence[Purge] = (),
    chunk_rows: int = PURGE_CHUNK_ROWS,
    budget_s: float = PURGE_BUDGET_S,
) -> dict[str, int]:
    """Delete what is no longer needed; ``consumers`` are the service's (each keeps its inbox rows as long as
    its stream requires, any other consumer's are kept as long as the longest stream's would be); ``purges``,
    the service's own tables, after the shared ones.

    Each chunk of ``chunk_rows`` is its own transaction (``conn`` must not be in one). Past ``budget_s`` the round
    stops between chunks, and the next one goes on."""
    deadline = time.monotonic() + budget_s
    removed = {"outbox": 0, "idempotency_keys": 0, "inbox": 0} | {p.table: 0 for p in purges}

    async def in_chunks(table: str, statement: str, *args: object) -> bool:
        """Whether ``table`` is done (False: the budget was spent first)."""
        while True:
            count = await purge_chunk(conn, statement, *args, chunk_rows)
            removed[table] += count
            if count < chunk_rows:
                return True
            if time.monotonic() >= deadline:
                log.info("housekeeping: %s s spent; the rest of %s goes at the next round", budget_s, table)
                return False

    if not await in_chunks("outbox", PURGE_OUTBOX, retention.outbox_days):
        return removed
    if not await in_chunks("idempotency_keys", PURGE_IDEMPOTENCY_KEYS, retention.idempotency_days):
        return removed
    days = {c.durable: inbox_days(c, retention) for c in consumers}
    for row in await conn.fetch(INBOX_CONSUMERS):
        consumer = row["consumer"]
        kept = days.get(consumer, inbox_days(None, retention))
        if not await in_chunks("inbox", PURGE_INBOX, consumer, kept):
            return removed
    for own in purges:
        if not await in_chunks(own.table, own.statement, *own.args):
            return removed
    return removed


async def run_housekeeping(
    pool: asyncpg.Pool,
    stop: asyncio.Event,
    consumers: Sequence[ConsumerSpec] = (),
    every_s: float = 3600.0,
    purges: Sequence[Purge] = (),
    first_round: asyncio.Event | None = None,
) -> None:
    async def housekeeping() -> None:
        async with pool.acquire() as conn:
            removed = await purge(conn, consumers=consumers, purges=purges)
        if any(removed.values()):
            # Counts only: which rows went (a patient's photo, say) is no one's business in a log.
            log.info("housekeeping removed %s", removed)

    await every(every_s, stop, housekeeping, name="housekeeping", first_round=first_round)
