"""SQL for the alerting schema (parameterised only)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
import orjson

from services.alerting.domain import DEFAULT_RULE_SET, ActiveAlert, ExpectedLevel, PreviousScore
from services.alerting.figures import PatientWeeks
from shared.db.housekeeping import Purge
from shared.db.outbox import event_columns, insert_events, notify_channel
from shared.db.sets import columns
from shared.events.alerts import AlertLevel, AlertReason, AlertStatus
from shared.events.envelope import CloudEvent
from shared.events.inclusion import SessionPlan
from shared.events.questionnaire import MessageSentV1, QuestionnaireSubmittedV1

ALERT_COLUMNS = (
    "id, patient_id, level, status, reasons, answered_by, submission_ids, message_ids, rule_set, raised_at, "
    "updated_at, acknowledged_by, acknowledged_at, resolved_by, resolved_at, outcome, resolution_note, "
    "level_since, escalation_level, escalated_at, reopened_by, reopened_at, reopened_by_finding_at, "
    "previously_acknowledged_by"
)


# When the patient (or a relative, or a nurse by phone) gave the latest answers or message the alert holds. A tablet
# that was offline sends its answers when it is back: days later, the nurse must see they are not today's.
# And the questionnaire answers that reached it last (those that raised it, or the latest merged into it while it was
# open): when they were given and when they arrived (were scored here). Answers given days ago that join an open
# alert today are late too, however recent those that raised it. Of answers scored together (one batch), the newest.
# (A message's sent_at is when the questionnaire service received it: never late the way a tablet's answers are.)
# Who gave those answers too: a nurse who took them by phone heard them as they were given, so they are never late,
# even when posted with an earlier `authored` or scored hours later (this service down overnight).
_LATEST_ANSWERS = (
    "FROM scores sc WHERE sc.submission_id = ANY(alerts.submission_ids) "
    "ORDER BY sc.scored_at DESC, sc.authored DESC LIMIT 1"
)
ANSWERED_AT = (
    "greatest((SELECT max(sc.authored) FROM scores sc WHERE sc.submission_id = ANY(alerts.submission_ids)), "
    "(SELECT max(m.sent_at) FROM messages m WHERE m.id = ANY(alerts.message_ids))) AS answered_at, "
    f"(SELECT sc.authored {_LATEST_ANSWERS}) AS latest_answers_authored, "
    f"(SELECT sc.scored_at {_LATEST_ANSWERS}) AS latest_answers_received_at, "
    f"(SELECT sc.answered_by {_LATEST_ANSWERS}) AS latest_answers_by"
)


@dataclass
class AlertRecord:
    """An active alert as the scoring handlers hold it between reading and writing it back."""

    alert_id: UUID
    patient_id: UUID
    level: AlertLevel
    status: AlertStatus
    reasons: tuple[AlertReason, ...]
    answered_by: str
    submission_ids: list[UUID]
    message_ids: list[UUID]
    raised_at: datetime
    updated_at: datetime
    is_new: bool = False
    changed: bool = False
    # When a new finding put it back from acknowledged to open (a step of its history), if it did.
    reopened_by_finding_at: datetime | None = None

    @classmethod
    def raised(
        cls,
        patient_id: UUID,
        level: AlertLevel,
        reasons: tuple[AlertReason, ...],
        answered_by: str,
        submission_id: UUID | None,
        message_id: UUID | None,
        at: datetime,
    ) -> AlertRecord:
        return cls(
            uuid.uuid4(),
            patient_id,
            level,
            "open",
            reasons,
            answered_by,
            [submission_id] if submission_id else [],
            [message_id] if message_id else [],
            at,
            at,
            is_new=True,
            changed=True,
        )

    def active(self) -> ActiveAlert:
        return ActiveAlert(self.alert_id, self.level, self.status, self.reasons)

    def merge(
        self,
        level: AlertLevel,
        status: AlertStatus,
        reasons: tuple[AlertReason, ...],
        answered_by: str,
        submission_id: UUID | None,
        message_id: UUID | None,
        at: datetime,
    ) -> None:
        if self.status == "acknowledged" and status == "open":
            self.reopened_by_finding_at = at
        self.level, self.status, self.reasons, self.answered_by, self.updated_at = (
            level,
            status,
            reasons,
            answered_by,
            at,
        )
        if submission_id:
            self.submission_ids.append(submission_id)
        if message_id:
            self.message_ids.append(message_id)
        self.changed = True


async def lock_patients(conn: asyncpg.Connection, patients: Sequence[UUID]) -> None:
    """Serialise the scoring of each patient's events across replicas (the merge rule reads then writes).

    Locks are taken in one order (sorted ids), so two batches cannot wait on each other forever."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(p::text, 0)) "
        "FROM (SELECT p FROM unnest($1::uuid[]) AS p ORDER BY p) AS sorted",
        list(patients),
    )


