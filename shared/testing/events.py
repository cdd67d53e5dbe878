"""Events as the services publish them, for tests that put them on a stream directly."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.events.catalog import make_event
from shared.events.envelope import CloudEvent
from shared.events.questionnaire import QuestionnaireSubmittedV1, TermAnswer


def questionnaire_submitted(
    *terms: TermAnswer, patient_id: uuid.UUID | None = None, authored: datetime | str = "2026-11-20T08:00:00+00:00"
) -> CloudEvent[Any]:
    """A ``questionnaire.submitted`` the questionnaire service would publish for these answers."""
    payload = QuestionnaireSubmittedV1(
        submission_id=uuid.uuid4(),
        patient_id=patient_id or uuid.uuid4(),
        questionnaire_id="reconnect-symptoms",
        questionnaire_version="1.0.0",
        authored=authored,
        answered_by="patient",
        terms=terms,
    )
    return make_event("questionnaire.submitted", payload, source="/services/questionnaire")
