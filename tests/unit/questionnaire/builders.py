"""Readable builders for QuestionnaireResponse bodies and definition variants (no mocks)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from services.questionnaire.answers import InvalidSubmission
from services.questionnaire.catalogue import DEFAULT_DEFINITIONS_DIR, QuestionnaireCatalogue
from services.questionnaire.domain import NormalisedSubmission, normalise_response

URL = "https://oncofollow.example/fhir/Questionnaire/reconnect-symptoms"
CANONICAL = f"{URL}|1.0.0"
SYSTEMS = "https://oncofollow.example/fhir/CodeSystem"
PATIENT_ID = UUID("6f1c2a52-8d0e-4c1b-9a57-2f3e4d5c6b7a")
NOW = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
AUTHORED = "2026-03-01T09:30:00+01:00"  # = NOW

CATALOGUE = QuestionnaireCatalogue.from_directory(DEFAULT_DEFINITIONS_DIR)

OMIT = object()  # a field left out of the body


def coding_answer(system: str | None, code: str) -> dict[str, Any]:
    coding = {"code": code} if system is None else {"system": system, "code": code}
    return {"valueCoding": coding}


def attribute(term: str, name: str, score: int | str) -> dict[str, Any]:
    """One answered PRO-CTCAE attribute, e.g. attribute("nausea", "frequency", 2)."""
    return {
        "linkId": f"{term}.{name}",
        # Each attribute has its own scale's code system (pro-ctcae-frequency, ...).
        "answer": [coding_answer(f"{SYSTEMS}/pro-ctcae-{name}", str(score))],
    }


def term(code: str, **scores: int) -> dict[str, Any]:
    """A term group with the given attributes, e.g. term("pain", frequency=1, severity=0)."""
    return {"linkId": code, "item": [attribute(code, name, score) for name, score in scores.items()]}


def yes_no(link_id: str, value: Any) -> dict[str, Any]:
    return {"linkId": link_id, "answer": [{"valueBoolean": value}]}


def answer(link_id: str, **value: Any) -> dict[str, Any]:
    """An item with one answer given as keyword, e.g. answer("temperature", valueDecimal=38.5)."""
    return {"linkId": link_id, "answer": [value]}


def red_flags(*items: dict[str, Any]) -> dict[str, Any]:
    return {"linkId": "red_flags", "item": list(items)}


def ecog(score: int | str) -> dict[str, Any]:
    return {"linkId": "ecog", "answer": [coding_answer(f"{SYSTEMS}/ecog", str(score))]}


def response(*items: Any, **fields: Any) -> dict[str, Any]:
    """A completed response from the patient; fields override the envelope, OMIT removes a field."""
    body: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": CANONICAL,
        "status": "completed",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "authored": AUTHORED,
        "source": {"reference": f"Patient/{PATIENT_ID}"},
        "item": list(items) if items else [term("fatigue", severity=1, interference=1)],
    }
    body.update(fields)
    return {key: value for key, value in body.items() if value is not OMIT}


def flat(*items: dict[str, Any]) -> list[dict[str, Any]]:
    """The same items without their groups (the domain accepts both shapes)."""
    out: list[dict[str, Any]] = []
    for item in items:
        out.extend(flat(*item["item"]) if "item" in item else [item])
    return out


def normalise(body: Any, catalogue: QuestionnaireCatalogue = CATALOGUE) -> NormalisedSubmission:
    return normalise_response(catalogue, body, now=NOW)


def rejected(body: Any, catalogue: QuestionnaireCatalogue = CATALOGUE) -> InvalidSubmission:
    with pytest.raises(InvalidSubmission) as info:
        normalise(body, catalogue)
    return info.value


# -- definition variants, written to a temporary directory --


def default_definition() -> dict[str, Any]:
    """A fresh, mutable copy of the default questionnaire JSON."""
    text = (DEFAULT_DEFINITIONS_DIR / "reconnect-symptoms.json").read_text(encoding="utf-8")
    return copy.deepcopy(json.loads(text))


def find_item(resource: dict[str, Any], link_id: str) -> dict[str, Any]:
    pending = list(resource["item"])
    while pending:
        item = pending.pop()
        if item["linkId"] == link_id:
            return item
        pending.extend(item.get("item", []))
    raise KeyError(link_id)


def write_definitions(directory: Path, *resources: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for index, resource in enumerate(resources):
        name = f"{index:02d}-{resource.get('id', 'x')}-{resource.get('version', 'x')}.json"
        (directory / name).write_text(json.dumps(resource, ensure_ascii=False), encoding="utf-8")
    return directory


def versioned(version: str, **changes: Any) -> dict[str, Any]:
    resource = default_definition()
    resource["version"] = version
    resource.update(changes)
    return resource
