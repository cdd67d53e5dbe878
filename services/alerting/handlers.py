"""Scoring: what the alerting service does with each submission and each patient message.

Both handlers are set-wise: a fetched batch is applied with one statement per kind of read and write,
whatever its size (the consumer runner retries a failing batch event by event, so a poison event is
isolated). Events are applied in the order they were authored, so that "the previous submission" and
"the open alert" are right even when a patient's two submissions share a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.alerting import repository
from services.alerting.domain import (
    DEFAULT_RULE_SET,
    ActiveAlert,
    Finding,
    InvalidCombination,
    PreviousScore,
    RuleSet,
    alert_source,
    assess_message,
    assess_submission,
    plan_alerts,
)
from services.alerting.repository import AlertRecord, ScoreRow, StoredPrevious
from shared.db.outbox import add_events
from shared.events.alerts import AlertRaisedV1, AlertUpdatedV1, SubmissionScoredV1
from shared.events.catalog import make_event
from shared.events.envelope import CloudEvent
from shared.events.inclusion import latest_plans
from shared.events.questionnaire import AnsweredBy, MessageSentV1, QuestionnaireSubmittedV1
from shared.messaging.consumer import Consumed, PoisonMessage
from shared.periodic import Clock, system_clock

SOURCE = "/services/alerting"
SCHEMA = "alerting"

Outgoing = tuple[CloudEvent[Any], dict[str, str]]


@dataclass
class AlertBook:
    """The active alerts of the batch's patients, as the merge rule changes them; written once at the end."""

    records: dict[UUID, AlertRecord]
    rules: RuleSet = DEFAULT_RULE_SET  # whose label each alert event carries
    events: list[Outgoing] = field(default_factory=list)
    by_patient: dict[UUID, list[AlertRecord]] = field(default_factory=dict)  # in the order they were raised

    @classmethod
    def of(cls, records: Sequence[AlertRecord], rules: RuleSet = DEFAULT_RULE_SET) -> AlertBook:
        book = cls({}, rules)
        for record in records:
            book._add(record)
        return book

    def _add(self, record: AlertRecord) -> None:
        self.records[record.alert_id] = record
        alerts = self.by_patient.setdefault(record.patient_id, [])
        alerts.append(record)
        if len(alerts) > 1 and alerts[-2].raised_at > record.raised_at:  # another replica's clock was ahead
            alerts.sort(key=lambda r: r.raised_at)

    def active(self, patient_id: UUID) -> list[ActiveAlert]:
        return [r.active() for r in self.by_patient.get(patient_id, ()) if r.status != "resolved"]

    def apply(
        self,
        findings: Sequence[Finding],
        *,
        patient_id: UUID,
        answered_by: AnsweredBy,
        submission_id: UUID | None,
        message_id: UUID | None,
        now: datetime,
        cause: Consumed,
    ) -> UUID | None:
        """Merge the findings into the patient's active alerts or open a new one; returns the alert they
        went to (the new one first), if any."""
        if not findings:
            return None
        plan = plan_alerts(findings, self.active(patient_id), answered_by)
        attached: UUID | None = None
        for update in plan.updates:
            record = self.records[update.alert.alert_id]
            by = alert_source(update.reasons, answered_by if update.took_reasons else record.answered_by)
            record.merge(update.level, update.status, update.reasons, by, submission_id, message_id, now)
            updated = AlertUpdatedV1(
                alert_id=record.alert_id,
                patient_id=patient_id,
                level=update.level,
                status=update.status,
                reasons=update.reasons,
                answered_by=by,
                submission_id=submission_id,
                message_id=message_id,
                rule_set=self.rules.label,
                updated_at=now,
            )
            self._publish("alert.updated", updated, record.alert_id, cause, now)
            attached = attached or record.alert_id
        if plan.new_level is not None:
            record = AlertRecord.raised(
                patient_id, plan.new_level, plan.new_reasons, answered_by, submission_id, message_id, now
            )
            self._add(record)
            raised = AlertRaisedV1(
                alert_id=record.alert_id,
                patient_id=patient_id,
                level=plan.new_level,
                reasons=plan.new_reasons,
                answered_by=answered_by,
                submission_id=submission_id,
                message_id=message_id,
                rule_set=self.rules.label,
                raised_at=now,
            )
            self._publish("alert.raised", raised, record.alert_id, cause, now)
            attached = record.alert_id
        return attached

    def _publish(self, event_type: str, data: Any, subject: UUID, cause: Consumed, now: datetime) -> None:
        self.events.append((_event(event_type, data, str(subject), cause, now), cause.trace_headers))


def _event(event_type: str, data: Any, subject: str, cause: Consumed, now: datetime) -> CloudEvent[Any]:
    """An event the batch publishes, dated ``now``: when the batch was scored, as the rows it writes."""
    return make_event(
        event_type,
        data,
        source=SOURCE,
        time=now,
        subject=subject,
        causationid=cause.event.id,
        correlationid=cause.event.correlationid or cause.event.id,
    )


