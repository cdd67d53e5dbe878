"""Migrations that run outside a transaction (``-- migrate: no-transaction``: CREATE INDEX CONCURRENTLY, say)
against the real PostgreSQL: one statement each, recorded once, with several runners at once; an index left
invalid by a failed or interrupted build is never taken as done."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from shared.db.pool import MigrationError, apply_migrations, init_connection, session_settings
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

SCHEMA = "migrate_test"
TABLE = (
    "CREATE TABLE readings (id bigint PRIMARY KEY, device uuid NOT NULL, at timestamptz NOT NULL);\n"
    "INSERT INTO readings SELECT g, gen_random_uuid(), now() FROM generate_series(1, 1000) g;\n"
)
INDEX = (
    "-- migrate: no-transaction\n"
    "-- The silence checks read the latest reading of each device.\n"
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS readings_device ON readings (device, at DESC);\n"
)


async def _connect(database_url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(database_url, server_settings=session_settings(SCHEMA, "migrate"))
    await init_connection(conn)
    return conn


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await _connect(database_url)
    yield conn
    await conn.close()


def _migrations(directory: Path, **files: str) -> Path:
    directory.mkdir(exist_ok=True)
    for name, sql in files.items():
        (directory / f"{name}.sql").write_text(sql)
    return directory


async def _index(conn: asyncpg.Connection, name: str) -> bool | None:
    """Whether the index is valid; None when there is none."""
    # Read from the catalog's tables, not through to_regclass, whose answer a transaction may keep.
    valid: bool | None = await conn.fetchval(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relnamespace = $1::regnamespace AND c.relname = $2",
        SCHEMA,
        name,
    )
    return valid


async def _recorded(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(f"SELECT name FROM {SCHEMA}.schema_migrations WHERE name LIKE 'service/%' ORDER BY name")
    return [r["name"] for r in rows]


async def test_a_no_transaction_migration_builds_its_index_concurrently_and_is_recorded_once(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    migrations = _migrations(tmp_path, **{"001_readings": TABLE, "002_readings_device": INDEX})
    applied = await apply_migrations(conn, SCHEMA, migrations)
    assert applied[-2:] == ["service/001_readings.sql", "service/002_readings_device.sql"]
    assert await _index(conn, "readings_device") is True
    assert await _recorded(conn) == ["service/001_readings.sql", "service/002_readings_device.sql"]
    assert await conn.fetchval("SELECT current_setting('search_path')") == SCHEMA  # the session's, as it was
    assert await apply_migrations(conn, SCHEMA, migrations) == []


async def test_runners_starting_together_build_the_index_once_without_deadlocking(
    database_url: str, tmp_path: Path
) -> None:
    # A runner waiting in pg_advisory_lock holds a snapshot, which the concurrent build waits for: a deadlock
    # PostgreSQL resolves, after deadlock_timeout (1 s), by failing one of them.
    migrations = _migrations(tmp_path, **{"001_readings": TABLE, "002_readings_device": INDEX})
    conns = [await _connect(database_url) for _ in range(3)]
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(apply_migrations(c, SCHEMA, migrations) for c in conns)), timeout=20
        )
        # One runner applied everything; the others found it done.
        assert sorted(bool(r) for r in results) == [False, False, True]
        assert sum(r.count("service/002_readings_device.sql") for r in results) == 1
        assert await _index(conns[0], "readings_device") is True
        assert await _recorded(conns[0]) == ["service/001_readings.sql", "service/002_readings_device.sql"]
    finally:
        for c in conns:
            await c.close()


@pytest.mark.parametrize(
    "second",
    [
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS readings_at ON readings (at);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS readings_device ON readings (device);\n",
        "CREATE TABLE first_one (id int);\nCREATE TABLE second_one (id int);\n",
    ],
)
async def test_a_no_transaction_migration_of_two_statements_is_refused_before_either_runs(
    conn: asyncpg.Connection, tmp_path: Path, second: str
) -> None:
    migrations = _migrations(tmp_path, **{"001_readings": TABLE, "002_two": "-- migrate: no-transaction\n" + second})
    with pytest.raises(MigrationError, match=r"must be exactly one SQL statement.*a file of its own"):
        await apply_migrations(conn, SCHEMA, migrations)
    assert await _recorded(conn) == ["service/001_readings.sql"]
    created = await conn.fetch(
        "SELECT relname FROM pg_class WHERE relnamespace = $1::regnamespace AND relname = ANY($2)",
        SCHEMA,
        ["readings_at", "readings_device", "first_one", "second_one"],
    )
    assert created == []


async def test_a_failed_build_is_not_recorded_and_leaves_no_invalid_index(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    unique = (
        "-- migrate: no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS readings_at ON readings (at);\n"
    )
    migrations = _migrations(tmp_path, **{"001_readings": TABLE, "002_readings_at": unique})
    with pytest.raises(asyncpg.UniqueViolationError):  # every reading has the same time
        await apply_migrations(conn, SCHEMA, migrations)
    assert await _recorded(conn) == ["service/001_readings.sql"]
    assert await _index(conn, "readings_at") is None  # dropped, not left for every write to maintain
    await conn.execute(f"UPDATE {SCHEMA}.readings SET at = at + make_interval(secs => id)")
    assert await apply_migrations(conn, SCHEMA, migrations) == ["service/002_readings_at.sql"]
    assert await _index(conn, "readings_at") is True


async def test_an_index_left_invalid_by_a_runner_cut_short_is_built_again_at_the_next_start(
    conn: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    migrations = _migrations(tmp_path, **{"001_readings": TABLE})
    await apply_migrations(conn, SCHEMA, migrations)
    _migrations(migrations, **{"002_readings_device": INDEX})
    # A write in progress: the concurrent build waits for it to end, its index already in the catalog, invalid.
    writer = conn.transaction()
    await writer.start()
    await conn.execute(f"INSERT INTO {SCHEMA}.readings VALUES (0, gen_random_uuid(), now())")
    first = await _connect(database_url)
    runner = asyncio.create_task(apply_migrations(first, SCHEMA, migrations))
    try:

        async def building() -> int | None:
            return first.get_server_pid() if await _index(conn, "readings_device") is False else None

        pid = await eventually(building, within=5, interval=0.02)
        # The replica is killed in the middle of the build (a deploy's timeout, a node lost): its session ends.
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
            await runner
    finally:
        await writer.rollback()
        await first.close()
    assert await _index(conn, "readings_device") is False
    assert await _recorded(conn) == ["service/001_readings.sql"]
    # IF NOT EXISTS alone would take the invalid index as done; the next runner drops it and builds it again.
    second = await _connect(database_url)
    try:
        assert await apply_migrations(second, SCHEMA, migrations) == ["service/002_readings_device.sql"]
    finally:
        await second.close()
    assert await _index(conn, "readings_device") is True
    assert await _recorded(conn) == ["service/001_readings.sql", "service/002_readings_device.sql"]


async def test_an_index_built_by_a_runner_stopped_before_recording_it_is_recorded_without_an_error(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    migrations = _migrations(tmp_path, **{"001_readings": TABLE})
    await apply_migrations(conn, SCHEMA, migrations)
    # The build finished, then the runner stopped before the INSERT into schema_migrations.
    await conn.execute("CREATE INDEX readings_device ON readings (device)")
    without_if_not_exists = (
        "-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY readings_device ON readings (device);\n"
    )
    _migrations(migrations, **{"002_readings_device": without_if_not_exists})
    assert await apply_migrations(conn, SCHEMA, migrations) == ["service/002_readings_device.sql"]
    assert await _recorded(conn) == ["service/001_readings.sql", "service/002_readings_device.sql"]
    assert await _index(conn, "readings_device") is True
