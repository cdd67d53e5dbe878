"""Scoring: what the alerting service does with each submission and each patient message."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.alerting import repository
from services.alerting.domain import (
    DEFAULT_RULE_SET,
    AlertPlan,
    Assessment,
    InvalidCombination,
    assess_message,
    assess_submission,
    plan_alerts,
)
from shared.db.outbox import add_event
from shared.events.alerts import AlertRaisedV1, AlertUpdatedV1, SubmissionScoredV1
from shared.events.catalog import make_event
from shared.events.envelope import CloudEvent
from shared.events.questionnaire import AnsweredBy, MessageSentV1, QuestionnaireSubmittedV1
from shared.messaging.consumer import PoisonMessage

SOURCE = "/services/alerting"
SCHEMA = "alerting"


async def on_questionnaire_submitted(event: CloudEvent[Any], conn: asyncpg.Connection) -> None:
    submission: QuestionnaireSubmittedV1 = event.data
    now = datetime.now(UTC)
    await repository.lock_patient(conn, submission.patient_id)
    previous = await repository.previous_score(conn, submission.patient_id, submission.authored)
    expected = await repository.expected_levels(conn, submission.patient_id, now)
    try:
        assessment = assess_submission(submission, previous, expected, now, DEFAULT_RULE_SET)
    except InvalidCombination as exc:
        raise PoisonMessage(str(exc)) from exc
    alert_id = await _raise_or_merge(
        conn,
        event,
        assessment,
        patient_id=submission.patient_id,
        answered_by=submission.answered_by,
        submission_id=submission.submission_id,
        message_id=None,
        now=now,
    )
    await repository.insert_score(
        conn,
        submission_id=submission.submission_id,
        patient_id=submission.patient_id,
        questionnaire_id=submission.questionnaire_id,
        authored=submission.authored,
        answered_by=submission.answered_by,
        answers=submission.model_dump(mode="json", include={"terms", "red_flags", "ecog"}),
        grades=assessment.grades,
        ecog=submission.ecog,
        level=assessment.level,
        alert_id=alert_id,
        rule_set=DEFAULT_RULE_SET.label,
    )
    scored = SubmissionScoredV1(
        submission_id=submission.submission_id,
        patient_id=submission.patient_id,
        level=assessment.level,
        grades=assessment.grades,
        alert_id=alert_id,
        rule_set=DEFAULT_RULE_SET.label,
        scored_at=now,
    )
    await _publish(conn, "submission.scored", scored, subject=str(submission.submission_id), cause=event)


async def on_message_sent(event: CloudEvent[Any], conn: asyncpg.Connection) -> None:
    message: MessageSentV1 = event.data
    now = datetime.now(UTC)
    await repository.lock_patient(conn, message.patient_id)
    alert_id = await _raise_or_merge(
        conn,
        event,
        assess_message(message, DEFAULT_RULE_SET),
        patient_id=message.patient_id,
        answered_by=message.answered_by,
        submission_id=None,
        message_id=message.message_id,
        now=now,
    )
    await repository.insert_message(
        conn,
        message_id=message.message_id,
        patient_id=message.patient_id,
        answered_by=message.answered_by,
        body=message.text,
        sent_at=message.sent_at,
        alert_id=alert_id,
    )


async def _raise_or_merge(
    conn: asyncpg.Connection,
    cause: CloudEvent[Any],
    assessment: Assessment,
    *,
    patient_id: UUID,
    answered_by: AnsweredBy,
    submission_id: UUID | None,
    message_id: UUID | None,
    now: datetime,
) -> UUID | None:
    """Apply the merge rule; returns the alert the finding went to (the new one first), if any."""
    if not assessment.findings:
        return None
    plan: AlertPlan = plan_alerts(assessment.findings, await repository.active_alerts(conn, patient_id))
    attached: UUID | None = None
    for update in plan.updates:
        await repository.merge_into_alert(
            conn,
            alert_id=update.alert.alert_id,
            level=update.level,
            status=update.status,
            reasons=update.reasons,
            answered_by=answered_by,
            submission_id=submission_id,
            message_id=message_id,
            at=now,
        )
        updated = AlertUpdatedV1(
            alert_id=update.alert.alert_id,
            patient_id=patient_id,
            level=update.level,
            status=update.status,
            reasons=update.reasons,
            answered_by=answered_by,
            submission_id=submission_id,
            message_id=message_id,
            rule_set=DEFAULT_RULE_SET.label,
            updated_at=now,
        )
        await _publish(conn, "alert.updated", updated, subject=str(update.alert.alert_id), cause=cause)
        attached = attached or update.alert.alert_id
    if plan.new_level is not None:
        alert_id = uuid.uuid4()
        await repository.insert_alert(
            conn,
            alert_id=alert_id,
            patient_id=patient_id,
            level=plan.new_level,
            reasons=plan.new_reasons,
            answered_by=answered_by,
            submission_id=submission_id,
            message_id=message_id,
            rule_set=DEFAULT_RULE_SET.label,
            at=now,
        )
        raised = AlertRaisedV1(
            alert_id=alert_id,
            patient_id=patient_id,
            level=plan.new_level,
            reasons=plan.new_reasons,
            answered_by=answered_by,
            submission_id=submission_id,
            message_id=message_id,
            rule_set=DEFAULT_RULE_SET.label,
            raised_at=now,
        )
        await _publish(conn, "alert.raised", raised, subject=str(alert_id), cause=cause)
        attached = alert_id
    return attached


async def _publish(
    conn: asyncpg.Connection, event_type: str, data: Any, *, subject: str, cause: CloudEvent[Any]
) -> None:
    event = make_event(
        event_type,
        data,
        source=SOURCE,
        subject=subject,
        causationid=cause.id,
        correlationid=cause.correlationid or cause.id,
    )
    await add_event(conn, event, schema=SCHEMA)