async def _open_book(conn: asyncpg.Connection, patients: Sequence[UUID], rules: RuleSet) -> AlertBook:
    await repository.lock_patients(conn, patients)
    return AlertBook.of(await repository.active_alerts(conn, patients), rules)


def _baseline(
    authored: datetime,
    stored: StoredPrevious | None,
    in_batch: tuple[datetime, Mapping[str, int]] | None,
    in_batch_ecog: tuple[datetime, int] | None,
) -> PreviousScore | None:
    """The worsening rules' baseline for a submission authored then: the grades of the latest earlier submission,
    and the ECOG of the latest earlier one that answered it, from the database or from earlier in this batch."""
    grades: Mapping[str, int] | None = stored.score.grades if stored else None
    if in_batch and in_batch[0] < authored and (stored is None or stored.authored < in_batch[0]):
        grades = in_batch[1]
    ecogs = (
        [(stored.ecog_authored, stored.score.ecog)]
        if stored and stored.ecog_authored and stored.score.ecog is not None
        else []
    )
    if in_batch_ecog and in_batch_ecog[0] < authored:
        ecogs.append(in_batch_ecog)
    ecog = max(ecogs, key=lambda e: e[0])[1] if ecogs else None
    if grades is None and ecog is None:
        return None
    return PreviousScore(grades=grades or {}, ecog=ecog)


async def on_questionnaire_submitted(
    batch: Sequence[Consumed], conn: asyncpg.Connection, rules: RuleSet = DEFAULT_RULE_SET, clock: Clock = system_clock
) -> None:
    now = clock()
    items = sorted(batch, key=lambda c: c.event.data.authored)
    submissions: list[QuestionnaireSubmittedV1] = [c.event.data for c in items]
    patients = sorted({s.patient_id for s in submissions}, key=str)
    await repository.lock_patients(conn, patients)
    context = await repository.scoring_context(conn, patients, [(s.patient_id, s.authored) for s in submissions], now)
    book, stored_previous, expected = AlertBook.of(context.active, rules), context.previous, context.expected
    latest: dict[UUID, tuple[datetime, Mapping[str, int]]] = {}
    latest_ecog: dict[UUID, tuple[datetime, int]] = {}
    scores: list[ScoreRow] = []
    for consumed, submission, stored in zip(items, submissions, stored_previous, strict=True):
        patient = submission.patient_id
        previous = _baseline(submission.authored, stored, latest.get(patient), latest_ecog.get(patient))
        try:
            assessment = assess_submission(submission, previous, expected[submission.patient_id], now, rules)
        except InvalidCombination as exc:
            raise PoisonMessage(str(exc)) from exc
        alert_id = book.apply(
            assessment.findings,
            patient_id=submission.patient_id,
            answered_by=submission.answered_by,
            submission_id=submission.submission_id,
            message_id=None,
            now=now,
            cause=consumed,
        )
        latest[patient] = (submission.authored, assessment.grades)
        if submission.ecog is not None:
            latest_ecog[patient] = (submission.authored, submission.ecog)
        scores.append(ScoreRow.of(submission, assessment.grades, assessment.level, alert_id, rules.label, now))
        scored = SubmissionScoredV1(
            submission_id=submission.submission_id,
            patient_id=submission.patient_id,
            level=assessment.level,
            grades=assessment.grades,
            alert_id=alert_id,
            rule_set=rules.label,
            scored_at=now,
        )
        book.events.append(
            (_event("submission.scored", scored, str(submission.submission_id), consumed, now), consumed.trace_headers)
        )
    await repository.save_scoring(conn, book.records.values(), scores, book.events, schema=SCHEMA, rule_set=rules.label)


async def on_message_sent(
    batch: Sequence[Consumed], conn: asyncpg.Connection, rules: RuleSet = DEFAULT_RULE_SET, clock: Clock = system_clock
) -> None:
    now = clock()
    items = sorted(batch, key=lambda c: c.event.data.sent_at)
    messages: list[MessageSentV1] = [c.event.data for c in items]
    book = await _open_book(conn, sorted({m.patient_id for m in messages}, key=str), rules)
    rows = []
    for consumed, message in zip(items, messages, strict=True):
        alert_id = book.apply(
            assess_message(message, rules).findings,
            patient_id=message.patient_id,
            answered_by=message.answered_by,
            submission_id=None,
            message_id=message.message_id,
            now=now,
            cause=consumed,
        )
        rows.append(repository.MessageRow.of(message, alert_id))
    await repository.save_alerts(conn, book.records.values(), rules.label)
    await repository.insert_messages(conn, rows)
    if book.events:
        await add_events(conn, book.events, schema=SCHEMA)


async def on_session_scheduled(batch: Sequence[Consumed], conn: asyncpg.Connection) -> None:
    await repository.upsert_sessions(conn, latest_plans(c.event for c in batch))