@dataclass(frozen=True)
class StoredPrevious:
    authored: datetime
    score: PreviousScore  # the grades of the latest earlier submission; the ECOG of the latest that gave one
    ecog_authored: datetime | None = None  # when that ECOG was given (the question is optional)


# A patient's active alerts, locked, one index lookup per patient whatever the table's statistics say: a
# plan made while the table was still empty (asyncpg keeps statements prepared, and PostgreSQL then reuses
# a generic plan) would otherwise scan the whole table for every batch (the OFFSET 0 keeps the lookup a
# separate subquery). JSON travels as text, the one form asyncpg decodes inside a record.
_ACTIVE_ALERTS = (
    "SELECT a.id, a.patient_id, a.level, a.status, a.reasons::text AS reasons, a.answered_by, a.submission_ids, "
    "a.message_ids, a.raised_at, a.updated_at FROM unnest($1::uuid[]) AS p(patient_id) CROSS JOIN LATERAL "
    "(SELECT * FROM alerts WHERE alerts.patient_id = p.patient_id AND status <> 'resolved' OFFSET 0 FOR UPDATE) "
    "AS a ORDER BY a.raised_at"
)
# For each (patient, authored) of $2/$3: the patient's latest stored score authored before it.
# The baseline of the worsening rules: the grades of the patient's latest earlier submission, and the ECOG of
# the latest earlier one that answered that optional question.
_PREVIOUS_SCORES = (
    "SELECT u.i, s.authored, s.grades::text AS grades, e.ecog, e.authored AS ecog_authored "
    "FROM unnest($2::uuid[], $3::timestamptz[]) WITH ORDINALITY AS u(patient_id, authored, i) "
    "LEFT JOIN LATERAL (SELECT authored, grades FROM scores "
    "WHERE patient_id = u.patient_id AND authored < u.authored ORDER BY authored DESC LIMIT 1) s ON true "
    "LEFT JOIN LATERAL (SELECT authored, ecog FROM scores WHERE patient_id = u.patient_id "
    "AND authored < u.authored AND ecog IS NOT NULL ORDER BY authored DESC LIMIT 1) e ON true"
)
_EXPECTED_LEVELS = (
    "SELECT patient_id, term, grade, until FROM expected_levels WHERE patient_id = ANY($1::uuid[]) AND until > $4"
)
# All a scoring batch reads, in one round trip where it took three: each part an array of records.
_SCORING_CONTEXT = (
    f"SELECT ARRAY(SELECT ROW(x.*) FROM ({_ACTIVE_ALERTS}) x ORDER BY x.raised_at), "
    f"ARRAY(SELECT ROW(x.authored, x.grades, x.ecog, x.ecog_authored) FROM ({_PREVIOUS_SCORES}) x ORDER BY x.i), "
    f"ARRAY(SELECT ROW(x.*) FROM ({_EXPECTED_LEVELS}) x)"
)


@dataclass(frozen=True)
class ScoringContext:
    """What scoring a batch of submissions needs from the database."""

    active: list[AlertRecord]  # the patients' active alerts, locked, oldest first
    previous: list[StoredPrevious | None]  # for each submission, in the order given
    expected: defaultdict[UUID, list[ExpectedLevel]]  # the levels a nurse expects, per patient


async def scoring_context(
    conn: asyncpg.Connection, patients: Sequence[UUID], submissions: Sequence[tuple[UUID, datetime]], now: datetime
) -> ScoringContext:
    """Read, in one statement, what the batch's scoring needs. The patients must be locked already
    (``lock_patients``, a statement before): this one's snapshot must include what the lock waited for."""
    row = await conn.fetchrow(
        _SCORING_CONTEXT, list(patients), [p for p, _ in submissions], [a for _, a in submissions], now
    )
    assert row is not None
    active, previous, expected_rows = row
    expected: defaultdict[UUID, list[ExpectedLevel]] = defaultdict(list)
    for patient_id, term, grade, until in expected_rows:
        expected[patient_id].append(ExpectedLevel(term, grade, until))
    return ScoringContext(
        [_alert_record(r) for r in active],
        [
            StoredPrevious(authored, PreviousScore(grades=orjson.loads(grades), ecog=ecog), ecog_authored)
            if authored
            else None
            for authored, grades, ecog, ecog_authored in previous
        ],
        expected,
    )


async def active_alerts(conn: asyncpg.Connection, patients: Sequence[UUID]) -> list[AlertRecord]:
    return [_alert_record(r) for r in await conn.fetch(_ACTIVE_ALERTS, list(patients))]


