"""normalise_response: a FHIR QuestionnaireResponse in, the event's answers out, or a clear 4xx."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from services.questionnaire.answers import InvalidSubmission
from services.questionnaire.catalogue import QuestionnaireCatalogue, UnknownQuestionnaire
from services.questionnaire.domain import normalise_response
from shared.events.questionnaire import QuestionnaireSubmittedV1, RedFlags, TermAnswer

from .builders import (
    CANONICAL,
    CATALOGUE,
    NOW,
    OMIT,
    PATIENT_ID,
    SYSTEMS,
    URL,
    answer,
    attribute,
    coding_answer,
    default_definition,
    ecog,
    find_item,
    flat,
    normalise,
    red_flags,
    rejected,
    response,
    term,
    write_definitions,
    yes_no,
)

FULL_ITEMS = (
    term("diarrhoea", frequency=0),
    term("nausea", frequency=2, severity=3),
    term("vomiting", frequency=0),  # severity skipped
    term("decreased_appetite", severity=0),  # interference skipped
    term("fatigue", severity=2, interference=3),
    term("pain", frequency=1, severity=0),  # interference skipped
    term("anxiety", frequency=0),  # severity and interference skipped
    term("hair_loss", amount=2),
    red_flags(
        yes_no("fever", True),
        answer("temperature", valueDecimal=38.6),
        yes_no("bleeding", False),
        yes_no("wants_call", True),
    ),
    ecog(1),
)

EXPECTED_TERMS = (
    TermAnswer(term="diarrhoea", frequency=0),
    TermAnswer(term="nausea", frequency=2, severity=3),
    TermAnswer(term="vomiting", frequency=0, severity=0),
    TermAnswer(term="decreased_appetite", severity=0, interference=0),
    TermAnswer(term="fatigue", severity=2, interference=3),
    TermAnswer(term="pain", frequency=1, severity=0, interference=0),
    TermAnswer(term="anxiety", frequency=0, severity=0, interference=0),
    TermAnswer(term="hair_loss", amount=2),
)


# -- valid responses --


def test_a_full_response_normalises() -> None:
    submission = normalise(response(*FULL_ITEMS))
    assert submission.questionnaire_id == "reconnect-symptoms"
    assert submission.questionnaire_version == "1.0.0"
    assert submission.authored == NOW
    assert submission.authored.tzinfo is not None
    assert submission.answered_by == "patient"
    assert submission.subject_patient_id == PATIENT_ID
    assert submission.terms == EXPECTED_TERMS
    assert submission.red_flags == RedFlags(
        fever=True, temperature_c=38.6, bleeding=False, unable_to_eat_or_drink=False, wants_call=True
    )
    assert submission.ecog == 1


def test_the_result_fits_the_event_payload() -> None:
    submission = normalise(response(*FULL_ITEMS))
    assert submission.subject_patient_id is not None
    event = QuestionnaireSubmittedV1(
        submission_id=uuid4(),
        patient_id=submission.subject_patient_id,
        questionnaire_id=submission.questionnaire_id,
        questionnaire_version=submission.questionnaire_version,
        authored=submission.authored,
        answered_by=submission.answered_by,
        terms=submission.terms,
        red_flags=submission.red_flags,
        ecog=submission.ecog,
    )
    assert QuestionnaireSubmittedV1.model_validate_json(event.model_dump_json()) == event


def test_every_red_flag_reaches_the_event() -> None:
    body = response(
        red_flags(
            yes_no("fever", True),
            answer("temperature", valueDecimal=39.2),
            yes_no("bleeding", True),
            yes_no("unable_to_eat_or_drink", True),
            yes_no("wants_call", True),
        )
    )
    assert normalise(body).red_flags == RedFlags(
        fever=True, temperature_c=39.2, bleeding=True, unable_to_eat_or_drink=True, wants_call=True
    )


def test_skipped_attributes_are_zero_and_absent_attributes_none() -> None:
    (pain,) = normalise(response(term("pain", frequency=3, severity=0))).terms
    assert (pain.frequency, pain.severity, pain.interference, pain.amount) == (3, 0, 0, None)
    (nausea,) = normalise(response(term("nausea", frequency=0))).terms
    assert (nausea.frequency, nausea.severity, nausea.interference) == (0, 0, None)


def test_a_flat_response_means_the_same_as_a_nested_one() -> None:
    assert normalise(response(*flat(*FULL_ITEMS))) == normalise(response(*FULL_ITEMS))


def test_terms_left_out_are_not_reported() -> None:
    submission = normalise(response(red_flags(yes_no("wants_call", True))))
    assert submission.terms == ()
    assert submission.red_flags == RedFlags(wants_call=True)
    assert submission.ecog is None


def test_a_term_group_without_answers_counts_as_left_out() -> None:
    submission = normalise(response({"linkId": "nausea", "item": []}, term("fatigue", severity=0)))
    assert [t.term for t in submission.terms] == ["fatigue"]


def test_an_empty_answer_list_is_no_answer() -> None:
    submission = normalise(response(term("dry_skin", severity=1), {"linkId": "ecog", "answer": []}))
    assert submission.ecog is None


def test_fever_without_temperature_is_fine() -> None:
    flags = normalise(response(red_flags(yes_no("fever", True)))).red_flags
    assert (flags.fever, flags.temperature_c) == (True, None)


@pytest.mark.parametrize(
    "value",
    [
        {"valueDecimal": 38.5},
        {"valueInteger": 39},
        {"valueQuantity": {"value": 38.5, "system": "http://unitsofmeasure.org", "code": "Cel"}},
        {"valueQuantity": {"value": 38.5, "unit": "°C"}},
        {"valueQuantity": {"value": 38.5, "unit": "°C", "code": "Cel"}},
    ],
)
def test_temperature_answer_forms(value: dict[str, Any]) -> None:
    body = response(red_flags(yes_no("fever", True), {"linkId": "temperature", "answer": [value]}))
    temperature = normalise(body).red_flags.temperature_c
    assert temperature is not None
    assert 38 <= temperature <= 39


def test_a_coding_without_system_matches_by_code() -> None:
    body = response({"linkId": "hair_loss.amount", "answer": [coding_answer(None, "4")]})
    assert normalise(body).terms == (TermAnswer(term="hair_loss", amount=4),)


def test_amended_is_accepted() -> None:
    assert normalise(response(status="amended")).questionnaire_id == "reconnect-symptoms"


@pytest.mark.parametrize("canonical", [URL, "Questionnaire/reconnect-symptoms", CANONICAL])
def test_the_questionnaire_may_be_named_three_ways(canonical: str) -> None:
    assert normalise(response(questionnaire=canonical)).questionnaire_version == "1.0.0"


def test_authored_in_utc_and_slightly_ahead_is_accepted() -> None:
    ahead = (NOW + timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%S.123Z")
    authored = normalise(response(authored=ahead)).authored
    assert authored == NOW + timedelta(minutes=4, milliseconds=123)
    assert authored.utcoffset() == timedelta(0)


def test_subject_is_optional() -> None:
    submission = normalise(response(subject=OMIT, source=OMIT))
    assert submission.subject_patient_id is None


def test_without_a_subject_a_patient_source_names_the_patient() -> None:
    # A patient answers only for themselves: the API then checks this patient against the tablet's own, so a
    # tablet cannot record another patient as the author of its answers.
    submission = normalise(response(subject=OMIT, source={"reference": f"Patient/{PATIENT_ID}"}))
    assert submission.subject_patient_id == PATIENT_ID
    assert normalise(response(subject=OMIT, source={"reference": "RelatedPerson/1"})).subject_patient_id is None


@pytest.mark.parametrize(
    ("source", "answered_by"),
    [
        (OMIT, "patient"),
        ({"reference": f"Patient/{PATIENT_ID}"}, "patient"),
        ({"reference": "RelatedPerson/daughter-1", "display": "sa fille"}, "relative"),
        ({"reference": "Practitioner/nurse-42"}, "nurse_phone"),
        ({"reference": "PractitionerRole/ide-coordination"}, "nurse_phone"),
    ],
)
def test_source_says_who_answered(source: Any, answered_by: str) -> None:
    assert normalise(response(source=source)).answered_by == answered_by


# -- bad input: every case names the field or linkId and points into the body --


def _nested_in_wrong_group() -> dict[str, Any]:
    return response({"linkId": "fatigue", "item": [attribute("nausea", "frequency", 1)]})


def _too_many_items() -> dict[str, Any]:
    return response(*({"linkId": "nausea", "item": []} for _ in range(201)))


BAD_INPUTS: list[tuple[str, Any, str, str]] = [
    # (case, body, pointer, words the sentence must contain)
    ("not an object", ["resourceType"], "", "must be a JSON object"),
    ("wrong resourceType", response(resourceType="Questionnaire"), "/resourceType", '"Questionnaire"'),
    ("no resourceType", response(resourceType=OMIT), "/resourceType", "QuestionnaireResponse"),
    ("in-progress", response(status="in-progress"), "/status", '"in-progress"'),
    ("no status", response(status=OMIT), "/status", "status must be"),
    ("no questionnaire", response(questionnaire=OMIT), "/questionnaire", "questionnaire is required"),
    ("questionnaire not a string", response(questionnaire=7), "/questionnaire", "questionnaire is required"),
    ("unknown url", response(questionnaire="https://x.org/Q/a"), "/questionnaire", "'https://x.org/Q/a'"),
    ("unknown version", response(questionnaire=f"{URL}|2.0.0"), "/questionnaire", "no version '2.0.0'"),
    ("unknown id", response(questionnaire="Questionnaire/qlq-c30"), "/questionnaire", "'qlq-c30'"),
    ("no authored", response(authored=OMIT), "/authored", "authored is required"),
    ("date only", response(authored="2026-03-01"), "/authored", '"2026-03-01"'),
    ("no time zone", response(authored="2026-03-01T09:30:00"), "/authored", "with a time zone"),
    ("space separator", response(authored="2026-03-01 09:30:00Z"), "/authored", "RFC 3339"),
    ("not a string", response(authored=1772350200), "/authored", "1772350200"),
    ("not a real date", response(authored="2026-02-30T09:30:00Z"), "/authored", "not a real date"),
    ("future", response(authored="2026-03-01T08:36:00Z"), "/authored", "more than 5 minutes in the future"),
    ("over a year ago", response(authored="2025-02-27T08:30:00Z"), "/authored", "more than a year ago"),
    ("year 1", response(authored="0001-01-01T00:30:00+01:00"), "/authored", "more than a year ago"),
    ("source not a reference", response(source="Patient"), "/source", "source must be a Reference"),
    ("source without reference", response(source={"display": "Marie"}), "/source", '"reference" string'),
    ("source Device", response(source={"reference": "Device/tab-1"}), "/source/reference", '"Device/tab-1"'),
    ("source bare prefix", response(source={"reference": "Patient/"}), "/source/reference", '"Patient/"'),
    ("source Patient no uuid", response(source={"reference": "Patient/42"}), "/source/reference", '"Patient/42"'),
    (
        "source other patient",
        response(source={"reference": "Patient/0b7c0a52-8d0e-4c1b-9a57-2f3e4d5c6b7a"}),
        "/source/reference",
        "different patient from subject",
    ),
    ("subject Group", response(subject={"reference": "Group/1"}), "/subject/reference", '"Group/1"'),
    ("subject not uuid", response(subject={"reference": "Patient/123"}), "/subject/reference", "Patient/<uuid>"),
    (
        "subject urn uuid",
        response(subject={"reference": f"Patient/urn:uuid:{PATIENT_ID}"}),
        "/subject/reference",
        "subject.reference",
    ),
    ("subject as string", response(subject=f"Patient/{PATIENT_ID}"), "/subject", "subject must be a Reference"),
    ("item not a list", response(item={"linkId": "ecog"}), "/item", "item must be a list"),
    ("no items", response(item=[]), "/item", "no items"),
    ("groups only", response({"linkId": "nausea"}, {"linkId": "red_flags"}), "/item", "no answers"),
    ("item not an object", response("fatigue.severity"), "/item/0", "JSON object"),
    ("item without linkId", response({"answer": []}), "/item/0/linkId", "linkId"),
    ("unknown linkId", response(answer("nausea.sevrity", valueInteger=1)), "/item/0/linkId", '"nausea.sevrity"'),
    ("too many items", _too_many_items(), "/item", "more than 200 items"),
    (
        "duplicate linkId, nested and flat",
        response(term("nausea", frequency=1, severity=1), attribute("nausea", "severity", 2)),
        "/item/1/linkId",
        "'nausea.severity' appears twice (first at /item/0/item/1)",
    ),
    (
        "duplicate group",
        response(term("nausea", frequency=0), term("nausea", frequency=0)),
        "/item/1/linkId",
        "'nausea' appears twice",
    ),
    (
        "group with answers",
        response({"linkId": "red_flags", "answer": [{"valueBoolean": True}]}),
        "/item/0/answer",
        "'red_flags' is a group and cannot have answers",
    ),
    (
        "nested in the wrong group",
        _nested_in_wrong_group(),
        "/item/0/item/0",
        "'nausea.frequency' is nested in 'fatigue'",
    ),
    (
        "question containing items",
        response({**yes_no("fever", True), "item": [yes_no("bleeding", True)]}),
        "/item/0/item",
        "'fever' is a question and cannot contain items",
    ),
    (
        "answer with nested items",
        response({"linkId": "fever", "answer": [{"valueBoolean": True, "item": []}]}),
        "/item/0/answer/0/item",
        "'fever' cannot contain items",
    ),
    (
        "two answers",
        response({"linkId": "ecog", "answer": [coding_answer(None, "1"), coding_answer(None, "2")]}),
        "/item/0/answer",
        "'ecog' takes one answer, but 2 were given",
    ),
    ("answer not a list", response({"linkId": "fever", "answer": {"valueBoolean": True}}), "/item/0/answer", "list"),
    ("answer not an object", response({"linkId": "fever", "answer": [True]}), "/item/0/answer/0", "JSON object"),
    ("no value", response({"linkId": "fever", "answer": [{}]}), "/item/0/answer/0", "exactly one value[x]"),
    (
        "two values",
        response({"linkId": "fever", "answer": [{"valueBoolean": True, "valueString": "oui"}]}),
        "/item/0/answer/0",
        "'fever' needs exactly one value[x] (valueBoolean (true or false))",
    ),
    (
        "valueInteger for a choice",
        response(answer("diarrhoea.frequency", valueInteger=2)),
        "/item/0/answer/0",
        "'diarrhoea.frequency' is a choice question; answer it with valueCoding",
    ),
    (
        "valueString for a choice",
        response(answer("ecog", valueString="1")),
        "/item/0/answer/0",
        'not valueString "1"',
    ),
    ("string for a boolean", response(yes_no("bleeding", "true")), "/item/0/answer/0", "valueBoolean (true or false)"),
    (
        "valueString for a boolean",
        response(answer("wants_call", valueString="oui")),
        "/item/0/answer/0",
        "'wants_call'",
    ),
    (
        "valueString for a decimal",
        response(red_flags(yes_no("fever", True), answer("temperature", valueString="38,5"))),
        "/item/0/item/1/answer/0",
        "'temperature' is a decimal question; answer it with valueDecimal, valueInteger or valueQuantity in °C",
    ),
    (
        "boolean as a decimal",
        response(yes_no("fever", True), answer("temperature", valueDecimal=True)),
        "/item/1/answer/0",
        "not valueDecimal true",
    ),
    (
        "Fahrenheit",
        response(yes_no("fever", True), answer("temperature", valueQuantity={"value": 101, "unit": "°F"})),
        "/item/1/answer/0",
        'must be in °C (code "Cel", system "http://unitsofmeasure.org"); got "°F".',
    ),
    (
        "quantity without a value",
        response(yes_no("fever", True), answer("temperature", valueQuantity={"unit": "°C"})),
        "/item/1/answer/0",
        'needs a numeric "value"',
    ),
    (
        "coding without code",
        response(answer("ecog", valueCoding={"system": f"{SYSTEMS}/ecog"})),
        "/item/0/answer/0/valueCoding",
        "'ecog' needs a \"code\" string",
    ),
    (
        "code not an option",
        response(term("nausea", frequency=7)),
        "/item/0/item/0/answer/0/valueCoding",
        "Code \"7\" is not an option of item 'nausea.frequency'; its options are '0', '1', '2', '3', '4'",
    ),
    (
        "ecog 5",
        response(ecog(5)),
        "/item/0/answer/0/valueCoding",
        "not an option of item 'ecog'",
    ),
    (
        "code from another scale",
        response(answer("nausea.frequency", **coding_answer(f"{SYSTEMS}/pro-ctcae-severity", "1"))),
        "/item/0/answer/0/valueCoding",
        'Code "1" of item \'nausea.frequency\' is from system "https://oncofollow.example/fhir/CodeSystem/'
        'pro-ctcae-severity", but its options are from "https://oncofollow.example/fhir/CodeSystem/'
        'pro-ctcae-frequency".',
    ),
    (
        "severity while frequency is never",
        response(term("nausea", frequency=0, severity=2)),
        "/item/0/item/1",
        "'nausea.severity' must not be answered: it is only asked when 'nausea.frequency' != \"0\" "
        "(PRO-CTCAE branching)",
    ),
    (
        "interference while severity is none",
        response(term("fatigue", severity=0, interference=2)),
        "/item/0/item/1",
        "'fatigue.interference' must not be answered",
    ),
    (
        "interference while frequency is never",
        response(term("pain", frequency=0, interference=1)),
        "/item/0/item/1",
        "'pain.frequency' != \"0\" and 'pain.severity' != \"0\"",
    ),
    (
        "severity none after frequency never",
        response(term("anxiety", frequency=0, severity=0, interference=0)),
        "/item/0/item/1",
        "'anxiety.severity' must not be answered",
    ),
    (
        "severity missing",
        response(term("nausea", frequency=2)),
        "/item/0/item",
        "'nausea.severity' is missing: the response answers term 'nausea'",
    ),
    (
        "interference missing",
        response(term("pain", frequency=2, severity=1)),
        "/item/0/item",
        "'pain.interference' is missing",
    ),
    (
        "frequency missing, flat",
        response(attribute("pain", "severity", 1), attribute("pain", "interference", 1)),
        "/item",
        "'pain.frequency' is missing",
    ),
    (
        "temperature without fever",
        response(red_flags(answer("temperature", valueDecimal=38.5))),
        "/item/0/item/0",
        "'temperature' must not be answered: it is only asked when 'fever' = true",
    ),
    (
        "temperature with fever no",
        response(red_flags(yes_no("fever", False), answer("temperature", valueDecimal=39))),
        "/item/0/item/1",
        "'fever' = true",
    ),
    (
        "temperature too high",
        response(red_flags(yes_no("fever", True), answer("temperature", valueDecimal=46))),
        "/item/0/item/1/answer/0",
        "The answer 46.0 to item 'temperature' is outside 30-45 °C",
    ),
    (
        "temperature too low",
        response(yes_no("fever", True), answer("temperature", valueQuantity={"value": 29.9, "code": "Cel"})),
        "/item/1/answer/0",
        "29.9",
    ),
]


@pytest.mark.parametrize(
    ("body", "pointer", "says"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input_is_rejected_with_a_sentence_and_a_pointer(body: Any, pointer: str, says: str) -> None:
    error = rejected(body)
    assert says in error.detail
    assert error.pointer == pointer
    assert error.detail.endswith(".")
    assert str(error) == error.detail


@pytest.mark.parametrize(
    ("authored", "kind"),
    [
        ("2026-03-01T08:36:00Z", "in-the-future"),
        ("9999-12-31T23:59:59Z", "in-the-future"),
        ("2025-02-27T08:30:00Z", "too-far-in-the-past"),
        ("0001-01-01T00:30:00+01:00", "too-far-in-the-past"),
        ("2026-02-30T09:30:00Z", None),  # not a date: the tablet's code, not its clock
    ],
)
def test_a_wrong_clock_has_a_type_of_its_own(authored: str, kind: str | None) -> None:
    # The tablet asks for its clock to be set right rather than for an answer to be checked.
    assert rejected(response(authored=authored)).kind == kind


def test_an_unknown_questionnaire_is_also_an_unknown_questionnaire_error() -> None:
    with pytest.raises(UnknownQuestionnaire) as info:
        normalise(response(questionnaire=f"{URL}|2.0.0"))
    assert isinstance(info.value, InvalidSubmission)
    assert info.value.pointer == "/questionnaire"
    assert info.value.kind == "unknown-questionnaire"  # its own problem type, not a wrong answer's


def test_answers_are_checked_against_the_now_they_are_given() -> None:
    a_day_later = NOW + timedelta(days=1)
    given_then = response(authored=a_day_later.isoformat())
    with pytest.raises(InvalidSubmission, match="in the future"):
        normalise_response(CATALOGUE, given_then, now=NOW)
    assert normalise_response(CATALOGUE, given_then, now=a_day_later).authored == a_day_later


# -- the event contract holds even for a definition without the usual safeguards --


@pytest.fixture
def permissive_catalogue(tmp_path: Path) -> QuestionnaireCatalogue:
    """The default questionnaire minus the temperature's enableWhen and bounds."""
    resource = default_definition()
    temperature = find_item(resource, "temperature")
    del temperature["enableWhen"]
    temperature["extension"] = [e for e in temperature["extension"] if "Value" not in e["url"]]
    return QuestionnaireCatalogue.from_directory(write_definitions(tmp_path, resource))


def test_temperature_needs_fever_even_without_enable_when(permissive_catalogue: QuestionnaireCatalogue) -> None:
    error = rejected(response(answer("temperature", valueDecimal=38.5)), permissive_catalogue)
    assert (
        error.detail
        == "Item 'temperature' is answered but 'fever' is not true; send 'fever' = true with a temperature."
    )
    assert error.pointer == "/item/0/answer/0"


@pytest.mark.parametrize("value", [29.5, 45.5])
def test_temperature_stays_within_30_to_45_without_bounds(
    permissive_catalogue: QuestionnaireCatalogue, value: float
) -> None:
    body = response(yes_no("fever", True), answer("temperature", valueDecimal=value))
    error = rejected(body, permissive_catalogue)
    assert f"The temperature {value} °C in item 'temperature' is outside 30-45 °C." == error.detail
    assert error.pointer == "/item/1/answer/0"
