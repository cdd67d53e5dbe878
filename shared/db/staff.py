"""Staff members as their colleagues and patients know them, kept by each service that shows staff by name.

Each such service has its own ``staff`` table in its schema (id, display name, last seen), filled from the tokens
it is shown: the display name is the token's ``STAFF_TOKEN_NAME_CLAIM``. Events never carry names, only ids.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def remember_staff(conn: asyncpg.Connection, staff_id: str, name: str | None, now: datetime) -> None:
    """A staff member acted or signed in: her name as her token gives it (a token without one keeps the last
    known), and when she was last seen."""
    await conn.execute(
        "INSERT INTO staff (id, display_name, last_seen_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET "
        "display_name = COALESCE(EXCLUDED.display_name, staff.display_name), last_seen_at = EXCLUDED.last_seen_at",
        staff_id,
        name,
        now,
    )