def _alert_record(values: Sequence[Any]) -> AlertRecord:
    """An ``AlertRecord`` from a row of ``_ACTIVE_ALERTS``."""
    alert_id, patient_id, level, status, reasons, answered_by, submission_ids, message_ids, raised_at, updated_at = (
        values
    )
    return AlertRecord(
        alert_id,
        patient_id,
        level,
        status,
        tuple(AlertReason.model_validate(x) for x in orjson.loads(reasons)),
        answered_by,
        list(submission_ids),
        list(message_ids),
        raised_at,
        updated_at,
    )


def _reasons_json(reasons: Sequence[AlertReason]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in reasons]


def _insert_alerts(first: int) -> str:
    """The INSERT of new alerts from the ten arrays ``$first``… of ``_alert_columns`` and the rule set."""
    p = [f"${first + k}" for k in range(len(_alert_columns([])))]
    return (
        "INSERT INTO alerts (id, patient_id, level, status, reasons, answered_by, submission_ids, message_ids, "
        "rule_set, raised_at, updated_at, level_since) "
        # JSON lists travel as text: asyncpg would read a list of lists as a two-dimensional array.
        "SELECT u.id, u.patient_id, u.level, u.status, u.reasons::jsonb, u.answered_by, "
        "ARRAY(SELECT jsonb_array_elements_text(u.submission_ids::jsonb)::uuid), "
        f"ARRAY(SELECT jsonb_array_elements_text(u.message_ids::jsonb)::uuid), {p[10]}, u.raised_at, u.updated_at, "
        "u.raised_at "
        f"FROM unnest({p[0]}::uuid[], {p[1]}::uuid[], {p[2]}::text[], {p[3]}::text[], {p[4]}::text[], "
        f"{p[5]}::text[], {p[6]}::text[], {p[7]}::text[], {p[8]}::timestamptz[], {p[9]}::timestamptz[]) "
        "AS u(id, patient_id, level, status, reasons, answered_by, submission_ids, message_ids, raised_at, "
        "updated_at)"
    )


def _alert_columns(new: Sequence[AlertRecord], rule_set: str = DEFAULT_RULE_SET.label) -> list[Any]:
    return [
        *columns(new, "alert_id", "patient_id", "level", "status"),
        [orjson.dumps(_reasons_json(r.reasons)).decode() for r in new],
        [r.answered_by for r in new],
        [orjson.dumps(r.submission_ids).decode() for r in new],
        [orjson.dumps(r.message_ids).decode() for r in new],
        [r.raised_at for r in new],
        [r.updated_at for r in new],
        rule_set,
    ]


def _new_and_merged(records: Iterable[AlertRecord]) -> tuple[list[AlertRecord], list[AlertRecord]]:
    every = list(records)
    return [r for r in every if r.is_new], [r for r in every if r.changed and not r.is_new]


async def save_alerts(
    conn: asyncpg.Connection, records: Iterable[AlertRecord], rule_set: str = DEFAULT_RULE_SET.label
) -> None:
    """Insert the new alerts (raised under ``rule_set``) and write back the merged ones, in their final state."""
    new, merged = _new_and_merged(records)
    if new:
        await conn.execute(_insert_alerts(1), *_alert_columns(new, rule_set))
    reopened = _reopened_by_finding(merged)
    if reopened:
        await conn.execute(_insert_reopened_by_finding(1), *_reopened_by_finding_columns(reopened))
    await _write_back(conn, merged)


def _reopened_by_finding(merged: Sequence[AlertRecord]) -> list[AlertRecord]:
    return [r for r in merged if r.reopened_by_finding_at is not None]


def _insert_reopened_by_finding(first: int) -> str:
    """The INSERT of "reopened by a new finding" steps from the two arrays ``$first``… of
    ``_reopened_by_finding_columns``."""
    return (
        "INSERT INTO alert_steps (alert_id, action, at) SELECT u.alert_id, 'reopened_by_finding', u.at "
        f"FROM unnest(${first}::uuid[], ${first + 1}::timestamptz[]) AS u(alert_id, at)"
    )


def _reopened_by_finding_columns(reopened: Sequence[AlertRecord]) -> list[list[Any]]:
    return columns(reopened, "alert_id", "reopened_by_finding_at")


