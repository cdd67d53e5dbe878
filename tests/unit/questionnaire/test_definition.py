"""The default questionnaire (reconnect-symptoms.json): content, scales, branching, generator."""

from __future__ import annotations

from typing import Any

import pytest

from services.questionnaire.catalogue import DEFAULT_DEFINITIONS_DIR
from services.questionnaire.definitions import build_reconnect_symptoms
from services.questionnaire.fhir_questionnaire import (
    ATTRIBUTE_SYSTEM,
    ECOG_SYSTEM,
    ORDINAL_VALUE_URL,
    RED_FLAG_SYSTEM,
    QuestionnaireDefinition,
)

from .builders import CATALOGUE, SYSTEMS, URL, default_definition, find_item

F, S, INTERFERENCE, AMOUNT = "frequency", "severity", "interference", "amount"

# CLINICAL.md §1 and research/clinical.md §3.3.
EXPECTED_PATTERNS = {
    "diarrhoea": (F,),
    "nausea": (F, S),
    "vomiting": (F, S),
    "decreased_appetite": (S, INTERFERENCE),
    "taste_changes": (S,),
    "mouth_sores": (S, INTERFERENCE),
    "dry_skin": (S,),
    "hand_foot_syndrome": (S,),
    "fatigue": (S, INTERFERENCE),
    "pain": (F, S, INTERFERENCE),
    "numbness_tingling": (S, INTERFERENCE),
    "shortness_of_breath": (S, INTERFERENCE),
    "anxiety": (F, S, INTERFERENCE),
    "hair_loss": (AMOUNT,),
}
RED_FLAG_TYPES = {
    "fever": "boolean",
    "temperature": "decimal",
    "bleeding": "boolean",
    "unable_to_eat_or_drink": "boolean",
    "wants_call": "boolean",
}
RED_FLAG_EXTENSION = "https://oncofollow.example/fhir/StructureDefinition/red-flag"


@pytest.fixture(scope="module")
def definition() -> QuestionnaireDefinition:
    found = CATALOGUE.get("reconnect-symptoms")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def resource() -> dict[str, Any]:
    return default_definition()


def test_the_file_loads_and_is_the_only_definition(definition: QuestionnaireDefinition) -> None:
    assert [d.id for d in CATALOGUE.all()] == ["reconnect-symptoms"]
    assert (definition.id, definition.version, definition.url) == ("reconnect-symptoms", "1.0.0", URL)
    assert definition.canonical == f"{URL}|1.0.0"


def test_the_resource_is_served_as_loaded(definition: QuestionnaireDefinition, resource: dict[str, Any]) -> None:
    assert definition.resource == resource
    assert resource["resourceType"] == "Questionnaire"
    assert resource["status"] == "active"
    assert resource["language"] == "fr-FR"
    assert resource["title"] == "Mes symptômes de la semaine"


def test_the_json_file_is_what_the_generator_writes() -> None:
    on_disk = (DEFAULT_DEFINITIONS_DIR / "reconnect-symptoms.json").read_text(encoding="utf-8")
    assert on_disk == build_reconnect_symptoms.render(), "run build_reconnect_symptoms.py"


def test_the_fourteen_terms_have_their_pro_ctcae_patterns(definition: QuestionnaireDefinition) -> None:
    patterns = {term: tuple(attributes) for term, attributes in definition.terms.items()}
    assert patterns == EXPECTED_PATTERNS
    assert list(definition.terms) == list(EXPECTED_PATTERNS)  # the order patients see


def test_each_term_is_a_group_of_coded_choice_items(resource: dict[str, Any]) -> None:
    for term, attributes in EXPECTED_PATTERNS.items():
        group = find_item(resource, term)
        assert group["type"] == "group"
        assert [item["linkId"] for item in group["item"]] == [f"{term}.{a}" for a in attributes]
        for item, attribute in zip(group["item"], attributes, strict=True):
            assert item["type"] == "choice"
            assert item["code"] == [{"system": ATTRIBUTE_SYSTEM, "code": f"{term}.{attribute}"}]


def test_questions_are_french_with_the_seven_day_recall_period(resource: dict[str, Any]) -> None:
    for term, attributes in EXPECTED_PATTERNS.items():
        assert find_item(resource, term)["text"]
        for attribute in attributes:
            text = find_item(resource, f"{term}.{attribute}")["text"]
            assert text.startswith("Au cours des 7 derniers jours, ")
            assert text.endswith("?")


