"""The scheduled escalation of alerts nobody has taken in time: ``alert.escalated``, once per level.

Each level is claimed by a conditional update (``escalation_level < n``) in the transaction that writes
the event to the outbox, so two replicas checking at the same moment escalate an alert once. The clock
is a parameter: tests move time instead of waiting for it.
"""

from __future__ import annotations

import logging
from datetime import datetime

import asyncpg

from services.alerting import repository
from services.alerting.service_levels import ServiceLevels
from shared.db.outbox import add_event
from shared.events.alerts import AlertEscalatedV1
from shared.events.catalog import make_event
from shared.http.app import BackgroundTask, scheduled_job
from shared.periodic import Clock, system_clock

log = logging.getLogger(__name__)

SOURCE = "/services/alerting"


async def escalate_overdue(
    pool: asyncpg.Pool, now: datetime, levels: ServiceLevels, *, schema: str = "alerting"
) -> list[AlertEscalatedV1]:
    escalated: list[AlertEscalatedV1] = []
    async with pool.acquire() as conn:
        awaiting = await repository.awaiting_acknowledgement(conn, now - levels.shortest_delay)
    for alert in awaiting:
        reached = levels.escalation_due(alert["level"], alert["status"], alert["level_since"], now)
        if reached <= alert["escalation_level"]:
            continue
        deadlines = levels.deadlines(alert["level"], alert["level_since"])
        async with pool.acquire() as conn, conn.transaction():
            # Every level passed is published, in order (after an outage, level 1 then level 2).
            for to_level in range(alert["escalation_level"] + 1, reached + 1):
                row = await repository.escalate(conn, alert["id"], to_level, alert["level_since"], now)
                if row is None:  # taken, re-levelled or escalated by another replica meanwhile
                    break
                event = AlertEscalatedV1(
                    alert_id=row["id"],
                    patient_id=row["patient_id"],
                    level=row["level"],
                    escalation_level=to_level,
                    due_at=deadlines[to_level - 1],
                    escalated_at=now,
                )
                escalated_event = make_event("alert.escalated", event, source=SOURCE, time=now, subject=str(row["id"]))
                await add_event(conn, escalated_event, schema=schema)
                escalated.append(event)
    if escalated:
        log.info("escalated %s alerts", len(escalated))
    return escalated


def escalation_watch(levels: ServiceLevels, every_s: float, clock: Clock = system_clock) -> BackgroundTask:
    return scheduled_job(
        "escalation check",
        every_s,
        lambda platform: escalate_overdue(platform.pool, clock(), levels, schema=platform.schema),
    )