async def _write_back(conn: asyncpg.Connection, merged: Sequence[AlertRecord]) -> None:
    if merged:
        # An alert that went back to "open" needs a nurse again: it is no longer anyone's, and its service-level
        # clock (and its escalations) starts again, as it does when its level rises. It has waited since then,
        # and the nurse who had it is kept, for the dashboard to say so.
        await conn.executemany(
            "UPDATE alerts SET level = $2, status = $3, reasons = $4, answered_by = $5, submission_ids = $6, "
            "message_ids = $7, updated_at = $8, "
            "level_since = CASE WHEN $2 <> level OR ($3 = 'open' AND status <> 'open') THEN $8 ELSE level_since END, "
            "escalation_level = CASE WHEN $2 <> level OR ($3 = 'open' AND status <> 'open') THEN 0 "
            "ELSE escalation_level END, "
            "reopened_by_finding_at = CASE WHEN $3 = 'open' AND status <> 'open' THEN $8 "
            "ELSE reopened_by_finding_at END, "
            "previously_acknowledged_by = CASE WHEN $3 = 'open' AND status <> 'open' THEN acknowledged_by "
            "ELSE previously_acknowledged_by END, "
            "acknowledged_by = CASE WHEN $3 = 'open' THEN NULL ELSE acknowledged_by END, "
            "acknowledged_at = CASE WHEN $3 = 'open' THEN NULL ELSE acknowledged_at END WHERE id = $1",
            [
                (
                    r.alert_id,
                    r.level,
                    r.status,
                    _reasons_json(r.reasons),
                    r.answered_by,
                    r.submission_ids,
                    r.message_ids,
                    r.updated_at,
                )
                for r in merged
            ],
        )


@dataclass(frozen=True)
class ScoreRow:
    submission_id: UUID
    patient_id: UUID
    questionnaire_id: str
    authored: datetime
    answered_by: str
    answers: dict[str, Any]
    grades: dict[str, int]
    ecog: int | None
    level: str
    alert_id: UUID | None
    rule_set: str
    recorded_by: str | None  # the nurse who took the answers by phone
    # By the service's clock, as the alert the answers raised: the dashboard tells how late answers arrived from it.
    scored_at: datetime

    @classmethod
    def of(
        cls,
        submission: QuestionnaireSubmittedV1,
        grades: dict[str, int],
        level: str,
        alert_id: UUID | None,
        rule_set: str,
        scored_at: datetime,
    ) -> ScoreRow:
        return cls(
            submission.submission_id,
            submission.patient_id,
            submission.questionnaire_id,
            submission.authored,
            submission.answered_by,
            submission.model_dump(mode="json", include={"terms", "red_flags", "ecog"}),
            grades,
            submission.ecog,
            level,
            alert_id,
            rule_set,
            submission.recorded_by,
            scored_at,
        )


def _insert_scores(first: int) -> str:
    """The INSERT of scores from the thirteen arrays ``$first``… of ``_score_columns``."""
    p = [f"${first + k}" for k in range(len(_score_columns([])))]
    return (
        "INSERT INTO scores (submission_id, patient_id, questionnaire_id, authored, answered_by, answers, grades, "
        f"ecog, level, alert_id, rule_set, recorded_by, scored_at) SELECT * FROM unnest({p[0]}::uuid[], "
        f"{p[1]}::uuid[], {p[2]}::text[], {p[3]}::timestamptz[], {p[4]}::text[], {p[5]}::jsonb[], {p[6]}::jsonb[], "
        f"{p[7]}::int[], {p[8]}::text[], {p[9]}::uuid[], {p[10]}::text[], {p[11]}::text[], {p[12]}::timestamptz[]) "
        "ON CONFLICT (submission_id) DO NOTHING"
    )


def _score_columns(rows: Sequence[ScoreRow]) -> list[list[Any]]:
    return columns(
        rows,
        "submission_id",
        "patient_id",
        "questionnaire_id",
        "authored",
        "answered_by",
        "answers",
        "grades",
        "ecog",
        "level",
        "alert_id",
        "rule_set",
        "recorded_by",
        "scored_at",
    )


# A scoring batch's writes, in one statement (one round trip instead of three: measured per batch at
# 1,000 submissions/s, the three took 3.5 ms of its 10): the new alerts' parameters, the scores', the
# events', the relay's channel, and the steps of the alerts a finding reopened (rare: usually empty arrays),
# numbered from what each part's column builder gives.
# Data-modifying CTEs all run, whether read or not.
_SCORES_AT = 1 + len(_alert_columns([]))
_EVENTS_AT = _SCORES_AT + len(_score_columns([]))
_CHANNEL_AT = _EVENTS_AT + len(event_columns([]))
_REOPENED_AT = _CHANNEL_AT + 1
_SCORING_WRITES = (
    f"WITH new_alerts AS ({_insert_alerts(1)}), scored AS ({_insert_scores(_SCORES_AT)}), "
    f"events AS ({insert_events(_EVENTS_AT)}), reopened AS ({_insert_reopened_by_finding(_REOPENED_AT)}) "
    f"SELECT pg_notify(${_CHANNEL_AT}, '') WHERE EXISTS (SELECT 1 FROM events)"
)


