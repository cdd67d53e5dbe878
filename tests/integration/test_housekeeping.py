"""Housekeeping removes what the guarantees no longer need, and nothing else."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from shared.db.housekeeping import inbox_days, purge
from shared.db.pool import apply_migrations, init_connection, session_settings
from shared.testing.services import in_process
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration


async def test_purge_keeps_what_is_recent_or_unpublished(platform: Any) -> None:
    async with platform.questionnaire_platform.pool.acquire() as conn:
        # The service's relay runs meanwhile (every second): the unpublished row's subject is one no stream takes, so
        # that it stays unpublished, as an event JetStream cannot store does (on a stream's subject, a round of the
        # relay between the insert and the purge published it: none left unpublished to keep).
        for age, published in ((1, True), (10, True), (10, False)):
            await conn.execute(
                "INSERT INTO outbox (id, subject, body, created_at, published_at) "
                "VALUES ($1, CASE WHEN $3 THEN 'questionnaire.submitted' ELSE 'purge.unrouted' END, '{}', "
                "now() - make_interval(days => $2), CASE WHEN $3 THEN now() - make_interval(days => $2) END)",
                uuid.uuid4(),
                age,
                published,
            )
        for age in (1, 500):  # a consumer it no longer has: kept as long as the longest stream, TABLETS (464 days)
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, processed_at) "
                "VALUES ('c', $1, now() - make_interval(days => $2))",
                str(uuid.uuid4()),
                age,
            )
        for age in (1, 40):
            await conn.execute(
                "INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at) "
                "VALUES ('s', $1, 'h', 202, '{}', now() - make_interval(days => $2))",
                str(uuid.uuid4()),
                age,
            )
        removed = await purge(conn)
        assert removed == {"outbox": 1, "inbox": 1, "idempotency_keys": 1}
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 1
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 2


async def test_used_stream_tokens_are_kept_a_day(platform: Any) -> None:
    # A stream token lives 60 s: a day after its use, its row only grows the table.
    service = platform.alerting_platform
    async with service.pool.acquire() as conn:
        for age in (0, 25):
            await conn.execute(
                "INSERT INTO stream_token_uses (token_id, used_at) VALUES ($1, now() - make_interval(hours => $2))",
                str(uuid.uuid4()),
                age,
            )
        # The service's own round, started with it, may come first: what is left is what counts.
        await purge(conn, purges=build_alerting(AlertingSettings()).purges)
        left = await conn.fetchval("SELECT max(used_at) > now() - interval '1 hour' FROM stream_token_uses")
        assert (await conn.fetchval("SELECT count(*) FROM stream_token_uses"), left) == (1, True)


async def test_inbox_rows_are_kept_while_the_stream_their_consumer_reads_could_deliver_the_event_again(
    platform: Any, service_env: dict[str, Any]
) -> None:
    # alerting reads session.scheduled from INCLUSION (kept a year) and questionnaire.submitted from QUESTIONNAIRES
    # (30 days). A row goes once the stream no longer holds the event, nor a copy re-published from an outbox
    # (kept 7 days), with a day to spare; a consumer the service no longer has keeps its rows as the longest stream
    # (TABLETS, 456 days: 464).
    kept = {
        ("alerting-session-scheduled", 40): True,  # past the 35 days every inbox row used to be kept
        ("alerting-session-scheduled", 374): False,
        ("alerting-questionnaire-submitted", 37): True,
        ("alerting-questionnaire-submitted", 39): False,
        ("alerting-retired-consumer", 400): True,
        ("alerting-retired-consumer", 465): False,
    }
    async with platform.alerting_platform.pool.acquire() as conn:
        for consumer, age in kept:
            await conn.execute(
                "INSERT INTO inbox (consumer, event_id, processed_at) "
                "VALUES ($1, $2, now() - make_interval(days => $3))",
                consumer,
                f"{consumer}-{age}",
                age,
            )
    # Another replica starts: its housekeeping runs at once (the first one's may have, during the inserts).
    expected = sorted(f"{consumer}-{age}" for (consumer, age), stays in kept.items() if stays)
    settings = AlertingSettings(**service_env)
    async with in_process(build_alerting(settings)):

        async def purged() -> bool:
            async with platform.alerting_platform.pool.acquire() as conn:
                rows = await conn.fetch("SELECT event_id FROM inbox WHERE consumer LIKE 'alerting-%'")
            return sorted(r["event_id"] for r in rows) == expected

        await eventually(purged, within=10, interval=0.1)


CHUNK = 100
OLD = (
    "INSERT INTO outbox (id, subject, body, created_at, published_at) SELECT gen_random_uuid(), 'alert.raised', "
    "'{}', now() - make_interval(days => $1), now() - make_interval(days => $1) FROM generate_series(1, $2);"
    "INSERT INTO idempotency_keys (scope, key, request_hash, status, response, created_at) SELECT 's', "
    "gen_random_uuid()::text, 'h', 202, '{}', now() - make_interval(days => $1) FROM generate_series(1, $2);"
    "INSERT INTO inbox (consumer, event_id, processed_at) SELECT 'retired', gen_random_uuid()::text, "
    "now() - make_interval(days => $1 * 50) FROM generate_series(1, $2)"
)


async def _fill(conn: asyncpg.Connection, days: int, rows: int) -> None:
    # One statement per table (a multi-statement string takes no parameters).
    for statement in OLD.split(";"):
        await conn.execute(statement, days, rows)


def _statements(conn: asyncpg.Connection) -> list[str]:
    """The first word of every statement ``conn`` runs from now on."""
    seen: list[str] = []
    conn.add_query_logger(lambda record: seen.append(record.query.split()[0].rstrip(";").upper()))
    return seen


@pytest.fixture
async def shared_tables(database_url: str, tmp_path: Path) -> AsyncIterator[asyncpg.Connection]:
    """A schema with only the shared tables (outbox, inbox, Idempotency-Keys): no service to start."""
    conn = await asyncpg.connect(database_url, server_settings=session_settings("purge_test"))
    await init_connection(conn)
    await apply_migrations(conn, "purge_test", tmp_path)
    yield conn
    await conn.close()


async def test_purge_deletes_in_chunks_each_its_own_transaction_until_done(shared_tables: asyncpg.Connection) -> None:
    conn = shared_tables
    await _fill(conn, 40, 2 * CHUNK + 50)  # past every retention (the inbox rows: 2,000 days)
    await _fill(conn, 1, 20)  # recent: kept
    await conn.execute(
        "INSERT INTO outbox (id, subject, body, created_at) VALUES (gen_random_uuid(), 'alert.raised', '{}', "
        "now() - make_interval(days => 10))"  # old and never published: kept
    )
    assert inbox_days(None) < 2000
    statements = _statements(conn)
    removed = await purge(conn, chunk_rows=CHUNK)
    await asyncio.sleep(0)  # asyncpg calls its query loggers at the next turn of the loop
    assert removed == {"outbox": 250, "idempotency_keys": 250, "inbox": 250}
    # Three chunks per table (100, 100, 50), each its own transaction: none holds a table's whole purge.
    chunks = [s for s in statements if s in ("BEGIN", "DELETE", "COMMIT")]
    assert chunks == ["BEGIN", "DELETE", "COMMIT"] * 9, statements
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 21
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE scope = 's'") == 20
    assert await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'retired'") == 20


async def test_a_purge_past_its_time_budget_stops_between_chunks_and_the_next_goes_on(
    shared_tables: asyncpg.Connection,
) -> None:
    conn = shared_tables
    await _fill(conn, 40, 2 * CHUNK + 50)
    started = time.monotonic()
    assert await purge(conn, chunk_rows=CHUNK, budget_s=0) == {"outbox": CHUNK, "idempotency_keys": 0, "inbox": 0}
    assert time.monotonic() - started < 2
    assert await purge(conn, chunk_rows=CHUNK) == {"outbox": 150, "idempotency_keys": 250, "inbox": 250}
