"""A scheduled job whose round met a passing fault of the real PostgreSQL (a lock timeout, a connection the server
ended) runs again within seconds, not at its next interval (an hour for the housekeeping). A service a test starts
has run its scheduled jobs' first rounds before the test writes anything: no start-up check races its rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared.db.housekeeping import run_housekeeping
from shared.db.pool import apply_migrations, create_pool, init_connection, session_settings
from shared.http.app import BackgroundTask, Platform, ServiceDefinition, scheduled_job
from shared.settings import ServiceSettings
from shared.testing.services import in_process, served
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

SCHEMA = "jobs_test"
OLD_ROWS = 20


@pytest.fixture
async def holder(database_url: str, tmp_path: Path) -> AsyncIterator[asyncpg.Connection]:
    """The shared tables with published outbox rows past their 7 days, and the test's own connection to them."""
    conn = await asyncpg.connect(database_url, server_settings=session_settings(SCHEMA))
    await init_connection(conn)
    await apply_migrations(conn, SCHEMA, tmp_path)
    await conn.execute(
        "INSERT INTO outbox (id, subject, body, created_at, published_at) SELECT gen_random_uuid(), 'alert.raised', "
        "'{}', now() - interval '10 days', now() - interval '10 days' FROM generate_series(1, $1)",
        OLD_ROWS,
    )
    yield conn
    await conn.close()


async def _purged(conn: asyncpg.Connection) -> bool:
    return await conn.fetchval("SELECT count(*) FROM outbox") == 0


async def _warned(caplog: pytest.LogCaptureFixture, text: str) -> None:
    async def warned() -> bool:
        return any(text in m for m in caplog.messages)

    await eventually(warned, within=5, interval=0.01)


async def test_an_hourly_purge_that_met_a_lock_timeout_runs_again_a_second_later(
    holder: asyncpg.Connection, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await create_pool(database_url, SCHEMA, min_size=1, max_size=2, lock_timeout_ms=100)
    stop = asyncio.Event()
    job: asyncio.Task[None] | None = None
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")  # a migration, a manual transaction
            job = asyncio.create_task(run_housekeeping(pool, stop))  # every hour
            await _warned(caplog, "housekeeping failed: LockNotAvailableError; tried again in 1 s")
        released = time.monotonic()
        await eventually(lambda: _purged(holder), within=5, interval=0.05)
        assert time.monotonic() - released < 3
    finally:
        stop.set()
        if job is not None:
            await asyncio.wait_for(job, timeout=1)  # stopping ends the hour's wait at once
        await pool.close()


async def test_an_hourly_purge_whose_connection_the_server_ended_runs_again_a_second_later(
    holder: asyncpg.Connection, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await create_pool(database_url, SCHEMA, min_size=1, max_size=2)  # no lock timeout: the purge waits
    stop = asyncio.Event()
    job: asyncio.Task[None] | None = None
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE")
            job = asyncio.create_task(run_housekeeping(pool, stop))

            async def waiting_purge() -> int | None:
                pid: int | None = await holder.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
                    SCHEMA,
                )
                return pid

            pid = await eventually(waiting_purge, within=5, interval=0.01)
            # As an administrator, or a failover, does: the purge's connection ends in the middle of its DELETE.
            assert await holder.fetchval("SELECT pg_terminate_backend($1)", pid)
            await _warned(caplog, "housekeeping failed: ")
        released = time.monotonic()
        await eventually(lambda: _purged(holder), within=5, interval=0.05)
        assert time.monotonic() - released < 3
    finally:
        stop.set()
        if job is not None:
            await asyncio.wait_for(job, timeout=1)
        await pool.close()


def _slow_check(rounds: list[str]) -> BackgroundTask:
    """An hourly check whose round takes a while (the escalation check reading many alerts, say)."""

    async def check(platform: Platform) -> None:
        rounds.append("started")
        await asyncio.sleep(0.3)
        rounds.append("over")

    return scheduled_job("slow check", 3600, check)


@pytest.mark.parametrize("start", [in_process, served], ids=["in-process", "served"])
async def test_a_service_started_for_a_test_has_run_its_scheduled_jobs_first_round_already(
    service_env: dict[str, str], tmp_path: Path, start: Callable[[ServiceDefinition], Any]
) -> None:
    # What a test writes next (an alert three days overdue) no start-up round reads: the next one is an hour away.
    rounds: list[str] = []
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    service = ServiceDefinition(
        name="jobs_probe",
        settings=ServiceSettings(**env),
        routers=(),
        migrations=tmp_path,
        background=(_slow_check(rounds),),
    )
    async with start(service) as (_, platform):
        assert rounds == ["started", "over"]
        # The check's and the housekeeping's.
        assert len(platform.first_rounds) == 2 and all(ran.is_set() for ran in platform.first_rounds)
