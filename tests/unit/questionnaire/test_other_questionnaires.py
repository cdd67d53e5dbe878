"""A hospital can add its own questionnaire: the rules are generic FHIR, driven by the definition."""

from __future__ import annotations

from typing import Any

import pytest

from services.questionnaire.catalogue import QuestionnaireCatalogue
from services.questionnaire.fhir_questionnaire import (
    ATTRIBUTE_SYSTEM,
    ORDINAL_VALUE_URL,
    RED_FLAG_SYSTEM,
    QuestionnaireDefinition,
)
from shared.events.questionnaire import RedFlags, TermAnswer

from .builders import answer, normalise, rejected, response

URL = "https://hospital.example/fhir/Questionnaire/post-visit"
BOUNDS = "http://hl7.org/fhir/StructureDefinition/"


def _severity_options() -> list[dict[str, Any]]:
    return [
        {
            "extension": [{"url": ORDINAL_VALUE_URL, "valueDecimal": score}],
            "valueCoding": {"system": "https://hospital.example/severity", "code": f"s{score}", "display": str(score)},
        }
        for score in range(5)
    ]


POST_VISIT: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "id": "post-visit",
    "url": URL,
    "version": "1",
    "status": "draft",
    "title": "Après la visite",
    "item": [
        {"linkId": "intro", "type": "display", "text": "Merci de répondre."},
        {
            "linkId": "weight",
            "type": "integer",
            "text": "Votre poids (kg) ?",
            "required": True,
            "extension": [
                {"url": f"{BOUNDS}minValue", "valueInteger": 20},
                {"url": f"{BOUNDS}maxValue", "valueInteger": 300},
            ],
        },
        {"linkId": "notes", "type": "text", "text": "Remarques ?"},
        {
            "linkId": "weight_note",
            "type": "string",
            "text": "Pourquoi ce poids ?",
            "enableWhen": [
                {"question": "weight", "operator": ">", "answerInteger": 150},
                {"question": "notes", "operator": "exists", "answerBoolean": True},
            ],
            "enableBehavior": "any",
        },
        {
            "linkId": "dizzy",
            "type": "choice",
            "text": "Vertiges ?",
            "code": [{"system": ATTRIBUTE_SYSTEM, "code": "dizziness.severity"}],
            "answerOption": _severity_options(),
        },
        {
            # A group asked only after severe dizziness: its required question with it.
            "linkId": "falls",
            "type": "group",
            "text": "Chutes",
            "enableWhen": [
                {
                    "question": "dizzy",
                    "operator": "=",
                    "answerCoding": {"system": "https://hospital.example/severity", "code": "s4"},
                }
            ],
            "item": [{"linkId": "fall_when", "type": "string", "text": "Quand êtes-vous tombé ?", "required": True}],
        },
    ],
}

CATALOGUE = QuestionnaireCatalogue([QuestionnaireDefinition.from_resource(POST_VISIT)])


def post_visit(*items: dict[str, Any]) -> dict[str, Any]:
    return response(*items, questionnaire=URL)


def weight(kg: int) -> dict[str, Any]:
    return answer("weight", valueInteger=kg)


def dizzy(severity: int) -> dict[str, Any]:
    return answer("dizzy", valueCoding={"code": f"s{severity}"})


def test_a_hospital_questionnaire_normalises() -> None:
    body = post_visit(weight(70), answer("dizzy", valueCoding={"code": "s2"}), answer("notes", valueString="ok"))
    submission = normalise(body, CATALOGUE)
    assert (submission.questionnaire_id, submission.questionnaire_version) == ("post-visit", "1")
    assert submission.terms == (TermAnswer(term="dizziness", severity=2),)
    assert submission.red_flags == RedFlags()
    assert submission.ecog is None


def test_a_required_question_of_a_group_the_response_does_not_enable_is_not_asked_for() -> None:
    assert normalise(post_visit(weight(70), dizzy(2)), CATALOGUE).terms == (TermAnswer(term="dizziness", severity=2),)


def test_a_group_the_response_enables_asks_for_its_required_question() -> None:
    falls = {"linkId": "falls", "item": [answer("fall_when", valueString="hier")]}
    assert normalise(post_visit(weight(70), dizzy(4), falls), CATALOGUE).terms == (
        TermAnswer(term="dizziness", severity=4),
    )
    error = rejected(post_visit(weight(70), dizzy(4)), CATALOGUE)
    assert (error.detail, error.pointer) == ("Item 'fall_when' is required and missing.", "/item")


def test_answering_in_a_group_the_response_does_not_enable_is_refused() -> None:
    falls = {"linkId": "falls", "item": [answer("fall_when", valueString="hier")]}
    error = rejected(post_visit(weight(70), dizzy(2), falls), CATALOGUE)
    assert error.detail == ("Item 'fall_when' must not be answered: its group 'falls' is not enabled by this response.")
    assert error.pointer == "/item/2/item/0"


@pytest.mark.parametrize(
    "items",
    [
        (weight(160), answer("weight_note", valueString="œdème")),  # first condition
        (weight(70), answer("notes", valueString="x"), answer("weight_note", valueString="y")),  # second
    ],
)
def test_enable_behavior_any(items: tuple[dict[str, Any], ...]) -> None:
    assert normalise(post_visit(*items), CATALOGUE).terms == ()


@pytest.mark.parametrize(
    ("items", "pointer", "says"),
    [
        ((answer("notes", valueString="x"),), "/item", "Item 'weight' is required and missing."),
        ((weight(400),), "/item/0/answer/0", "The answer 400 to item 'weight' is outside 20-300."),
        ((answer("weight", valueDecimal=70.5),), "/item/0/answer/0", "answer it with valueInteger"),
        (
            (weight(70), answer("weight_note", valueString="y")),
            "/item/1",
            "it is only asked when 'weight' > 150 or 'notes' exists true,",
        ),
        ((weight(70), answer("intro", valueString="y")), "/item/1/answer", "'intro' is a display"),
    ],
)
def test_generic_rules(items: tuple[dict[str, Any], ...], pointer: str, says: str) -> None:
    error = rejected(post_visit(*items), CATALOGUE)
    assert says in error.detail
    assert error.pointer == pointer


TEMPERATURE_ONLY: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "id": "temperature-only",
    "url": "https://hospital.example/fhir/Questionnaire/temperature-only",
    "version": "1",
    "status": "active",
    "title": "Température",
    "item": [
        {
            "linkId": "temp",
            "type": "decimal",
            "text": "Votre température la plus haute depuis hier (°C) ?",
            "code": [{"system": RED_FLAG_SYSTEM, "code": "temperature"}],
        }
    ],
}


def test_a_questionnaire_asking_only_the_measured_temperature_takes_it_on_its_own() -> None:
    # CLINICAL.md §1: "temperature ≥ 38 °C (or the measured value)": no "fever?" item to answer yes first.
    catalogue = QuestionnaireCatalogue([QuestionnaireDefinition.from_resource(TEMPERATURE_ONLY)])
    body = response(
        questionnaire=f"{TEMPERATURE_ONLY['url']}|1", item=[{"linkId": "temp", "answer": [{"valueDecimal": 39.2}]}]
    )
    submission = normalise(body, catalogue=catalogue)
    assert submission.red_flags == RedFlags(fever=False, temperature_c=39.2)
