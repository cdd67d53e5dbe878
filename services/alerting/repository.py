"""SQL for the alerting schema (parameterised only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.alerting.domain import ActiveAlert, ExpectedLevel, PreviousScore
from shared.events.alerts import AlertReason

ALERT_COLUMNS = (
    "id, patient_id, level, status, reasons, answered_by, submission_ids, message_ids, rule_set, raised_at, "
    "updated_at, acknowledged_by, acknowledged_at, resolved_by, resolved_at, outcome, resolution_note"
)


async def lock_patient(conn: asyncpg.Connection, patient_id: UUID) -> None:
    """Serialise the scoring of one patient's events across replicas (the merge rule reads then writes)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", str(patient_id))


async def previous_score(conn: asyncpg.Connection, patient_id: UUID, before: datetime) -> PreviousScore | None:
    row = await conn.fetchrow(
        "SELECT grades, ecog FROM scores WHERE patient_id = $1 AND authored < $2 ORDER BY authored DESC LIMIT 1",
        patient_id,
        before,
    )
    return PreviousScore(grades=row["grades"], ecog=row["ecog"]) if row else None


async def expected_levels(conn: asyncpg.Connection, patient_id: UUID, now: datetime) -> list[ExpectedLevel]:
    rows = await conn.fetch(
        "SELECT term, grade, until FROM expected_levels WHERE patient_id = $1 AND until > $2", patient_id, now
    )
    return [ExpectedLevel(r["term"], r["grade"], r["until"]) for r in rows]


async def active_alerts(conn: asyncpg.Connection, patient_id: UUID) -> list[ActiveAlert]:
    rows = await conn.fetch(
        "SELECT id, level, status, reasons FROM alerts WHERE patient_id = $1 AND status <> 'resolved' "
        "ORDER BY raised_at FOR UPDATE",
        patient_id,
    )
    return [
        ActiveAlert(r["id"], r["level"], r["status"], tuple(AlertReason.model_validate(x) for x in r["reasons"]))
        for r in rows
    ]


def _reasons_json(reasons: Sequence[AlertReason]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in reasons]


async def insert_alert(
    conn: asyncpg.Connection,
    *,
    alert_id: UUID,
    patient_id: UUID,
    level: str,
    reasons: Sequence[AlertReason],
    answered_by: str,
    submission_id: UUID | None,
    message_id: UUID | None,
    rule_set: str,
    at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO alerts (id, patient_id, level, status, reasons, answered_by, submission_ids, message_ids, "
        "rule_set, raised_at, updated_at) VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9, $9)",
        alert_id,
        patient_id,
        level,
        _reasons_json(reasons),
        answered_by,
        [submission_id] if submission_id else [],
        [message_id] if message_id else [],
        rule_set,
        at,
    )


async def merge_into_alert(
    conn: asyncpg.Connection,
    *,
    alert_id: UUID,
    level: str,
    status: str,
    reasons: Sequence[AlertReason],
    answered_by: str,
    submission_id: UUID | None,
    message_id: UUID | None,
    at: datetime,
) -> None:
    await conn.execute(
        "UPDATE alerts SET level = $2, status = $3, reasons = $4, answered_by = $5, updated_at = $8, "
        "submission_ids = CASE WHEN $6::uuid IS NULL THEN submission_ids ELSE array_append(submission_ids, $6) END, "
        "message_ids = CASE WHEN $7::uuid IS NULL THEN message_ids ELSE array_append(message_ids, $7) END, "
        "acknowledged_by = CASE WHEN $3 = 'open' THEN NULL ELSE acknowledged_by END, "
        "acknowledged_at = CASE WHEN $3 = 'open' THEN NULL ELSE acknowledged_at END "
        "WHERE id = $1",
        alert_id,
        level,
        status,
        _reasons_json(reasons),
        answered_by,
        submission_id,
        message_id,
        at,
    )


async def insert_score(
    conn: asyncpg.Connection,
    *,
    submission_id: UUID,
    patient_id: UUID,
    questionnaire_id: str,
    authored: datetime,
    answered_by: str,
    answers: dict[str, Any],
    grades: dict[str, int],
    ecog: int | None,
    level: str,
    alert_id: UUID | None,
    rule_set: str,
) -> None:
    await conn.execute(
        "INSERT INTO scores (submission_id, patient_id, questionnaire_id, authored, answered_by, answers, grades, "
        "ecog, level, alert_id, rule_set) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
        "ON CONFLICT (submission_id) DO NOTHING",
        submission_id,
        patient_id,
        questionnaire_id,
        authored,
        answered_by,
        answers,
        grades,
        ecog,
        level,
        alert_id,
        rule_set,
    )


async def insert_message(
    conn: asyncpg.Connection,
    *,
    message_id: UUID,
    patient_id: UUID,
    answered_by: str,
    body: str,
    sent_at: datetime,
    alert_id: UUID | None,
) -> None:
    await conn.execute(
        "INSERT INTO messages (id, patient_id, answered_by, body, sent_at, alert_id) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        message_id,
        patient_id,
        answered_by,
        body,
        sent_at,
        alert_id,
    )


async def get_alert(conn: asyncpg.Connection, alert_id: UUID, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1{lock}", alert_id)


async def list_alerts(
    conn: asyncpg.Connection, *, statuses: Sequence[str], levels: Sequence[str], limit: int, offset: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE status = ANY($1::text[]) AND level = ANY($2::text[]) "
        "ORDER BY CASE level WHEN 'red' THEN 0 ELSE 1 END, raised_at, id LIMIT $3 OFFSET $4",
        list(statuses),
        list(levels),
        limit,
        offset,
    )


async def acknowledge(conn: asyncpg.Connection, alert_id: UUID, staff_id: str, at: datetime) -> asyncpg.Record | None:
    """The conditional update is the race's referee: of two nurses, exactly one gets the row back."""
    return await conn.fetchrow(
        f"UPDATE alerts SET status = 'acknowledged', acknowledged_by = $2, acknowledged_at = $3, updated_at = $3 "
        f"WHERE id = $1 AND status = 'open' RETURNING {ALERT_COLUMNS}",
        alert_id,
        staff_id,
        at,
    )


async def resolve(
    conn: asyncpg.Connection, alert_id: UUID, staff_id: str, outcome: str, note: str | None, at: datetime
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"UPDATE alerts SET status = 'resolved', resolved_by = $2, resolved_at = $5, outcome = $3, "
        f"resolution_note = $4, updated_at = $5, acknowledged_by = COALESCE(acknowledged_by, $2), "
        f"acknowledged_at = COALESCE(acknowledged_at, $5) "
        f"WHERE id = $1 AND status <> 'resolved' RETURNING {ALERT_COLUMNS}",
        alert_id,
        staff_id,
        outcome,
        note,
        at,
    )


async def scores_for(conn: asyncpg.Connection, submission_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT submission_id, questionnaire_id, authored, answered_by, answers, grades, ecog, level, rule_set "
        "FROM scores WHERE submission_id = ANY($1::uuid[]) ORDER BY authored",
        list(submission_ids),
    )


async def messages_for(conn: asyncpg.Connection, message_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, answered_by, body, sent_at FROM messages WHERE id = ANY($1::uuid[]) ORDER BY sent_at",
        list(message_ids),
    )
