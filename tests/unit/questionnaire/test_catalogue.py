"""Loading definitions (failing loudly on a bad file) and resolving canonical references."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.questionnaire.catalogue import QuestionnaireCatalogue, UnknownQuestionnaire
from services.questionnaire.fhir_questionnaire import InvalidDefinition

from .builders import CATALOGUE, URL, default_definition, find_item, versioned, write_definitions

OTHER_URL = "https://oncofollow.example/fhir/Questionnaire/post-chemo"


@pytest.fixture
def three_versions(tmp_path: Path) -> QuestionnaireCatalogue:
    # "1.10.0" is later than "1.9.0": versions compare by number, not as text.
    directory = write_definitions(tmp_path, versioned("1.9.0"), versioned("1.10.0"), versioned("1.0.0"))
    return QuestionnaireCatalogue.from_directory(directory)


@pytest.mark.parametrize("canonical", [f"{URL}|1.0.0", URL, "Questionnaire/reconnect-symptoms"])
def test_resolve_accepts_the_three_forms(canonical: str) -> None:
    assert CATALOGUE.resolve(canonical).canonical == f"{URL}|1.0.0"


def test_latest_version_wins_for_url_id_get_and_all(three_versions: QuestionnaireCatalogue) -> None:
    assert three_versions.resolve(URL).version == "1.10.0"
    assert three_versions.resolve("Questionnaire/reconnect-symptoms").version == "1.10.0"
    definition = three_versions.get("reconnect-symptoms")
    assert definition is not None and definition.version == "1.10.0"
    assert [d.version for d in three_versions.all()] == ["1.10.0"]


def test_an_older_version_stays_resolvable(three_versions: QuestionnaireCatalogue) -> None:
    assert three_versions.resolve(f"{URL}|1.0.0").version == "1.0.0"


def test_all_lists_each_questionnaire_once_by_id(tmp_path: Path) -> None:
    other = versioned("2.0.0", id="post-chemo", url=OTHER_URL)
    catalogue = QuestionnaireCatalogue.from_directory(write_definitions(tmp_path, versioned("1.0.0"), other))
    assert [(d.id, d.version) for d in catalogue.all()] == [("post-chemo", "2.0.0"), ("reconnect-symptoms", "1.0.0")]


def test_get_unknown_id_is_none() -> None:
    assert CATALOGUE.get("nope") is None


@pytest.mark.parametrize(
    ("canonical", "says"),
    [
        ("https://example.org/Questionnaire/nope", "No questionnaire has the canonical URL"),
        ("https://example.org/Questionnaire/nope|1.0.0", "'https://example.org/Questionnaire/nope'"),
        (f"{URL}|9.9.9", "has no version '9.9.9'; known versions: 1.0.0."),
        (f"{URL}|", "has no version ''"),
        ("Questionnaire/nope", "No questionnaire has the id 'nope'; known ids: reconnect-symptoms."),
        ("reconnect-symptoms", "No questionnaire has the canonical URL 'reconnect-symptoms'"),
    ],
)
def test_resolve_unknown_raises_a_sentence(canonical: str, says: str) -> None:
    with pytest.raises(UnknownQuestionnaire) as info:
        CATALOGUE.resolve(canonical)
    assert says in str(info.value)


# -- loading fails loudly --


def _edit(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    resource = default_definition()
    change(resource)
    return resource


def _set(link_id: str, **fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda resource: find_item(resource, link_id).update(fields)


def _drop_ordinal(resource: dict[str, Any]) -> None:
    del find_item(resource, "nausea.severity")["answerOption"][2]["extension"]


def _add_amount_to_pain(resource: dict[str, Any]) -> None:
    item = {**find_item(resource, "hair_loss.amount"), "linkId": "pain.amount"}
    item["code"] = [{"system": item["code"][0]["system"], "code": "pain.amount"}]
    find_item(resource, "pain")["item"].append(item)


def _duplicate_link_id(resource: dict[str, Any]) -> None:
    find_item(resource, "fatigue.interference")["linkId"] = "fatigue.severity"


def _second_condition_without_behavior(resource: dict[str, Any]) -> None:
    item = find_item(resource, "pain.interference")
    del item["enableBehavior"]


BAD_DEFINITIONS: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (lambda r: r.update(resourceType="QuestionnaireResponse"), "resourceType must be 'Questionnaire'"),
    (lambda r: r.update(url="reconnect"), "url must be an absolute"),
    (lambda r: r.update(version=""), "'version' must be a non-empty string"),
    (lambda r: r.update(id="a b"), "is not a FHIR id"),
    (lambda r: r.update(status="published"), "status must be"),
    (lambda r: r.update(item=[]), "'item' must be a non-empty list"),
    (_duplicate_link_id, "linkId 'fatigue.severity' is used twice"),
    (_set("nausea.severity", type="date"), "item type 'date' is not supported"),
    (_set("nausea.severity", text=""), "'text' must be a non-empty string"),
    (_drop_ordinal, "option '2' of 'nausea.severity' needs an ordinalValue"),
    (_add_amount_to_pain, "term 'pain' asks ['amount', 'frequency', 'interference', 'severity']"),
    (_set("fever", type="string"), "red flag 'fever' must be a non-repeating boolean"),
    (
        _set("bleeding", code=[{"system": "https://oncofollow.example/fhir/CodeSystem/red-flag", "code": "x"}]),
        "'x' is not a red flag",
    ),
    (
        _set("nausea.frequency", enableWhen=[{"question": "nausea.severity", "operator": "=", "answerBoolean": True}]),
        "'nausea.severity' is not a question that comes earlier",
    ),
    (
        _set("nausea.severity", enableWhen=[{"question": "nausea.frequency", "operator": "~", "answerBoolean": True}]),
        "operator '~' is not a FHIR enableWhen operator",
    ),
    (
        _set(
            "nausea.severity",
            enableWhen=[{"question": "nausea.frequency", "operator": "=", "answerCoding": {"code": "9"}}],
        ),
        "'9' is not an option of 'nausea.frequency'",
    ),
    (
        _set("temperature", enableWhen=[{"question": "fever", "operator": "=", "answerDecimal": 1}]),
        "answerDecimal does not fit the boolean question 'fever'",
    ),
    (_second_condition_without_behavior, "enableBehavior must be 'all' or 'any'"),
    (_set("fatigue", answerOption=[]), "only choice items may have answerOption"),
    (_set("fever", item=[{"linkId": "x", "type": "boolean", "text": "x"}]), "only groups may contain items"),
]


@pytest.mark.parametrize(("change", "says"), BAD_DEFINITIONS, ids=[says for _, says in BAD_DEFINITIONS])
def test_a_bad_definition_fails_at_load_naming_file_and_place(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], says: str
) -> None:
    write_definitions(tmp_path, _edit(change))
    with pytest.raises(InvalidDefinition) as info:
        QuestionnaireCatalogue.from_directory(tmp_path)
    assert says in str(info.value)
    assert str(tmp_path) in str(info.value)


def test_invalid_json_fails_at_load(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"resourceType": "Questionnaire",', encoding="utf-8")
    with pytest.raises(InvalidDefinition, match=r"broken\.json: not valid UTF-8 JSON"):
        QuestionnaireCatalogue.from_directory(tmp_path)


def test_the_same_canonical_twice_fails(tmp_path: Path) -> None:
    write_definitions(tmp_path, versioned("1.0.0"), versioned("1.0.0"))
    with pytest.raises(InvalidDefinition, match=r"reconnect-symptoms\|1.0.0 is defined twice"):
        QuestionnaireCatalogue.from_directory(tmp_path)


def test_one_id_with_two_urls_fails(tmp_path: Path) -> None:
    write_definitions(tmp_path, versioned("1.0.0"), versioned("2.0.0", url=OTHER_URL))
    with pytest.raises(InvalidDefinition, match="id 'reconnect-symptoms' is used by"):
        QuestionnaireCatalogue.from_directory(tmp_path)


def test_one_url_with_two_ids_fails(tmp_path: Path) -> None:
    write_definitions(tmp_path, versioned("1.0.0"), versioned("2.0.0", id="other"))
    with pytest.raises(InvalidDefinition, match="is used by ids 'reconnect-symptoms' and 'other'"):
        QuestionnaireCatalogue.from_directory(tmp_path)


def test_an_empty_or_missing_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(InvalidDefinition, match=r"no \*\.json questionnaire definition"):
        QuestionnaireCatalogue.from_directory(tmp_path)
    with pytest.raises(InvalidDefinition, match="directory not found"):
        QuestionnaireCatalogue.from_directory(tmp_path / "missing")