async def save_scoring(
    conn: asyncpg.Connection,
    records: Iterable[AlertRecord],
    scores: Sequence[ScoreRow],
    events: Sequence[tuple[CloudEvent[Any], dict[str, str]]],
    *,
    schema: str,
    rule_set: str = DEFAULT_RULE_SET.label,
) -> None:
    """A scoring batch's alerts (new, and merged ones written back, with a step for each that a finding
    reopened), scores and outbox events."""
    new, merged = _new_and_merged(records)
    await conn.execute(
        _SCORING_WRITES,
        *_alert_columns(new, rule_set),
        *_score_columns(scores),
        *event_columns(events),
        notify_channel(schema),
        *_reopened_by_finding_columns(_reopened_by_finding(merged)),
    )
    await _write_back(conn, merged)


@dataclass(frozen=True)
class MessageRow:
    id: UUID
    patient_id: UUID
    answered_by: str
    body: str
    sent_at: datetime
    alert_id: UUID | None
    photo_ids: tuple[UUID, ...] = ()

    @classmethod
    def of(cls, message: MessageSentV1, alert_id: UUID | None) -> MessageRow:
        return cls(
            message.message_id,
            message.patient_id,
            message.answered_by,
            message.text,
            message.sent_at,
            alert_id,
            message.photo_ids,
        )


async def insert_messages(conn: asyncpg.Connection, rows: Sequence[MessageRow]) -> None:
    await conn.execute(
        "INSERT INTO messages (id, patient_id, answered_by, body, sent_at, alert_id, photo_ids) "
        # JSON lists travel as text: asyncpg would read a list of lists as a two-dimensional array.
        "SELECT u.id, u.patient_id, u.answered_by, u.body, u.sent_at, u.alert_id, "
        "ARRAY(SELECT jsonb_array_elements_text(u.photo_ids::jsonb)::uuid) "
        "FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::uuid[], $7::text[]) "
        "AS u(id, patient_id, answered_by, body, sent_at, alert_id, photo_ids) "
        "ON CONFLICT (id) DO NOTHING",
        *columns(rows, "id", "patient_id", "answered_by", "body", "sent_at", "alert_id"),
        [orjson.dumps([str(p) for p in r.photo_ids]).decode() for r in rows],
    )


async def get_alert(conn: asyncpg.Connection, alert_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {ALERT_COLUMNS}, {ANSWERED_AT}, ns.next_session_at FROM alerts {_WITH_NEXT_SESSION} WHERE id = $1",
        alert_id,
    )


# The patient's next chemotherapy session: the triage list's third sort key.
_WITH_NEXT_SESSION = (
    "LEFT JOIN LATERAL (SELECT min(s.scheduled_for) AS next_session_at FROM sessions s "
    "WHERE s.patient_id = alerts.patient_id AND NOT s.cancelled AND s.scheduled_for >= now()) ns ON true"
)


async def list_alerts(
    conn: asyncpg.Connection, *, statuses: Sequence[str], levels: Sequence[str], limit: int, offset: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {ALERT_COLUMNS}, {ANSWERED_AT}, ns.next_session_at FROM alerts {_WITH_NEXT_SESSION} "
        "WHERE status = ANY($1::text[]) AND level = ANY($2::text[]) "
        # CLINICAL.md §4: level, then time waiting (until a nurse took it: an alert in hand has stopped waiting;
        # one that a new finding sent back to open waits again from then), then the next chemotherapy session.
        # Within a level, the alerts nobody has taken come first: the top of the list is what needs a nurse now, and
        # an alert taken late (its wait frozen at hours) must not sit above a red one nobody has touched yet.
        "ORDER BY CASE level WHEN 'red' THEN 0 ELSE 1 END, status <> 'open', "
        "coalesce(acknowledged_at, now()) - coalesce(reopened_by_finding_at, raised_at) DESC, "
        "ns.next_session_at NULLS LAST, id "
        "LIMIT $3 OFFSET $4",
        list(statuses),
        list(levels),
        limit,
        offset,
    )


async def alert_totals(
    conn: asyncpg.Connection,
    *,
    statuses: Sequence[str],
    levels: Sequence[str],
    red_overdue_if_since: datetime,
    orange_overdue_if_since: datetime,
) -> asyncpg.Record:
    """How many alerts the list's filter matches, per level and status, and how many of them are overdue (open,
    at their level since the cutoff ``ServiceLevels.overdue_if_since`` gives, or earlier): whatever page is read."""
    row = await conn.fetchrow(
        "SELECT count(*) AS total, count(*) FILTER (WHERE level = 'red') AS red, "
        "count(*) FILTER (WHERE level = 'orange') AS orange, count(*) FILTER (WHERE status = 'open') AS open, "
        "count(*) FILTER (WHERE status = 'acknowledged') AS acknowledged, "
        "count(*) FILTER (WHERE status = 'resolved') AS resolved, "
        "count(*) FILTER (WHERE status = 'open' AND level_since <= CASE level WHEN 'red' THEN $3::timestamptz "
        "ELSE $4::timestamptz END) AS overdue "
        "FROM alerts WHERE status = ANY($1::text[]) AND level = ANY($2::text[])",
        list(statuses),
        list(levels),
        red_overdue_if_since,
        orange_overdue_if_since,
    )
    assert row is not None
    return row


