"""What the questionnaire service does with the events it consumes: keep the tablet's status current."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.questionnaire import repository
from shared.events.alerts import AlertAcknowledgedV1, SubmissionScoredV1
from shared.events.envelope import CloudEvent


async def on_submission_scored(event: CloudEvent[Any], conn: asyncpg.Connection) -> None:
    scored: SubmissionScoredV1 = event.data
    await repository.mark_scored(conn, scored.submission_id, scored.scored_at)


async def on_alert_acknowledged(event: CloudEvent[Any], conn: asyncpg.Connection) -> None:
    acknowledged: AlertAcknowledgedV1 = event.data
    if acknowledged.submission_ids:
        await repository.mark_seen(conn, list(acknowledged.submission_ids), acknowledged.acknowledged_at)
