"""Events owned by the alerting service (stream ALERTS)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from shared.events.questionnaire import AnsweredBy

AlertLevel = Literal["red", "orange"]
ScoreLevel = Literal["red", "orange", "none"]
AlertStatus = Literal["open", "acknowledged", "resolved"]
Outcome = Literal[
    "phone_call",
    "advice_given",
    "chemo_postponed",
    "chemo_cancelled",
    "dose_modified",
    "urgent_visit",
    "sent_to_emergency",
    "no_action_needed",
]


class AlertReason(BaseModel):
    """Why an alert fired, as codes: ``code`` is the PRO-CTCAE term or red-flag code, ``rule`` the rule id."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    code: str
    rule: str
    level: AlertLevel
    grade: int | None = None
    # Who gave the answer behind this reason: an alert can hold a patient's own red fever and a relative's later
    # report of nausea (added within v1: absent on reasons recorded before).
    answered_by: AnsweredBy | None = None


class AlertRaisedV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    alert_id: UUID
    patient_id: UUID
    level: AlertLevel
    reasons: tuple[AlertReason, ...]
    answered_by: AnsweredBy
    submission_id: UUID | None = None
    message_id: UUID | None = None
    rule_set: str
    raised_at: datetime


class AlertUpdatedV1(BaseModel):
    """A new finding merged into an alert that was still open (its level may have risen)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    alert_id: UUID
    patient_id: UUID
    level: AlertLevel
    status: AlertStatus
    reasons: tuple[AlertReason, ...]
    answered_by: AnsweredBy
    submission_id: UUID | None = None
    message_id: UUID | None = None
    rule_set: str
    updated_at: datetime


class AlertAcknowledgedV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    alert_id: UUID
    patient_id: UUID
    submission_ids: tuple[UUID, ...]
    acknowledged_by: str
    acknowledged_at: datetime
    # The patient's messages the alert holds: the tablet shows them "seen" too (added within v1; absent means none).
    message_ids: tuple[UUID, ...] = ()


class AlertResolvedV1(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    alert_id: UUID
    patient_id: UUID
    submission_ids: tuple[UUID, ...]
    outcome: Outcome
    resolved_by: str
    resolved_at: datetime
    message_ids: tuple[UUID, ...] = ()  # as in AlertAcknowledgedV1


class SubmissionScoredV1(BaseModel):
    """Every scored submission, with or without an alert: the tablet's "your answers were analysed"."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    submission_id: UUID
    patient_id: UUID
    level: ScoreLevel
    grades: dict[str, int]
    alert_id: UUID | None = None
    rule_set: str
    scored_at: datetime


class AlertEscalatedV1(BaseModel):
    """An alert was not acknowledged within its service level: level 1 when the delay runs out, level 2
    when a second delay runs out. Published once per level, however many alerting replicas run."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    alert_id: UUID
    patient_id: UUID
    level: AlertLevel
    escalation_level: Literal[1, 2]
    due_at: datetime
    escalated_at: datetime


class AlertReopenedV1(BaseModel):
    """A nurse reopened a resolved alert: it is hers again (acknowledged), the outcome is cleared."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    alert_id: UUID
    patient_id: UUID
    submission_ids: tuple[UUID, ...]
    previous_outcome: Outcome
    reopened_by: str
    reopened_at: datetime