async def acknowledge(conn: asyncpg.Connection, alert_id: UUID, staff_id: str, at: datetime) -> asyncpg.Record | None:
    """The conditional update is the race's referee: of two nurses, exactly one gets the row back."""
    return await conn.fetchrow(
        f"UPDATE alerts SET status = 'acknowledged', acknowledged_by = $2, acknowledged_at = $3, updated_at = $3 "
        f"WHERE id = $1 AND status = 'open' RETURNING {ALERT_COLUMNS}, {ANSWERED_AT}",
        alert_id,
        staff_id,
        at,
    )


async def resolve(
    conn: asyncpg.Connection,
    alert_id: UUID,
    staff_id: str,
    outcome: str,
    note: str | None,
    at: datetime,
    *,
    seen: Sequence[datetime] | None = None,
) -> asyncpg.Record | None:
    """With ``seen``, only an alert still at one of those versions (``updated_at``) is closed: the check is in the
    UPDATE itself, so a new answer merged a moment before cannot slip between a read and the write."""
    return await conn.fetchrow(
        f"UPDATE alerts SET status = 'resolved', resolved_by = $2, resolved_at = $5, outcome = $3, "
        f"resolution_note = $4, updated_at = $5, acknowledged_by = COALESCE(acknowledged_by, $2), "
        f"acknowledged_at = COALESCE(acknowledged_at, $5) "
        f"WHERE id = $1 AND status <> 'resolved' AND ($6::timestamptz[] IS NULL OR updated_at = ANY($6)) "
        f"RETURNING {ALERT_COLUMNS}, {ANSWERED_AT}",
        alert_id,
        staff_id,
        outcome,
        note,
        at,
        None if seen is None else list(seen),
    )


# When this service received (and scored) a submission: with its `authored`, how late the answers reached the team.
RECEIVED_AT = "scored_at AS received_at"


async def scores_for(conn: asyncpg.Connection, submission_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT submission_id, questionnaire_id, authored, answered_by, recorded_by, answers, grades, ecog, level, "
        f"rule_set, {RECEIVED_AT}, {_name_of('recorded_by')} FROM scores WHERE submission_id = ANY($1::uuid[]) "
        "ORDER BY authored",
        list(submission_ids),
    )


async def messages_for(conn: asyncpg.Connection, message_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, answered_by, body, sent_at, photo_ids FROM messages WHERE id = ANY($1::uuid[]) ORDER BY sent_at",
        list(message_ids),
    )


async def upsert_sessions(conn: asyncpg.Connection, plans: Sequence[SessionPlan]) -> None:
    """Each session's plan, unless the one stored was made later (``latest_plans``)."""
    sessions = [p.session for p in plans]
    await conn.execute(
        "INSERT INTO sessions (session_id, patient_id, scheduled_for, cycle, cancelled, planned_at) "
        "SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::int[], $5::bool[], $6::timestamptz[]) "
        "ON CONFLICT (session_id) DO UPDATE SET patient_id = EXCLUDED.patient_id, "
        "scheduled_for = EXCLUDED.scheduled_for, cycle = EXCLUDED.cycle, cancelled = EXCLUDED.cancelled, "
        "planned_at = EXCLUDED.planned_at WHERE sessions.planned_at <= EXCLUDED.planned_at",
        *columns(sessions, "session_id", "patient_id", "scheduled_for", "cycle", "cancelled"),
        [p.planned_at for p in plans],
    )


async def reopen(conn: asyncpg.Connection, alert_id: UUID, staff_id: str, at: datetime) -> asyncpg.Record | None:
    """A resolved alert back in the hands of the nurse who reopened it; returns it with its previous outcome.

    ``acknowledged_at`` stays when a nurse first took it: the patient's wait ended then (``waiting_seconds``, the
    list's order, the team's time to acknowledge); the reopen is ``reopened_at`` and a step of its history."""
    return await conn.fetchrow(
        "WITH before AS (SELECT id, outcome FROM alerts WHERE id = $1 AND status = 'resolved' FOR UPDATE) "
        "UPDATE alerts SET status = 'acknowledged', acknowledged_by = $2, "
        "acknowledged_at = COALESCE(alerts.acknowledged_at, $3), reopened_by = $2, "
        "reopened_at = $3, outcome = NULL, resolution_note = NULL, resolved_by = NULL, resolved_at = NULL, "
        f"updated_at = $3 FROM before WHERE alerts.id = before.id RETURNING {_qualified('alerts', ALERT_COLUMNS)}, "
        f"{ANSWERED_AT}, before.outcome AS previous_outcome",
        alert_id,
        staff_id,
        at,
    )


