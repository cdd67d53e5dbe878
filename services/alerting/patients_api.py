"""One patient, as the nurse opens it from an alert: the symptom trend, alerts, messages, sessions, and the
expected levels that stop known, managed symptoms from alerting."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from services.alerting import repository
from services.alerting.api import AlertStepView, AlertView, LevelsDep, Nurse, alert_view, steps_by_alert
from services.alerting.labels import TERMS
from services.alerting.service_levels import ServiceLevels
from shared.audit import audit_staff
from shared.datetimes import CalendarDate
from shared.db.staff import remember_staff
from shared.http.app import NowDep, PlatformDep
from shared.http.openapi import problem_responses
from shared.http.problems import Problem

router = APIRouter(prefix="/v1/patients", tags=["patients"])

EXPECTED_LEVEL_MAX_DAYS = 30


class ScorePoint(BaseModel):
    submission_id: UUID
    authored: datetime
    received_at: datetime = Field(
        description="When this service received and scored these answers (long after `authored` when the tablet was "
        "offline)"
    )
    answered_by: str
    recorded_by: str | None = Field(
        default=None, description="answered_by nurse_phone: the staff id of the nurse who took the answers by phone"
    )
    recorded_by_name: str | None = Field(default=None, description="recorded_by's display name (null: none known)")
    grades: dict[str, int]
    level: str
    ecog: int | None
    alert_id: UUID | None


class PatientMessage(BaseModel):
    id: UUID
    answered_by: str
    body: str = Field(description="Empty when the message is photos only")
    sent_at: datetime
    alert_id: UUID | None
    photo_ids: list[UUID] = Field(description="Its photos: GET /v1/photos/{id} on the questionnaire service")


class Session(BaseModel):
    session_id: UUID
    scheduled_for: datetime
    cycle: int | None


class ExpectedLevelView(BaseModel):
    term: str
    grade: int
    until: datetime
    set_by: str
    set_by_name: str | None = Field(default=None, description="set_by's display name (null: none known)")
    set_at: datetime


class PatientAlert(AlertView):
    steps: list[AlertStepView] = Field(description="What was done, oldest first; kept when the alert is reopened")


class Timeline(BaseModel):
    patient_id: UUID
    submissions: list[ScorePoint] = Field(description="Oldest first: the per-term composite-grade trend")
    alerts: list[PatientAlert] = Field(description="Newest first, with their outcomes and steps")
    messages: list[PatientMessage] = Field(description="Newest first")
    sessions: list[Session] = Field(description="Chemotherapy sessions, to align the trend on")
    expected_levels: list[ExpectedLevelView]


@router.get("/{patient_id}/timeline", response_model=Timeline, summary="The patient's trend, alerts and messages")
async def timeline(
    patient_id: UUID,
    nurse: Nurse,
    platform: PlatformDep,
    levels: LevelsDep,
    now: NowDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 60,
) -> Any:
    async with platform.pool.acquire() as conn, conn.transaction():
        scores = await repository.patient_scores(conn, patient_id, limit)
        alerts = await repository.patient_alerts(conn, patient_id, limit)
        steps = await repository.alert_steps(conn, [a["id"] for a in alerts])
        messages = await repository.patient_messages(conn, patient_id, limit)
        sessions = await repository.patient_sessions(conn, patient_id)
        expected = await repository.patient_expected_levels(conn, patient_id, now)
        await audit_staff(conn, nurse, "patient.timeline", f"patient/{patient_id}", patient_id)
        names = await repository.staff_names(conn, alerts)
    steps_of = steps_by_alert(steps)
    return Timeline(
        patient_id=patient_id,
        submissions=[ScorePoint(**dict(s)) for s in scores],
        alerts=[_patient_alert(a, steps_of.get(a["id"], []), now, levels, names) for a in alerts],
        messages=[PatientMessage(**dict(m)) for m in messages],
        sessions=[Session(**dict(s)) for s in sessions],
        expected_levels=[ExpectedLevelView(**dict(e)) for e in expected],
    )


def _patient_alert(
    row: Any, steps: list[AlertStepView], now: datetime, levels: ServiceLevels, names: dict[str, str]
) -> PatientAlert:
    return PatientAlert(**alert_view(row, now, levels, names).model_dump(), steps=steps)


class ExpectedLevelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # At most 2: a grade 3 is RED, and a red finding always alerts (CLINICAL.md §3).
    grade: int = Field(
        ge=0,
        le=2,
        strict=True,
        description="Composite grades up to this one are expected and do not alert (a red finding always does).",
    )
    until: CalendarDate = Field(
        description=f"The last day it applies: {EXPECTED_LEVEL_MAX_DAYS} days at most, today included "
        f"(so at most {EXPECTED_LEVEL_MAX_DAYS - 1} days after today)."
    )


async def _known_term(conn: asyncpg.Connection, patient_id: UUID, term: str) -> None:
    # The default questionnaire's symptoms, or any other a hospital's questionnaire asked this patient about:
    # questionnaires are data, and the symptom a nurse expects is one the patient reports.
    if term not in TERMS and not await repository.patient_reported_term(conn, patient_id, term):
        raise Problem(
            404,
            f"There is no symptom {term!r} in the default questionnaire nor in this patient's answers; "
            f"use one of: {', '.join(sorted(TERMS))}, or a symptom the patient has answered about.",
        )


@router.put(
    "/{patient_id}/expected-levels/{term}",
    response_model=ExpectedLevelView,
    summary=f"Expect a symptom at a grade for up to {EXPECTED_LEVEL_MAX_DAYS} days (no alert at or below it)",
    responses=problem_responses(404, 422),
)
async def set_expected_level(
    patient_id: UUID,
    term: str,
    body: ExpectedLevelRequest,
    nurse: Nurse,
    platform: PlatformDep,
    levels: LevelsDep,
    now: NowDep,
) -> Any:
    hours = ZoneInfo(levels.hours.zone)
    today = now.astimezone(hours).date()
    if body.until < today:
        raise Problem(422, "The end date is in the past.", pointer="/until")
    last_day = today + timedelta(days=EXPECTED_LEVEL_MAX_DAYS - 1)  # through its whole last day: 30 days in all
    if body.until > last_day:
        raise Problem(
            422,
            f"An expected level lasts at most {EXPECTED_LEVEL_MAX_DAYS} days: choose an end date on or before "
            f"{last_day.isoformat()}.",
            pointer="/until",
        )
    # "Until 24 November" means through that whole day, in the hospital's time zone.
    until = datetime.combine(body.until + timedelta(days=1), time(0), hours)
    async with platform.pool.acquire() as conn, conn.transaction():
        await _known_term(conn, patient_id, term)
        await remember_staff(conn, nurse.staff_id, nurse.name, now)
        row = await repository.set_expected_level(conn, patient_id, term, body.grade, until, nurse.staff_id, now)
        await audit_staff(conn, nurse, "expected_level.set", f"patient/{patient_id}/expected-levels/{term}", patient_id)
    return ExpectedLevelView(**dict(row))


@router.delete(
    "/{patient_id}/expected-levels/{term}",
    status_code=204,
    summary="Stop expecting a symptom",
    responses=problem_responses(404),
)
async def clear_expected_level(patient_id: UUID, term: str, nurse: Nurse, platform: PlatformDep) -> Response:
    async with platform.pool.acquire() as conn, conn.transaction():
        removed = await repository.clear_expected_level(conn, patient_id, term)
        if not removed:
            await _known_term(conn, patient_id, term)
            raise Problem(404, "No expected level is set for this patient and symptom.")
        await audit_staff(
            conn, nurse, "expected_level.clear", f"patient/{patient_id}/expected-levels/{term}", patient_id
        )
    return Response(status_code=204)
