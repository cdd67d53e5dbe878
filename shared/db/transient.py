"""Transactions that lost a race (``pool.TRANSIENT``: a deadlock, a serialization failure, a lock or statement
timeout) are run again at once, a few times, before anyone is told they failed.

The same few tries serve the pull consumers (a batch's transaction), the group commits (a batch's statement) and the
HTTP requests (``shared.http.transient``): a fever alert held 30 s by the consumer's backoff schedule, or a nurse's
click answered 500, for a deadlock that a second run resolves, helped nobody. The delays are short and jittered, so
that two transactions that deadlocked do not meet again at the same instant; after the last try the error is the
caller's to handle as before (a message's failed delivery, a 503), so a statement that always times out ends in the
dead-letter path or a refusal, never in a hot loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from opentelemetry import metrics

from shared.db.pool import is_transient

log = logging.getLogger(__name__)

T = TypeVar("T")

# The waits before the second, third and fourth tries (each drawn between half and one and a half times its entry).
TRANSIENT_DELAYS_S: tuple[float, ...] = (0.05, 0.2, 1.0)

_meter = metrics.get_meter("oncofollow.db")
_retried = _meter.create_counter(
    "oncofollow.db.transient.retried", description="Transactions run again after a transient database error"
)
_exhausted = _meter.create_counter(
    "oncofollow.db.transient.exhausted",
    description="Transactions still failing with a transient database error after every try",
)


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of the transient error in ``exc`` (or its type's name): a code, never a message's text."""
    code = getattr(exc, "sqlstate", None)
    return str(code) if code else type(exc).__name__


def retry_delays(delays: tuple[float, ...] | None = None) -> list[float]:
    """The jittered waits of one round of tries."""
    return [d * random.uniform(0.5, 1.5) for d in (TRANSIENT_DELAYS_S if delays is None else delays)]


def note_retry(where: str, exc: BaseException, attempt: int, delay: float) -> None:
    _retried.add(1, {"where": where, "sqlstate": sqlstate(exc)})
    log.info("%s: transient database error (%s), try %s again in %.0f ms", where, sqlstate(exc), attempt, delay * 1e3)


def note_exhausted(where: str, exc: BaseException, tries: int) -> None:
    _exhausted.add(1, {"where": where, "sqlstate": sqlstate(exc)})
    log.warning("%s: transient database error (%s) on each of %s tries; giving up", where, sqlstate(exc), tries)


async def retrying(attempt: Callable[[], Awaitable[T]], *, where: str, delays: tuple[float, ...] | None = None) -> T:
    """``attempt()``, run again after each transient error until the delays are spent; then the error is raised.

    ``attempt`` must be a whole transaction: what a failed try did was rolled back with it."""
    waits = retry_delays(delays)
    tries = 0
    while True:
        tries += 1
        try:
            return await attempt()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if not waits:
                note_exhausted(where, exc, tries)
                raise
            delay = waits.pop(0)
            note_retry(where, exc, tries + 1, delay)
        await asyncio.sleep(delay)
