"""The scheduled search for silent tablets: ``tablet.inactive`` once per silence, whatever the replicas.

Each run locks the open loans it considers (``SKIP LOCKED``: two replicas share the work instead of
deciding twice) and records the silence it reported on the loan, in the transaction that writes the
event to the outbox. The clock is a parameter, so tests move time instead of waiting for it.
"""

from __future__ import annotations

import logging
from datetime import datetime

import asyncpg

from services.devices import repository
from services.devices.domain import SilencePolicy, detect_silence
from shared.db.outbox import add_events
from shared.events.catalog import make_event
from shared.events.devices import TabletInactiveV1
from shared.http.app import BackgroundTask, Platform, scheduled_job
from shared.periodic import Clock, system_clock
from shared.telemetry import current_trace_headers

log = logging.getLogger(__name__)

SOURCE = "/services/devices"


async def report_silent_tablets(
    pool: asyncpg.Pool, now: datetime, policy: SilencePolicy, *, schema: str = "devices"
) -> list[TabletInactiveV1]:
    quiet_since = now - min(policy.threshold, policy.due_silence)
    async with pool.acquire() as conn, conn.transaction():
        candidates = await repository.silence_candidates(conn, now, quiet_since)
        reports: list[TabletInactiveV1] = []
        for row in candidates:
            silence = detect_silence(
                now,
                loaned_at=row["loaned_at"],
                last_seen_at=row["last_seen_at"],
                reported_since=row["inactive_reported_since"],
                next_questionnaire_due=row["next_session"],
                policy=policy,
            )
            if silence is None:
                continue
            reports.append(
                TabletInactiveV1(
                    tablet_id=row["tablet_id"],
                    loan_id=row["loan_id"],
                    patient_id=row["patient_id"],
                    reason=silence.reason.value,
                    silent_since=silence.since,
                    last_seen_at=row["last_seen_at"],
                    next_questionnaire_due=row["next_session"],
                    detected_at=now,
                )
            )
        if reports:
            await repository.mark_reported(conn, [(r.loan_id, r.silent_since, r.reason) for r in reports])
            headers = current_trace_headers()
            events = [
                (make_event("tablet.inactive", r, source=SOURCE, time=now, subject=str(r.tablet_id)), headers)
                for r in reports
            ]
            await add_events(conn, events, schema=schema)
    if reports:
        log.info("reported %s silent tablets", len(reports))
    return reports


def silence_watch(policy: SilencePolicy, every_s: float, clock: Clock = system_clock) -> BackgroundTask:
    """The background job: look for silent tablets every ``every_s`` seconds."""
    return scheduled_job(
        "silence check",
        every_s,
        lambda platform: report_silent_tablets(platform.pool, clock(), policy, schema=platform.schema),
    )


def heartbeat_retention(keep_days: int, every_s: float = 3600.0) -> BackgroundTask:
    """Heartbeats are kept ``keep_days`` days (the tablet keeps its latest reading for ever)."""

    async def purge(platform: Platform) -> None:
        async with platform.pool.acquire() as conn:
            removed = await repository.purge_heartbeats(conn, keep_days)
        if removed:
            log.info("removed %s heartbeats older than %s days", removed, keep_days)

    return scheduled_job("heartbeat purge", every_s, purge)