StepAction = Literal["acknowledged", "resolved", "reopened", "reopened_by_finding"]


@dataclass(frozen=True)
class NurseStep:
    """A step a nurse took on an alert, for its history (``alert_steps``)."""

    action: Literal["acknowledged", "resolved", "reopened"]
    at: datetime
    outcome: str | None = None  # resolved
    note: str | None = None  # resolved
    reason: str | None = None  # reopened


async def add_nurse_step(conn: asyncpg.Connection, alert_id: UUID, staff_id: str, step: NurseStep) -> None:
    await conn.execute(
        "INSERT INTO alert_steps (alert_id, action, at, staff_id, outcome, note, reason) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        alert_id,
        step.action,
        step.at,
        staff_id,
        step.outcome,
        step.note,
        step.reason,
    )


async def alert_steps(conn: asyncpg.Connection, alert_ids: Sequence[UUID]) -> list[asyncpg.Record]:
    """The steps of these alerts, each alert's oldest first: an index lookup per alert, whatever plan the table's
    statistics made when it was small (as ``_ACTIVE_ALERTS``)."""
    return await conn.fetch(
        "SELECT s.alert_id, s.action, s.at, s.staff_id, staff.display_name AS staff_name, s.outcome, s.note, s.reason "
        "FROM unnest($1::uuid[]) AS a(alert_id) CROSS JOIN LATERAL "
        "(SELECT * FROM alert_steps WHERE alert_steps.alert_id = a.alert_id OFFSET 0) AS s "
        "LEFT JOIN staff ON staff.id = s.staff_id "
        "ORDER BY s.alert_id, s.at, s.id",
        list(alert_ids),
    )


def _qualified(table: str, names: str) -> str:
    return ", ".join(f"{table}.{name.strip()}" for name in names.split(","))


async def awaiting_acknowledgement(conn: asyncpg.Connection, started_before: datetime) -> list[asyncpg.Record]:
    """Open alerts that may still be escalated, at their level since before ``started_before`` (the newer
    ones cannot be due yet: reading every open alert each time would grow with the backlog)."""
    return await conn.fetch(
        "SELECT id, patient_id, level, status, level_since, escalation_level FROM alerts "
        "WHERE status = 'open' AND escalation_level < 2 AND level_since <= $1",
        started_before,
    )


async def escalate(
    conn: asyncpg.Connection, alert_id: UUID, to_level: int, level_since: datetime, at: datetime
) -> asyncpg.Record | None:
    """The conditional update is what makes an escalation happen once: of two replicas deciding at the same
    moment, one gets the row back; an alert acknowledged or raised to another level meanwhile is left alone."""
    return await conn.fetchrow(
        "UPDATE alerts SET escalation_level = $2, escalated_at = $4 "
        "WHERE id = $1 AND status = 'open' AND escalation_level < $2 AND level_since = $3 "
        "RETURNING id, patient_id, level, level_since",
        alert_id,
        to_level,
        level_since,
        at,
    )


async def patient_scores(conn: asyncpg.Connection, patient_id: UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM (SELECT submission_id, authored, answered_by, recorded_by, grades, level, ecog, alert_id, "
        f"{RECEIVED_AT}, {_name_of('recorded_by')} FROM scores WHERE patient_id = $1 ORDER BY authored DESC "
        "LIMIT $2) recent ORDER BY authored",
        patient_id,
        limit,
    )


async def patient_alerts(conn: asyncpg.Connection, patient_id: UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {ALERT_COLUMNS}, {ANSWERED_AT}, ns.next_session_at FROM alerts {_WITH_NEXT_SESSION} "
        "WHERE patient_id = $1 ORDER BY raised_at DESC LIMIT $2",
        patient_id,
        limit,
    )


async def patient_messages(conn: asyncpg.Connection, patient_id: UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, answered_by, body, sent_at, alert_id, photo_ids FROM messages WHERE patient_id = $1 "
        "ORDER BY sent_at DESC LIMIT $2",
        patient_id,
        limit,
    )


async def patient_sessions(conn: asyncpg.Connection, patient_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT session_id, scheduled_for, cycle FROM sessions WHERE patient_id = $1 AND NOT cancelled "
        "ORDER BY scheduled_for",
        patient_id,
    )


async def patient_expected_levels(conn: asyncpg.Connection, patient_id: UUID, now: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT term, grade, until, set_by, set_at, {_name_of('set_by')} FROM expected_levels "
        "WHERE patient_id = $1 AND until > $2 ORDER BY term",
        patient_id,
        now,
    )


async def set_expected_level(
    conn: asyncpg.Connection, patient_id: UUID, term: str, grade: int, until: datetime, staff_id: str, at: datetime
) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO expected_levels (patient_id, term, grade, until, set_by, set_at) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (patient_id, term) DO UPDATE SET grade = EXCLUDED.grade, until = EXCLUDED.until, "
        "set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at "
        f"RETURNING term, grade, until, set_by, set_at, {_name_of('set_by')}",
        patient_id,
        term,
        grade,
        until,
        staff_id,
        at,
    )


