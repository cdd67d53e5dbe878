"""The asyncpg pool (one per process) and plain-SQL migrations applied under an advisory lock."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import asyncpg
import orjson

log = logging.getLogger(__name__)

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"

# The database cannot be used just now, whatever the statement: it cut or refused the connection (class 08,
# 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now: a restart, a failover), it has no
# connection left (53300), or it is read-only (25006: a standby, as after a failover). The same request will do
# its work later, unchanged. A connection PostgreSQL has just cut can also raise asyncpg's InternalClientError
# ("another operation is in progress") before the driver sees it closed.
DATABASE_UNUSABLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.InternalClientError,
)
# For a request: also any OSError (connecting to the database is the only I/O a request does besides it).
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OSError, *DATABASE_UNUSABLE)

# A value PostgreSQL refuses, or that cannot even be encoded for it (text with a NUL or a lone surrogate, a date
# or a number out of range): in a request it came from the caller, and the same request would always fail.
UNSTORABLE_VALUE: tuple[type[Exception], ...] = (UnicodeEncodeError, OverflowError, asyncpg.DataError)


def advisory_key(name: str) -> int:
    """A stable 64-bit key for pg_advisory_lock, from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def session_settings(schema: str, role: str | None = None) -> dict[str, str]:
    """Server settings of a service's connections: its schema first on the search path."""
    return {"search_path": schema, "application_name": schema if role is None else f"{schema}-{role}"}


async def init_connection(conn: asyncpg.Connection) -> None:
    """Codecs every connection of a service uses (the pool's, and the dedicated ones)."""
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def plan_for_these_values(conn: asyncpg.Connection) -> None:
    """Until the transaction ends, plan each statement for the values it is given.

    asyncpg keeps statements prepared, and after five runs PostgreSQL may settle on one generic plan,
    costed for the table as it was then. A set-wise UPDATE joined to ``unnest($1)`` whose plan was made
    on a small table is a sequential scan, and it stays one as the table grows, until autovacuum next
    analyzes it (in the benchmark: a hundred full reads of ``submissions`` a second for half a minute).
    A custom plan knows the array, so it probes the primary key. Planning costs a fraction of a
    millisecond, so this is for statements run once per batch, not once per request. (For every
    statement of every connection it was measured worse: the outbox relay's custom plan is a bitmap
    scan, which never marks the index's dead entries.)"""
    await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Connections carry no session state (locks are per transaction, LISTEN has its own connection),
    so the reset query asyncpg runs on every release is a wasted round trip."""


async def create_pool(dsn: str, schema: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        reset=_no_reset,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        server_settings=session_settings(schema),
    )
    assert pool is not None
    return pool


def _migration_files(directories: list[Path]) -> list[tuple[str, Path]]:
    files: list[tuple[str, Path]] = []
    for directory in directories:
        prefix = "shared" if directory == SHARED_MIGRATIONS else "service"
        files += [(f"{prefix}/{p.name}", p) for p in sorted(directory.glob("*.sql"))]
    return files


async def apply_migrations(conn: asyncpg.Connection, schema: str, service_dir: Path) -> list[str]:
    """Apply the shared then the service's migrations, in order, once each; safe with N replicas starting."""
    lock_key = advisory_key(f"migrations:{schema}")
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations '
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations')}
        for name, path in _migration_files([SHARED_MIGRATIONS, service_dir]):
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(f'SET LOCAL search_path TO "{schema}"')
                await conn.execute(path.read_text())
                await conn.execute(f'INSERT INTO "{schema}".schema_migrations(name) VALUES ($1)', name)
            applied_now.append(name)
            log.info("applied migration %s to schema %s", name, schema)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
    return applied_now


async def pending_migrations(conn: asyncpg.Connection, schema: str, service_dir: Path) -> list[str]:
    try:
        done = {r["name"] for r in await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations')}
    except asyncpg.UndefinedTableError:
        done = set()
    return [name for name, _ in _migration_files([SHARED_MIGRATIONS, service_dir]) if name not in done]
