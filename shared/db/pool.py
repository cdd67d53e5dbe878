"""The asyncpg pool (one per process) and plain-SQL migrations applied under an advisory lock."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
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

# A transaction that lost a race, not a fault of its own nor of the database: PostgreSQL chose it as a deadlock's
# victim (40P01), could not serialize it (40001), or it waited for a lock longer than ``lock_timeout`` (55P03) or
# ran longer than ``statement_timeout`` (57014). Run again a moment later, it almost always succeeds; still failing
# after a few tries (``shared.db.transient``), it is handled as any other failure.
TRANSIENT: tuple[type[Exception], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
    asyncpg.QueryCanceledError,
)


def caused_by(exc: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc``, or an error it was raised from or while handling (a handler may wrap the database's; a
    rollback on a connection the server ended fails in turn), is one of ``kinds``."""
    seen: set[int] = set()
    errors: list[BaseException] = [exc]
    while errors:
        error = errors.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, kinds):
            return True
        errors.extend(e for e in (error.__cause__, error.__context__) if e is not None)
    return False


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` comes of a race a new try of its transaction may win (``TRANSIENT``)."""
    return caused_by(exc, TRANSIENT)


def advisory_key(name: str) -> int:
    """A stable 64-bit key for pg_advisory_lock, from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def session_settings(
    schema: str, role: str | None = None, *, lock_timeout_ms: int | None = None, statement_timeout_ms: int | None = None
) -> dict[str, str]:
    """Server settings of a service's connections: its schema first on the search path; the timeouts when given
    (0: none; None: PostgreSQL's, or what the DSN or the role sets)."""
    settings = {"search_path": schema, "application_name": schema if role is None else f"{schema}-{role}"}
    if lock_timeout_ms is not None:
        settings["lock_timeout"] = str(lock_timeout_ms)
    if statement_timeout_ms is not None:
        settings["statement_timeout"] = str(statement_timeout_ms)
    return settings


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


async def create_pool(
    dsn: str,
    schema: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    lock_timeout_ms: int | None = None,
    statement_timeout_ms: int | None = None,
) -> asyncpg.Pool:
    settings = session_settings(schema, lock_timeout_ms=lock_timeout_ms, statement_timeout_ms=statement_timeout_ms)
    pool = await asyncpg.create_pool(
        dsn,
        reset=_no_reset,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        server_settings=settings,
    )
    assert pool is not None
    return pool


def _migration_files(directories: list[Path]) -> list[tuple[str, Path]]:
    files: list[tuple[str, Path]] = []
    for directory in directories:
        prefix = "shared" if directory == SHARED_MIGRATIONS else "service"
        files += [(f"{prefix}/{p.name}", p) for p in sorted(directory.glob("*.sql"))]
    return files


# The first line of a migration run outside a transaction: see ``apply_migrations``.
NO_TRANSACTION = "-- migrate: no-transaction"
# How often a runner asks for the lock another one holds.
MIGRATION_LOCK_POLL_S = 0.2

_DIRECTIVE = re.compile(r"--\s*migrate\s*:", re.IGNORECASE)
_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.DOTALL)
_CONCURRENT_INDEX = re.compile(r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\b", re.IGNORECASE)
_INDEX_NAME = re.compile(
    r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r'(?:"(?P<quoted>(?:[^"]|"")+)"|(?P<plain>[A-Za-z_][A-Za-z0-9_$]*))\s+ON\b',
    re.IGNORECASE,
)


class MigrationError(RuntimeError):
    """A migration the runner will not apply as it stands, or whose result it will not record: the message says
    what a person should do."""


def outside_transaction(name: str, sql: str) -> bool:
    """Whether migration ``name`` declares it runs outside a transaction (its first line is ``NO_TRANSACTION``)."""
    first = sql.lstrip("\ufeff").split("\n", 1)[0].strip()
    if first == NO_TRANSACTION:
        return True
    if _DIRECTIVE.match(first):
        raise MigrationError(
            f"migration {name}: its first line {first!r} is not a directive the runner knows; "
            f"write {NO_TRANSACTION!r} to run it outside a transaction, or remove the line"
        )
    return False


def concurrent_index(name: str, sql: str) -> str | None:
    """The index a no-transaction migration builds with CREATE INDEX CONCURRENTLY (as PostgreSQL stores its name),
    or None when it does something else."""
    comments = _LEADING_COMMENTS.match(sql)
    statement = sql[comments.end() :] if comments else sql
    if not _CONCURRENT_INDEX.match(statement):
        return None
    found = _INDEX_NAME.match(statement)
    if found is None:
        raise MigrationError(
            f"migration {name}: name the index it builds (CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> ON ...): "
            "the runner looks it up to tell a finished build from an interrupted one"
        )
    if found["quoted"] is not None:
        return found["quoted"].replace('""', '"')
    return found["plain"].lower()


async def apply_migrations(conn: asyncpg.Connection, schema: str, service_dir: Path) -> list[str]:
    """Apply the shared then the service's migrations, in order, once each; safe with N replicas starting.

    Each file runs in a transaction with its record in ``schema_migrations``: all of it, or nothing. A file whose
    first line is ``-- migrate: no-transaction`` (``NO_TRANSACTION``) runs outside one, as PostgreSQL requires of
    ``CREATE INDEX CONCURRENTLY`` (an index built on a large table without blocking its writes). Such a file:

    - must hold exactly one statement: it is sent as one prepared statement, which PostgreSQL refuses to parse
      when there are more, before anything runs (a second statement failing after the first had committed could
      not be undone, nor the file safely run again);
    - is recorded after its statement succeeded, so a runner stopped in between runs it again at the next start:
      the statement must be safe to run twice (``IF NOT EXISTS``, ``IF EXISTS``);
    - when it builds an index (``CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] <name> ON ...``, the name
      required), is recorded only once that index is valid (``pg_index.indisvalid``). A failed or interrupted
      concurrent build leaves an invalid index behind, which ``IF NOT EXISTS`` would take as done: the runner
      drops it (``DROP INDEX CONCURRENTLY``) when the build fails, and at the next start drops one still there
      and builds it again. A valid index of that name already there (a build that finished just before its
      runner stopped) is recorded without building it again.

    Runners take turns on a session advisory lock per schema, asked for with ``pg_try_advisory_lock`` every
    ``MIGRATION_LOCK_POLL_S`` rather than waited for: a concurrent index build waits for every transaction older
    than it to end, a runner waiting in ``pg_advisory_lock`` is one, and PostgreSQL would end the two as a
    deadlock."""
    lock_key = advisory_key(f"migrations:{schema}")
    applied_now: list[str] = []
    # A replica waits for another's migrations, and a migration may build an index on a large table: neither may
    # be cut short by the pool's timeouts, meant for the hot path (RESET returns to them, the connection's own).
    await conn.execute("SET lock_timeout = 0; SET statement_timeout = 0")
    try:
        await _migrate_locked(conn, schema, service_dir, lock_key, applied_now)
    finally:
        await conn.execute("RESET lock_timeout; RESET statement_timeout")
    return applied_now


async def _take_migration_lock(conn: asyncpg.Connection, schema: str, lock_key: int) -> None:
    waited = False
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key):
        if not waited:
            log.info("waiting for another process's migrations of schema %s", schema)
            waited = True
        await asyncio.sleep(MIGRATION_LOCK_POLL_S)


async def _migrate_locked(
    conn: asyncpg.Connection, schema: str, service_dir: Path, lock_key: int, applied_now: list[str]
) -> None:
    await _take_migration_lock(conn, schema, lock_key)
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
            sql = path.read_text()
            if outside_transaction(name, sql):
                await _apply_outside_transaction(conn, schema, name, sql)
                await conn.execute(f'INSERT INTO "{schema}".schema_migrations(name) VALUES ($1)', name)
            else:
                async with conn.transaction():
                    await conn.execute(f'SET LOCAL search_path TO "{schema}"')
                    await conn.execute(sql)
                    await conn.execute(f'INSERT INTO "{schema}".schema_migrations(name) VALUES ($1)', name)
            applied_now.append(name)
            log.info("applied migration %s to schema %s", name, schema)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _index_valid(conn: asyncpg.Connection, schema: str, index: str) -> bool | None:
    """Whether index ``index`` of ``schema`` is valid; None when there is none of that name."""
    valid: bool | None = await conn.fetchval(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
        schema,
        index,
    )
    return valid


async def _drop_invalid_index(conn: asyncpg.Connection, schema: str, index: str) -> None:
    if await _index_valid(conn, schema, index) is False:
        await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_ident(schema)}.{_ident(index)}")


async def _apply_outside_transaction(conn: asyncpg.Connection, schema: str, name: str, sql: str) -> None:
    index = concurrent_index(name, sql)
    if index is not None:
        valid = await _index_valid(conn, schema, index)
        if valid:
            log.info("migration %s: index %s of schema %s is there and valid; not built again", name, index, schema)
            return
        if valid is False:
            log.warning(
                "migration %s: index %s of schema %s is invalid (a concurrent build failed or was cut short); "
                "dropping it to build it again",
                name,
                index,
                schema,
            )
            await _drop_invalid_index(conn, schema, index)
    previous = await conn.fetchval("SELECT current_setting('search_path')")
    await conn.execute(f'SET search_path TO "{schema}"')  # before the Parse, which looks up the tables named
    try:
        try:
            statement = await conn.prepare(sql)
        except asyncpg.PostgresSyntaxError as exc:
            raise MigrationError(
                f"migration {name} runs outside a transaction ({NO_TRANSACTION!r}), so it must be exactly one SQL "
                f"statement; PostgreSQL could not take it as one ({exc}): put each statement in a file of its own"
            ) from exc
        try:
            await statement.fetch()
        except Exception:
            if index is not None:
                # An invalid index is still written to by every INSERT and UPDATE, and read by no one.
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await _drop_invalid_index(conn, schema, index)
            raise
    finally:
        with contextlib.suppress(asyncpg.InterfaceError, OSError):  # a connection that died takes its settings along
            await conn.execute("SELECT set_config('search_path', $1, false)", previous)
    if index is not None and not await _index_valid(conn, schema, index):
        raise MigrationError(
            f"migration {name} ran, but index {index} of schema {schema} is missing or invalid; drop it if it is "
            f"there (DROP INDEX CONCURRENTLY {_ident(schema)}.{_ident(index)}) and check that the statement builds "
            "that index in that schema: the migration is not recorded, and runs again at the next start"
        )


async def pending_migrations(conn: asyncpg.Connection, schema: str, service_dir: Path) -> list[str]:
    try:
        done = {r["name"] for r in await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations')}
    except asyncpg.UndefinedTableError:
        done = set()
    return [name for name, _ in _migration_files([SHARED_MIGRATIONS, service_dir]) if name not in done]