@pytest.mark.parametrize(
    ("scale", "labels"),
    [
        (F, ["Jamais", "Rarement", "De temps en temps", "Souvent", "Presque tout le temps"]),
        (S, ["Pas du tout", "Léger", "Moyen", "Fort", "Très fort"]),
        (INTERFERENCE, ["Pas du tout", "Un peu", "Moyennement", "Beaucoup", "Énormément"]),
        (AMOUNT, ["Pas du tout", "Un peu", "Moyennement", "Beaucoup", "Énormément"]),
    ],
)
def test_answer_options_are_the_0_to_4_scales_with_ordinal_values(
    resource: dict[str, Any], scale: str, labels: list[str]
) -> None:
    items = [
        find_item(resource, f"{term}.{scale}") for term, attributes in EXPECTED_PATTERNS.items() if scale in attributes
    ]
    assert items
    for item in items:
        options = item["answerOption"]
        assert [o["valueCoding"]["system"] for o in options] == [f"{SYSTEMS}/pro-ctcae-{scale}"] * 5
        assert [o["valueCoding"]["code"] for o in options] == ["0", "1", "2", "3", "4"]
        assert [o["valueCoding"]["display"] for o in options] == labels
        assert [o["extension"] for o in options] == [
            [{"url": ORDINAL_VALUE_URL, "valueDecimal": score}] for score in range(5)
        ]


def _not_zero(term: str, attribute: str) -> dict[str, Any]:
    return {
        "question": f"{term}.{attribute}",
        "operator": "!=",
        "answerCoding": {"system": f"{SYSTEMS}/pro-ctcae-{attribute}", "code": "0"},
    }


def test_branching_follows_pro_ctcae(resource: dict[str, Any]) -> None:
    # Frequency "never" skips the rest of the term; severity "none" skips interference.
    assert "enableWhen" not in find_item(resource, "nausea.frequency")
    assert find_item(resource, "nausea.severity")["enableWhen"] == [_not_zero("nausea", F)]
    assert "enableWhen" not in find_item(resource, "fatigue.severity")
    assert find_item(resource, "fatigue.interference")["enableWhen"] == [_not_zero("fatigue", S)]
    assert "enableBehavior" not in find_item(resource, "fatigue.interference")
    pain_interference = find_item(resource, "pain.interference")
    assert pain_interference["enableWhen"] == [_not_zero("pain", F), _not_zero("pain", S)]
    assert pain_interference["enableBehavior"] == "all"
    for single in ("diarrhoea.frequency", "taste_changes.severity", "hair_loss.amount"):
        assert "enableWhen" not in find_item(resource, single)


def test_every_later_attribute_depends_on_each_earlier_one(definition: QuestionnaireDefinition) -> None:
    for attributes in definition.terms.values():
        links = list(attributes.values())
        for position, link in enumerate(links):
            questions = [c.question for c in definition.items[link].enable_when]
            assert questions == links[:position], link


def test_red_flags_group(resource: dict[str, Any]) -> None:
    group = find_item(resource, "red_flags")
    assert group["type"] == "group"
    assert [item["linkId"] for item in group["item"]] == list(RED_FLAG_TYPES)
    for item in group["item"]:
        assert item["type"] == RED_FLAG_TYPES[item["linkId"]]
        assert item["code"] == [{"system": RED_FLAG_SYSTEM, "code": item["linkId"]}]
        assert {"url": RED_FLAG_EXTENSION, "valueBoolean": True} in item["extension"]
    assert "38 °C" in find_item(resource, "fever")["text"]
    assert find_item(resource, "wants_call")["text"] == "Je souhaite être appelé(e) par l'équipe"
    assert "24 heures" in find_item(resource, "unable_to_eat_or_drink")["text"]


def test_temperature_is_optional_in_celsius_and_asked_only_after_fever(resource: dict[str, Any]) -> None:
    temperature = find_item(resource, "temperature")
    assert temperature["required"] is False
    assert temperature["enableWhen"] == [{"question": "fever", "operator": "=", "answerBoolean": True}]
    by_url = {e["url"]: e for e in temperature["extension"]}
    unit = by_url["http://hl7.org/fhir/StructureDefinition/questionnaire-unit"]["valueCoding"]
    assert (unit["system"], unit["code"]) == ("http://unitsofmeasure.org", "Cel")
    assert by_url["http://hl7.org/fhir/StructureDefinition/minValue"]["valueDecimal"] == 30
    assert by_url["http://hl7.org/fhir/StructureDefinition/maxValue"]["valueDecimal"] == 45


def test_optional_self_rated_ecog(resource: dict[str, Any], definition: QuestionnaireDefinition) -> None:
    item = find_item(resource, "ecog")
    assert definition.ecog_link_id == "ecog"
    assert item["type"] == "choice"
    assert item["required"] is False
    assert "facultative" in item["text"]
    options = item["answerOption"]
    assert [(o["valueCoding"]["system"], o["valueCoding"]["code"]) for o in options] == [
        (ECOG_SYSTEM, str(level)) for level in range(5)
    ]
    assert [o["extension"][0]["valueDecimal"] for o in options] == [0, 1, 2, 3, 4]
    assert all(o["valueCoding"]["display"].startswith("Je ") for o in options)


def test_no_item_is_required_so_a_term_can_be_left_out(definition: QuestionnaireDefinition) -> None:
    assert not any(item.required for item in definition.items.values())