async def patient_reported_term(conn: asyncpg.Connection, patient_id: UUID, term: str) -> bool:
    """Whether any scored answers of this patient graded ``term`` (a symptom of whichever questionnaire they use)."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM scores WHERE patient_id = $1 AND grades ? $2)", patient_id, term
        )
    )


async def clear_expected_level(conn: asyncpg.Connection, patient_id: UUID, term: str) -> bool:
    status = await conn.execute("DELETE FROM expected_levels WHERE patient_id = $1 AND term = $2", patient_id, term)
    return status != "DELETE 0"


# An alert's facts for the team's figures (``figures.AlertFacts``).
_FACT_COLUMNS = (
    "level, status, raised_at, level_since, acknowledged_at, resolved_at, outcome, "
    "coalesce(reopened_by_finding_at, raised_at) AS waiting_since"
)


async def alerts_raised_between(conn: asyncpg.Connection, start: datetime, stop: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_FACT_COLUMNS} FROM alerts WHERE raised_at >= $1 AND raised_at < $2",
        start,
        stop,
    )


async def patient_weeks_between(conn: asyncpg.Connection, start: datetime, stop: datetime) -> PatientWeeks:
    """The period cut into weeks from ``start``: each (patient, week) with answers, a message or an alert in it is
    followed; those with an alert raised are counted apart (``figures.PatientWeeks``)."""
    row = await conn.fetchrow(
        "WITH activity AS ("
        "  SELECT patient_id, authored AS at, false AS alerted FROM scores WHERE authored >= $1 AND authored < $2 "
        "  UNION ALL SELECT patient_id, sent_at, false FROM messages WHERE sent_at >= $1 AND sent_at < $2 "
        "  UNION ALL SELECT patient_id, raised_at, true FROM alerts WHERE raised_at >= $1 AND raised_at < $2), "
        "weeks AS (SELECT patient_id, floor(extract(epoch FROM at - $1::timestamptz) / 604800) AS week, "
        "          bool_or(alerted) AS alerted FROM activity GROUP BY 1, 2) "
        "SELECT count(*) AS followed, count(*) FILTER (WHERE alerted) AS with_alert FROM weeks",
        start,
        stop,
    )
    return PatientWeeks(followed=row["followed"], with_alert=row["with_alert"])


async def open_alerts_for_overdue(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_FACT_COLUMNS} FROM alerts WHERE status = 'open'")


def _name_of(column: str) -> str:
    """``<column>_name``: the known display name of the staff member a column names (null: none known)."""
    return f"(SELECT display_name FROM staff WHERE staff.id = {column}) AS {column}_name"


# The columns of an alert that name a staff member, each shown with that person's name beside it (``<column>_name``).
STAFF_COLUMNS = ("acknowledged_by", "resolved_by", "reopened_by", "previously_acknowledged_by")


async def staff_names(conn: asyncpg.Connection, alerts: Iterable[Any]) -> dict[str, str]:
    """The known names of the staff members these alerts name."""
    ids = {row.get(column) for row in alerts for column in STAFF_COLUMNS} - {None}
    if not ids:
        return {}
    rows = await conn.fetch(
        "SELECT id, display_name FROM staff WHERE id = ANY($1::text[]) AND display_name IS NOT NULL", sorted(ids)
    )
    return {row["id"]: row["display_name"] for row in rows}


async def use_stream_token(conn: asyncpg.Connection, token_id: str) -> bool:
    """Records the stream token as used; False when it was already (by this replica or another: the primary key
    decides between two openings at once)."""
    first = await conn.fetchval(
        "INSERT INTO stream_token_uses (token_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true", token_id
    )
    return first is not None


# One chunk of the housekeeping's purge of used stream tokens (``shared.db.housekeeping.Purge``). Parameters: the
# days kept, then the chunk's size. A day is far past the token's 60 s, whatever the replicas' clocks say.
PURGE_STREAM_TOKEN_USES = (
    "DELETE FROM stream_token_uses WHERE ctid = ANY(ARRAY(SELECT ctid FROM stream_token_uses "
    "WHERE used_at < now() - make_interval(days => $1) ORDER BY used_at LIMIT $2))"
)
STREAM_TOKEN_USES_PURGE = Purge("stream_token_uses", PURGE_STREAM_TOKEN_USES, (1,))
