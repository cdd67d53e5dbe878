"""SQL for the questionnaire schema (parameterised only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.db.sets import columns


@dataclass(frozen=True)
class SubmissionRow:
    id: UUID
    patient_id: UUID
    questionnaire_id: str
    questionnaire_version: str
    answered_by: str
    authored: datetime
    response: dict[str, Any]


async def insert_submissions(conn: asyncpg.Connection, rows: Sequence[SubmissionRow]) -> None:
    await conn.execute(
        "INSERT INTO submissions (id, patient_id, questionnaire_id, questionnaire_version, answered_by, authored, "
        "response) SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], "
        "$6::timestamptz[], $7::jsonb[])",
        *columns(
            rows, "id", "patient_id", "questionnaire_id", "questionnaire_version", "answered_by", "authored", "response"
        ),
    )


async def get_submission(conn: asyncpg.Connection, submission_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, patient_id, questionnaire_id, questionnaire_version, answered_by, authored, received_at, "
        "status, scored_at, seen_at FROM submissions WHERE id = $1",
        submission_id,
    )


async def mark_scored(conn: asyncpg.Connection, scored: Sequence[tuple[UUID, datetime]]) -> None:
    # Status only moves forward: "seen" may arrive before "scored" (two consumers, no order between them).
    await conn.execute(
        "UPDATE submissions s SET scored_at = COALESCE(s.scored_at, u.at), "
        "status = CASE WHEN s.status = 'seen' THEN 'seen' ELSE 'scored' END "
        "FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at) WHERE s.id = u.id",
        [i for i, _ in scored],
        [at for _, at in scored],
    )


async def mark_seen(conn: asyncpg.Connection, seen: Sequence[tuple[UUID, datetime]]) -> None:
    await conn.execute(
        "UPDATE submissions s SET status = 'seen', seen_at = COALESCE(s.seen_at, u.at) "
        "FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at) WHERE s.id = u.id",
        [i for i, _ in seen],
        [at for _, at in seen],
    )


@dataclass(frozen=True)
class MessageRow:
    id: UUID
    patient_id: UUID
    answered_by: str
    body: str
    sent_at: datetime


async def insert_messages(conn: asyncpg.Connection, rows: Sequence[MessageRow]) -> None:
    await conn.execute(
        "INSERT INTO messages (id, patient_id, answered_by, body, sent_at) "
        "SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[])",
        *columns(rows, "id", "patient_id", "answered_by", "body", "sent_at"),
    )
