"""What the questionnaire service does with the events it consumes: keep the tablet's status current (its answers'
and its messages'),
and stop accepting the device token of a tablet that was returned, lost or stolen.

The status handlers are set-wise (one statement per fetched batch): every submission is scored, so they
run as often as submissions arrive.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.questionnaire import repository
from shared.events.alerts import AlertAcknowledgedV1, AlertResolvedV1, SubmissionScoredV1
from shared.events.devices import TabletLostV1, TabletReturnedV1
from shared.messaging.consumer import Consumed
from shared.revocation import revoke


async def on_submission_scored(batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
    scored: list[SubmissionScoredV1] = [c.event.data for c in batch]
    await repository.mark_scored(conn, [(s.submission_id, s.scored_at) for s in scored])


async def on_alert_acknowledged(batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
    acknowledged: list[AlertAcknowledgedV1] = [c.event.data for c in batch]
    await repository.mark_seen(conn, [(sid, a.acknowledged_at) for a in acknowledged for sid in a.submission_ids])
    await repository.mark_messages_seen(conn, [(mid, a.acknowledged_at) for a in acknowledged for mid in a.message_ids])


async def on_alert_resolved(batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
    # A nurse may close an alert without taking it first: the patient's answers were seen all the same.
    resolved: list[AlertResolvedV1] = [c.event.data for c in batch]
    await repository.mark_seen(conn, [(sid, r.resolved_at) for r in resolved for sid in r.submission_ids])
    await repository.mark_messages_seen(conn, [(mid, r.resolved_at) for r in resolved for mid in r.message_ids])


async def on_tablet_returned(batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
    returned: list[TabletReturnedV1] = [c.event.data for c in batch]
    await revoke(conn, [r.token_id for r in returned], "tablet.returned")


async def on_tablet_lost(batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
    lost: list[TabletLostV1] = [c.event.data for c in batch]
    await revoke(conn, [lo.token_id for lo in lost if lo.token_id], "tablet.lost")
