"""What the questionnaire service does with the events it consumes: keep the tablet's status current.

Both are set-wise (one statement per fetched batch): every submission is scored, so these run as often
as submissions arrive.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.questionnaire import repository
from shared.events.alerts import AlertAcknowledgedV1, SubmissionScoredV1
from shared.messaging.consumer import Consumed


async def on_submission_scored(batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
    scored: list[SubmissionScoredV1] = [c.event.data for c in batch]
    await repository.mark_scored(conn, [(s.submission_id, s.scored_at) for s in scored])


async def on_alert_acknowledged(batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
    acknowledged: list[AlertAcknowledgedV1] = [c.event.data for c in batch]
    await repository.mark_seen(conn, [(sid, a.acknowledged_at) for a in acknowledged for sid in a.submission_ids])
