"""A service's schema as it was before one of its migrations, to test what that migration does to existing rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg

from shared.db.pool import apply_migrations, init_connection, session_settings


async def schema_before(
    database_url: str, schema: str, migrations: Path, before: str, workdir: Path
) -> asyncpg.Connection:
    """A connection to ``schema`` with the migrations of ``migrations`` whose file names sort before ``before``
    (e.g. ``"003"``) applied, copied into ``workdir`` first; the caller inserts its rows, applies the rest with
    ``apply_migrations(conn, schema, migrations)`` and closes the connection."""
    earlier = _copied_before(migrations, before, workdir)
    conn = await asyncpg.connect(database_url, server_settings=session_settings(schema))
    try:
        await init_connection(conn)
        await apply_migrations(conn, schema, earlier)
    except BaseException:
        await conn.close()
        raise
    return conn


def _copied_before(migrations: Path, before: str, workdir: Path) -> Path:
    earlier = workdir / f"migrations-before-{before}"
    earlier.mkdir()
    for path in sorted(migrations.glob("*.sql")):
        if path.name < before:
            shutil.copy(path, earlier / path.name)
    return earlier
