"""SQL for the questionnaire schema (parameterised only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg


async def insert_submission(
    conn: asyncpg.Connection,
    *,
    submission_id: UUID,
    patient_id: UUID,
    questionnaire_id: str,
    questionnaire_version: str,
    answered_by: str,
    authored: datetime,
    response: dict[str, Any],
) -> datetime:
    received_at: datetime = await conn.fetchval(
        "INSERT INTO submissions (id, patient_id, questionnaire_id, questionnaire_version, answered_by, "
        "authored, response) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING received_at",
        submission_id,
        patient_id,
        questionnaire_id,
        questionnaire_version,
        answered_by,
        authored,
        response,
    )
    return received_at


async def get_submission(conn: asyncpg.Connection, submission_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, patient_id, questionnaire_id, questionnaire_version, answered_by, authored, received_at, "
        "status, scored_at, seen_at FROM submissions WHERE id = $1",
        submission_id,
    )


async def mark_scored(conn: asyncpg.Connection, submission_id: UUID, at: datetime) -> None:
    # Status only moves forward: "seen" may arrive before "scored" (two consumers, no order between them).
    await conn.execute(
        "UPDATE submissions SET scored_at = COALESCE(scored_at, $2), "
        "status = CASE WHEN status = 'seen' THEN 'seen' ELSE 'scored' END WHERE id = $1",
        submission_id,
        at,
    )


async def mark_seen(conn: asyncpg.Connection, submission_ids: list[UUID], at: datetime) -> None:
    await conn.execute(
        "UPDATE submissions SET status = 'seen', seen_at = COALESCE(seen_at, $2) WHERE id = ANY($1::uuid[])",
        submission_ids,
        at,
    )


async def insert_message(
    conn: asyncpg.Connection, *, message_id: UUID, patient_id: UUID, answered_by: str, body: str
) -> datetime:
    sent_at: datetime = await conn.fetchval(
        "INSERT INTO messages (id, patient_id, answered_by, body) VALUES ($1, $2, $3, $4) RETURNING sent_at",
        message_id,
        patient_id,
        answered_by,
        body,
    )
    return sent_at
