"""Work done every so often by each process (housekeeping, polls, scheduled checks) until it stops.

A failure of the database or the network does not end the job, with a warning: a scheduled job must outlive a
PostgreSQL restart. When the same round, run again in a moment, may well succeed (``soon_again``: a transaction
that lost a race, a connection cut or refused), it is tried again after 1 s, then 2, 4, 8 s and so on
(``backoff``), never waiting longer than the job's own interval: an hourly purge that met a deadlock or a failover
runs a second later, not an hour later, and a database down for long is asked at most once per doubling. Any other
error of the database (it refused the statement itself, and would refuse it again) waits for the next round.
Anything else is a bug and is not swallowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

import asyncpg

from shared.db.pool import DATABASE_UNAVAILABLE, caused_by, is_transient

log = logging.getLogger(__name__)

# asyncpg's InternalClientError too: a connection PostgreSQL has just cut can raise it ("another operation is in
# progress") before the driver sees the connection closed.
PASSING_FAULTS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)

# The wait before a failed round's second try; each further wait is twice the one before, up to the interval.
FIRST_RETRY_S = 1.0

# What scheduled checks call "now": injected, so that tests move time instead of waiting for it.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def soon_again(exc: BaseException) -> bool:
    """Whether a round that raised ``exc`` may well succeed if run again in a moment: it lost a race
    (``pool.TRANSIENT``), or the database or the network could not be used just then (a connection cut, refused or
    closed under the driver: asyncpg says ``InterfaceError``, "connection is closed")."""
    return is_transient(exc) or caused_by(exc, (*DATABASE_UNAVAILABLE, asyncpg.InterfaceError))


def backoff(interval_s: float, first_s: float = FIRST_RETRY_S) -> Iterator[float]:
    """The waits between the tries of a round that keeps failing on a passing fault: ``first_s``, doubling, capped
    at ``interval_s``. A wait of the whole interval ends the round: the next try is the next round's."""
    delay = first_s
    while True:
        yield min(delay, interval_s)
        delay *= 2


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def every(
    interval_s: float,
    stop: asyncio.Event,
    work: Callable[[], Awaitable[object]],
    *,
    name: str,
    first_round: asyncio.Event | None = None,
) -> None:
    """Run ``work`` now, then every ``interval_s`` seconds, until ``stop`` is set (which ends any wait at once).

    A round that failed on a passing fault (``soon_again``) is tried again on the ``backoff`` schedule, with one
    warning per round, not per try. ``first_round`` is set once the first round is over (done or given up), or the
    job has ended: what is written after that, no start-up round of the job has seen (tests arrange their rows then,
    ``Platform.first_rounds_over``)."""
    try:
        while not stop.is_set():
            await _round(interval_s, stop, work, name)
            if first_round is not None:
                first_round.set()
            await _wait(stop, interval_s)
    finally:
        if first_round is not None:
            first_round.set()


async def _round(interval_s: float, stop: asyncio.Event, work: Callable[[], Awaitable[object]], name: str) -> None:
    """One round of ``work``: tried again on the ``backoff`` schedule while it meets a passing fault, until a wait as
    long as the interval gives it up."""
    waits = backoff(interval_s, FIRST_RETRY_S)
    tries = 0
    while not stop.is_set():
        tries += 1
        try:
            await work()
        except PASSING_FAULTS as exc:
            wait = next(waits) if soon_again(exc) else interval_s
            if tries == 1:
                again = f"tried again in {wait:g} s" if wait < interval_s else "next round"
                log.warning("%s failed: %s; %s", name, type(exc).__name__, again)
            else:
                log.debug("%s failed again (try %s): %s", name, tries, type(exc).__name__)
            if wait >= interval_s:
                return  # the round is given up: the next try is on the job's own schedule
            await _wait(stop, wait)
            continue
        if tries > 1:
            log.info("%s done on try %s", name, tries)
        return
