"""Events owned by the questionnaire service (stream QUESTIONNAIRES)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

AnsweredBy = Literal["patient", "relative", "nurse_phone"]

Score = int  # a PRO-CTCAE answer on its published 0-4 scale


class TermAnswer(BaseModel):
    """The answers for one PRO-CTCAE term, as the composite grade needs them.

    Only the attributes the questionnaire asks for this term are present (not None); an attribute
    skipped by the PRO-CTCAE branching is present with the value 0 (CDISC convention), so the set of
    present attributes is the term's attribute pattern. ``amount`` (hair loss) is scored like
    interference.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    term: str
    frequency: Score | None = Field(default=None, ge=0, le=4)
    severity: Score | None = Field(default=None, ge=0, le=4)
    interference: Score | None = Field(default=None, ge=0, le=4)
    amount: Score | None = Field(default=None, ge=0, le=4)


class RedFlags(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    fever: bool = False
    temperature_c: float | None = Field(default=None, ge=30, le=45)
    bleeding: bool = False
    unable_to_eat_or_drink: bool = False
    wants_call: bool = False


class QuestionnaireSubmittedV1(BaseModel):
    """A patient's answers, normalised from the FHIR QuestionnaireResponse the tablet posted (or a nurse entered
    during a phone call)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    submission_id: UUID
    patient_id: UUID
    questionnaire_id: str
    questionnaire_version: str
    authored: datetime
    answered_by: AnsweredBy
    terms: tuple[TermAnswer, ...]
    red_flags: RedFlags = RedFlags()
    ecog: int | None = Field(default=None, ge=0, le=4)
    # The staff id (token subject) of the nurse who entered the answers during a phone call
    # (``answered_by`` "nurse_phone", POST /v1/patients/{id}/submissions); None when a tablet sent them.
    # A pseudonymous id, never a name.
    recorded_by: str | None = Field(default=None, min_length=1, max_length=255)


class MessageSentV1(BaseModel):
    """A message from the patient to the team: free text, photos, or both.

    The text travels in the payload (the alerting service shows it to the nurse) but never in the
    subject, headers, span attributes or logs. A photo travels as its id only: its bytes stay in the
    questionnaire service (GET /v1/photos/{id}, audited).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    message_id: UUID
    patient_id: UUID
    sent_at: datetime
    answered_by: AnsweredBy
    text: str  # empty when the message is photos only
    photo_ids: tuple[UUID, ...] = ()
