"""The FHIR export of a stored submission: when a client asks for it, and what it says about who answered."""

from __future__ import annotations

import uuid

import pytest

from services.questionnaire.api import _wants_fhir, exported_response

PATIENT = uuid.UUID(int=7)
ID = uuid.UUID(int=8)


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        ("application/fhir+json", True),
        ("application/fhir+json; charset=utf-8", True),
        ("application/json, application/fhir+json", True),
        ("application/fhir+json;q=0.9, application/json", False),
        ("application/json;q=0.5, application/fhir+json", True),
        ("application/fhir+json;q=0", False),
        ("*/*, application/fhir+json", True),
        ("application/json", False),
        ("*/*", False),
        ("", False),
        (None, False),
    ],
)
def test_the_fhir_type_is_given_when_preferred(accept: str | None, wanted: bool) -> None:
    assert _wants_fhir(accept) is wanted


def _row(answered_by: str, source: str | None = None, recorded_by: str | None = None) -> dict[str, object]:
    response: dict[str, object] = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": []}
    if source is not None:
        response["source"] = {"reference": source}
    return {
        "id": ID,
        "patient_id": PATIENT,
        "answered_by": answered_by,
        "recorded_by": recorded_by,
        "response": response,
    }


@pytest.mark.parametrize(
    ("row", "source"),
    [
        (_row("patient"), f"Patient/{PATIENT}"),
        (_row("patient", f"Patient/{PATIENT}"), f"Patient/{PATIENT}"),
        (_row("relative", "RelatedPerson/son"), "RelatedPerson/son"),
        (_row("nurse_phone", "Practitioner/ide-1", "ide-1"), "Practitioner/ide-1"),
        # Sent by a tablet before nurses had their own route: the reference it named.
        (_row("nurse_phone", "PractitionerRole/ide-coordination"), "PractitionerRole/ide-coordination"),
    ],
)
def test_the_source_is_who_answered(row: dict[str, object], source: str) -> None:
    exported = exported_response(row)
    assert exported["source"] == {"reference": source}
    assert exported["id"] == str(ID)
    assert exported["subject"] == {"reference": f"Patient/{PATIENT}"}
    assert list(exported)[:2] == ["resourceType", "id"]
