"""SQL for the questionnaire schema (parameterised only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
import orjson

from shared.db.housekeeping import Purge
from shared.db.pool import plan_for_these_values
from shared.db.sets import RowTable


@dataclass(frozen=True)
class SubmissionRow:
    id: UUID
    patient_id: UUID
    questionnaire_id: str
    questionnaire_version: str
    answered_by: str
    authored: datetime
    response: orjson.Fragment  # the QuestionnaireResponse as received, encoded (shared.http.bodies)
    received_at: datetime
    recorded_by: str | None = None  # the nurse who entered it by phone; not a column of SUBMISSIONS (tablets')


# Where POST /v1/submissions stores its rows (``shared.http.ingress``); ``recorded_by`` stays NULL there.
SUBMISSIONS = RowTable(
    "submissions",
    (
        ("id", "uuid"),
        ("patient_id", "uuid"),
        ("questionnaire_id", "text"),
        ("questionnaire_version", "text"),
        ("answered_by", "text"),
        ("authored", "timestamptz"),
        ("response", "jsonb"),
        ("received_at", "timestamptz"),
    ),
)


async def insert_submission(conn: asyncpg.Connection, row: SubmissionRow) -> None:
    """One submission a nurse entered (POST /v1/patients/{id}/submissions), in the caller's transaction."""
    await conn.execute(
        "INSERT INTO submissions (id, patient_id, questionnaire_id, questionnaire_version, answered_by, authored, "
        "response, received_at, recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        row.id,
        row.patient_id,
        row.questionnaire_id,
        row.questionnaire_version,
        row.answered_by,
        row.authored,
        row.response,
        row.received_at,
        row.recorded_by,
    )


async def get_submission(conn: asyncpg.Connection, submission_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, patient_id, questionnaire_id, questionnaire_version, answered_by, authored, received_at, "
        "status, scored_at, seen_at FROM submissions WHERE id = $1",
        submission_id,
    )


async def get_message(conn: asyncpg.Connection, message_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, patient_id, sent_at, seen_at, photo_ids FROM messages WHERE id = $1", message_id
    )


@dataclass(frozen=True)
class PhotoRow:
    id: UUID
    patient_id: UUID
    width: int
    height: int
    jpeg: bytes


async def insert_photo(conn: asyncpg.Connection, row: PhotoRow) -> datetime:
    # PostgreSQL's now(), not the service's clock: the days after which a photo no message names is refused
    # (own_photos) and purged are counted from it by PostgreSQL's clock.
    received_at: datetime = await conn.fetchval(
        "INSERT INTO photos (id, patient_id, width, height, jpeg) VALUES ($1, $2, $3, $4, $5) RETURNING received_at",
        row.id,
        row.patient_id,
        row.width,
        row.height,
        row.jpeg,
    )
    return received_at


async def get_photo(conn: asyncpg.Connection, photo_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT id, patient_id, received_at, jpeg FROM photos WHERE id = $1", photo_id)


async def own_photos(
    conn: asyncpg.Connection, patient_id: UUID, photo_ids: Sequence[UUID], orphan_days: int
) -> set[UUID]:
    """Which of ``photo_ids`` are photos of this patient a message may name: one a message names already, or one
    uploaded less than ``orphan_days`` ago. An older one no message names is purged, or about to be: refused
    whether or not the purge has run, so that a message accepted here is never stored naming a photo the purge
    deletes meanwhile (``PURGE_ORPHAN_PHOTOS`` waits an hour more)."""
    rows = await conn.fetch(
        "SELECT id FROM photos WHERE id = ANY($1::uuid[]) AND patient_id = $2 "
        "AND (named OR received_at >= now() - make_interval(days => $3))",
        list(photo_ids),
        patient_id,
        orphan_days,
    )
    return {r["id"] for r in rows}


# One chunk of the housekeeping's purge of the photos no message names (``shared.db.housekeeping.Purge``; the
# ``named`` flag and its index: migration 005). Parameters: ORPHAN_PHOTO_DAYS, then the chunk's size. An hour past
# the days after which ``own_photos`` refuses them: a message accepted just before is committed long before, and
# its trigger has marked the photo named. ``AND NOT named`` again outside: a photo named while this chunk waited
# for its row is kept.
PURGE_ORPHAN_PHOTOS = (
    "DELETE FROM photos WHERE ctid = ANY(ARRAY(SELECT ctid FROM photos WHERE NOT named "
    "AND received_at < now() - make_interval(days => $1, hours => 1) ORDER BY received_at LIMIT $2)) AND NOT named"
)


def orphan_photos_purge(orphan_days: int) -> Purge:
    return Purge("orphan_photos", PURGE_ORPHAN_PHOTOS, (orphan_days,))


async def get_stored_response(conn: asyncpg.Connection, submission_id: UUID) -> asyncpg.Record | None:
    """A submission's QuestionnaireResponse as stored, and who answered it, for the FHIR export."""
    return await conn.fetchrow(
        "SELECT id, patient_id, answered_by, recorded_by, response FROM submissions WHERE id = $1", submission_id
    )


async def mark_scored(conn: asyncpg.Connection, scored: Sequence[tuple[UUID, datetime]]) -> None:
    # Status only moves forward: "seen" may arrive before "scored" (two consumers, no order between them).
    await plan_for_these_values(conn)
    await conn.execute(
        "UPDATE submissions s SET scored_at = COALESCE(s.scored_at, u.at), "
        "status = CASE WHEN s.status = 'seen' THEN 'seen' ELSE 'scored' END "
        "FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at) WHERE s.id = u.id",
        [i for i, _ in scored],
        [at for _, at in scored],
    )


async def mark_seen(conn: asyncpg.Connection, seen: Sequence[tuple[UUID, datetime]]) -> None:
    await plan_for_these_values(conn)
    await conn.execute(
        "UPDATE submissions s SET status = 'seen', seen_at = COALESCE(s.seen_at, u.at) "
        "FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at) WHERE s.id = u.id",
        [i for i, _ in seen],
        [at for _, at in seen],
    )


async def mark_messages_seen(conn: asyncpg.Connection, seen: Sequence[tuple[UUID, datetime]]) -> None:
    """The first time a nurse took or closed an alert holding the message is when it was seen."""
    if not seen:
        return  # most alerts hold answers only: no statement for them
    await plan_for_these_values(conn)
    await conn.execute(
        "UPDATE messages m SET seen_at = u.at FROM (SELECT id, min(at) AS at FROM unnest($1::uuid[], "
        "$2::timestamptz[]) AS x(id, at) GROUP BY id) u WHERE m.id = u.id AND (m.seen_at IS NULL OR m.seen_at > u.at)",
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
    photo_ids: orjson.Fragment  # a JSON array of the photos' ids


# Where POST /v1/messages stores its rows.
MESSAGES = RowTable(
    "messages",
    (
        ("id", "uuid"),
        ("patient_id", "uuid"),
        ("answered_by", "text"),
        ("body", "text"),
        ("sent_at", "timestamptz"),
        ("photo_ids", "jsonb"),
    ),
)
