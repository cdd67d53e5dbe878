"""Work done every so often by each process (housekeeping, polls, scheduled checks) until it stops.

A failure of the database or the network skips one round, with a warning, and the next round tries again:
a scheduled job must outlive a PostgreSQL restart. Anything else is a bug and is not swallowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

log = logging.getLogger(__name__)

# asyncpg's InternalClientError too: a connection PostgreSQL has just cut can raise it ("another operation is in
# progress") before the driver sees the connection closed.
PASSING_FAULTS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)

# What scheduled checks call "now": injected, so that tests move time instead of waiting for it.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


async def every(interval_s: float, stop: asyncio.Event, work: Callable[[], Awaitable[object]], *, name: str) -> None:
    """Run ``work`` now, then every ``interval_s`` seconds, until ``stop`` is set."""
    while not stop.is_set():
        try:
            await work()
        except PASSING_FAULTS as exc:
            log.warning("%s skipped: %s", name, type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
