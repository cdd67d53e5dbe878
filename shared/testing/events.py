"""Events as the services publish them, for tests that put them on a stream directly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from shared.events.catalog import make_event
from shared.events.envelope import CloudEvent
from shared.events.questionnaire import QuestionnaireSubmittedV1, TermAnswer


def questionnaire_submitted(
    *terms: TermAnswer,
    patient_id: uuid.UUID | None = None,
    authored: datetime = datetime(2026, 11, 20, 8, tzinfo=UTC),
    received: datetime | None = None,
) -> CloudEvent[Any]:
    """A ``questionnaire.submitted`` the questionnaire service would publish for these answers, dated when it
    received them (``received``: when they were given, unless told)."""
    payload = QuestionnaireSubmittedV1(
        submission_id=uuid.uuid4(),
        patient_id=patient_id or uuid.uuid4(),
        questionnaire_id="reconnect-symptoms",
        questionnaire_version="1.0.0",
        authored=authored,
        answered_by="patient",
        terms=terms,
    )
    return make_event("questionnaire.submitted", payload, source="/services/questionnaire", time=received or authored)
