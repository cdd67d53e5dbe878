"""Building FHIR R4 QuestionnaireResponses the way the tablet client does (tests and the benchmark)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

QUESTIONNAIRE = "https://oncofollow.example/fhir/Questionnaire/reconnect-symptoms|1.0.0"

Answer = str | bool | float | int


def _answer(value: Answer) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"valueBoolean": value}
    if isinstance(value, str):
        return {"valueCoding": {"code": value}}
    return {"valueDecimal": float(value)}


def questionnaire_response(
    answers: Mapping[str, Answer],
    *,
    patient_id: UUID | None = None,
    source: str | None = None,
    authored: datetime | None = None,
    questionnaire: str = QUESTIONNAIRE,
) -> dict[str, Any]:
    """``answers`` maps linkId to a choice code ("0".."4"), a boolean or a number."""
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": questionnaire,
        "status": "completed",
        "authored": (authored or datetime.now(UTC)).isoformat(),
        "item": [{"linkId": link_id, "answer": [_answer(value)]} for link_id, value in answers.items()],
    }
    if patient_id is not None:
        response["subject"] = {"reference": f"Patient/{patient_id}"}
    if source is not None:
        response["source"] = {"reference": source}
    return response


# A submission that raises a RED alert (nausea composite grade 3) and one that raises none.
RED_NAUSEA = {"nausea.frequency": "3", "nausea.severity": "3"}
CALM = {"nausea.frequency": "0", "fatigue.severity": "1", "fatigue.interference": "0"}
