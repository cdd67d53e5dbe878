"""Questionnaire rules: the normalisation of a submitted FHIR R4 QuestionnaireResponse into the answers the
``questionnaire.submitted`` event carries, the service's domain entry. It is checked against a definition of the
catalogue (catalogue.py; the definition's model in fhir_questionnaire.py), its items typed by answers.py and their
branching checked by branching.py.

Pure: no network, no database, no asyncio; the clock is read only when the caller does not pass ``now``.

Every bad input raises ``InvalidSubmission`` with one plain English sentence for the developer of the
tablet client and a JSON pointer into the request body, so the API can answer a 4xx problem+json.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from services.questionnaire import branching
from services.questionnaire.answers import Answer, GivenItem, InvalidSubmission, ItemCollector
from services.questionnaire.catalogue import QuestionnaireCatalogue, UnknownQuestionnaire
from services.questionnaire.fhir_questionnaire import QuestionnaireDefinition
from shared.events.questionnaire import AnsweredBy, RedFlags, TermAnswer
from shared.repeating import show

MAX_CLOCK_SKEW = timedelta(minutes=5)  # tablets' clocks drift; further ahead is a wrong clock
# A tablet keeps answers while it is offline, for days; a year back is a wrong clock (and year 1 is no date the
# database can store).
MAX_AUTHORED_AGE = timedelta(days=366)
ACCEPTED_STATUSES = ("completed", "amended")
# The event contract's bounds (RedFlags.temperature_c); checked here so that a definition without
# minValue/maxValue still gives a 4xx rather than a validation error deep in the service.
TEMPERATURE_RANGE_C = (30.0, 45.0)
_SOURCE_KINDS: tuple[tuple[str, AnsweredBy], ...] = (
    ("Patient/", "patient"),
    ("RelatedPerson/", "relative"),
    ("Practitioner/", "nurse_phone"),
    ("PractitionerRole/", "nurse_phone"),
)
# RFC 3339 date-time with a mandatory offset, as FHIR's instant/dateTime spell it.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


class _UnknownQuestionnaireInSubmission(InvalidSubmission, UnknownQuestionnaire):
    """Raised by normalise_response: callers catching either exception type see it, with its pointer."""


# ------------------------------------------------------------------------------------- normalisation


@dataclass(frozen=True)
class NormalisedSubmission:
    questionnaire_id: str
    questionnaire_version: str
    authored: datetime  # timezone-aware
    answered_by: AnsweredBy
    # The patient the response names (its subject, or else a Patient source: a patient answers only for
    # themselves); the API checks it against the device token.
    subject_patient_id: UUID | None
    terms: tuple[TermAnswer, ...]  # in the questionnaire's order; only the terms the response answers
    red_flags: RedFlags
    ecog: int | None


def normalise_response(
    catalogue: QuestionnaireCatalogue, response: Mapping[str, Any], *, now: datetime
) -> NormalisedSubmission:
    """Checks a FHIR R4 QuestionnaireResponse (parsed JSON) and extracts what the event carries. ``now`` is the
    service's (``Platform.clock``): answers given after it are from a device whose clock is wrong.

    Raises InvalidSubmission for every bad input; an unknown questionnaire raises an exception that is
    both an InvalidSubmission (pointer "/questionnaire") and an UnknownQuestionnaire.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")  # a programming error, not a client's
    body = _require_response(response)
    definition = _questionnaire(catalogue, body)
    authored = _authored(body, now)
    subject_patient_id = _subject_patient_id(body)
    answered_by = _answered_by(body, subject_patient_id)
    given = ItemCollector(definition).collect(body)
    answered_terms = branching.answered_terms(definition, given)
    branching.check_branching(definition, given, answered_terms)
    return NormalisedSubmission(
        questionnaire_id=definition.id,
        questionnaire_version=definition.version,
        authored=authored,
        answered_by=answered_by,
        subject_patient_id=subject_patient_id if subject_patient_id is not None else _source_patient_id(body),
        terms=_term_answers(definition, given, answered_terms),
        red_flags=_red_flags(definition, given),
        ecog=_ecog(definition, given),
    )


# -- the envelope --


def _require_response(response: Any) -> Mapping[str, Any]:
    if not isinstance(response, Mapping):
        raise InvalidSubmission("The request body must be a JSON object (a FHIR QuestionnaireResponse).", "")
    if response.get("resourceType") != "QuestionnaireResponse":
        raise InvalidSubmission(
            f'resourceType must be "QuestionnaireResponse", not {show(response.get("resourceType"))}.',
            "/resourceType",
        )
    status = response.get("status")
    if status not in ACCEPTED_STATUSES:
        raise InvalidSubmission(
            f'status must be "completed" or "amended", not {show(status)}: only finished answers are taken.',
            "/status",
        )
    return response


def _questionnaire(catalogue: QuestionnaireCatalogue, body: Mapping[str, Any]) -> QuestionnaireDefinition:
    canonical = body.get("questionnaire")
    if not isinstance(canonical, str) or not canonical:
        raise InvalidSubmission(
            "questionnaire is required: the canonical URL of the questionnaire answered, "
            'e.g. "https://oncofollow.example/fhir/Questionnaire/reconnect-symptoms|1.0.0".',
            "/questionnaire",
        )
    try:
        return catalogue.resolve(canonical)
    except UnknownQuestionnaire as exc:
        raise _UnknownQuestionnaireInSubmission(str(exc), "/questionnaire", kind="unknown-questionnaire") from exc


def _authored(body: Mapping[str, Any], now: datetime) -> datetime:
    raw = body.get("authored")
    example = 'e.g. "2026-03-01T09:30:00+01:00"'
    if raw is None:
        raise InvalidSubmission(f"authored is required: when the answers were given, {example}.", "/authored")
    match = _RFC3339.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        raise InvalidSubmission(
            f"authored must be an RFC 3339 date-time with a time zone, {example}; got {show(raw)}.",
            "/authored",
        )
    try:
        authored = datetime.fromisoformat(raw)  # the regex above made it strict; this checks the calendar
    except ValueError:
        raise InvalidSubmission(f"authored {show(raw)} is not a real date and time.", "/authored") from None
    # A wrong clock is not a wrong answer: its own problem types (the devices service's, for a heartbeat's dates), so
    # the tablet can ask for the clock to be set right instead of for an answer to be checked.
    if authored < now - MAX_AUTHORED_AGE:
        raise InvalidSubmission(
            f"authored {show(raw)} is more than a year ago (server time "
            f"{now.astimezone(UTC).isoformat(timespec='seconds')}); check the clock of the device "
            "that sent the answers.",
            "/authored",
            kind="too-far-in-the-past",
        )
    if authored > now + MAX_CLOCK_SKEW:
        raise InvalidSubmission(
            f"authored {show(raw)} is more than 5 minutes in the future (server time "
            f"{now.astimezone(UTC).isoformat(timespec='seconds')}); check the clock of the device "
            "that sent the answers.",
            "/authored",
            kind="in-the-future",
        )
    return authored


def _patient_uuid(reference: str, pointer: str, field: str) -> UUID:
    raw_id = reference.removeprefix("Patient/")
    try:
        patient_id = UUID(raw_id)
    except ValueError:
        patient_id = None
    # UUID() also takes braces, "urn:uuid:" and missing hyphens; only the canonical form is an id here.
    if patient_id is None or str(patient_id) != raw_id.lower():
        raise InvalidSubmission(
            f'{field} must be "Patient/<uuid>" (the patient\'s pseudonymous id); got {show(reference)}.',
            pointer,
        )
    return patient_id


def _reference(body: Mapping[str, Any], field: str) -> str | None:
    element = body.get(field)
    if element is None:
        return None
    reference = element.get("reference") if isinstance(element, Mapping) else None
    if not isinstance(reference, str) or not reference:
        raise InvalidSubmission(
            f'{field} must be a Reference with a "reference" string, e.g. {{"reference": "Patient/<uuid>"}}.',
            f"/{field}",
        )
    return reference


def _subject_patient_id(body: Mapping[str, Any]) -> UUID | None:
    reference = _reference(body, "subject")
    if reference is None:
        return None
    return _patient_uuid(reference, "/subject/reference", "subject.reference")


def _answered_by(body: Mapping[str, Any], subject_patient_id: UUID | None) -> AnsweredBy:
    """Who answered, from ``source`` (FHIR: the person who answered, not the one who typed)."""
    reference = _reference(body, "source")
    if reference is None:
        return "patient"  # the tablet is the patient's own; a proxy or a nurse says so
    for prefix, kind in _SOURCE_KINDS:
        if reference.startswith(prefix) and len(reference) > len(prefix):
            if kind == "patient":
                _check_patient_source(reference, subject_patient_id)
            return kind
    raise InvalidSubmission(
        f"source {show(reference)} must reference Patient/<uuid> (the patient), RelatedPerson/<id> "
        "(a relative) or Practitioner/<id> or PractitionerRole/<id> (a nurse on the phone).",
        "/source/reference",
    )


def _source_patient_id(body: Mapping[str, Any]) -> UUID | None:
    reference = _reference(body, "source")
    if reference is None or not reference.startswith("Patient/"):
        return None
    return _patient_uuid(reference, "/source/reference", "source.reference")


def _check_patient_source(reference: str, subject_patient_id: UUID | None) -> None:
    source_id = _patient_uuid(reference, "/source/reference", "source.reference")
    if subject_patient_id is not None and source_id != subject_patient_id:
        raise InvalidSubmission(
            f"source {show(reference)} is a different patient from subject; a patient answers only for "
            "themselves (use RelatedPerson/<id> for a relative).",
            "/source/reference",
        )


# -- what the event carries --


def _term_answers(
    definition: QuestionnaireDefinition, given: Mapping[str, GivenItem], answered_terms: set[str]
) -> tuple[TermAnswer, ...]:
    answers: list[TermAnswer] = []
    for term, attributes in definition.terms.items():
        if term not in answered_terms:
            continue  # not asked this time: nothing to report, not an error
        scores: dict[str, int] = {}
        for attribute, link_id in attributes.items():
            # Branching checked: an unanswered attribute here is one PRO-CTCAE skipped, scored 0 (CDISC).
            chosen = given[link_id].answers if link_id in given else ()
            scores[attribute] = int(chosen[0].ordinal or 0) if chosen else 0
        answers.append(TermAnswer(term=term, **scores))
    return tuple(answers)


def _single(given: Mapping[str, GivenItem], link_id: str | None) -> Answer | None:
    if link_id is None or link_id not in given or not given[link_id].answers:
        return None
    return given[link_id].answers[0]


def _red_flags(definition: QuestionnaireDefinition, given: Mapping[str, GivenItem]) -> RedFlags:
    answers = {code: _single(given, link) for code, link in definition.red_flags.items()}
    fever = _yes(answers.get("fever"))
    temperature = _temperature(definition, answers.get("temperature"), fever=fever)
    return RedFlags(
        fever=fever,
        temperature_c=temperature,
        bleeding=_yes(answers.get("bleeding")),
        unable_to_eat_or_drink=_yes(answers.get("unable_to_eat_or_drink")),
        wants_call=_yes(answers.get("wants_call")),
    )


def _yes(answer: Answer | None) -> bool:
    return answer is not None and answer.value is True


def _temperature(definition: QuestionnaireDefinition, answer: Answer | None, *, fever: bool) -> float | None:
    """The measured temperature, checked against the event contract whatever the definition says."""
    if answer is None:
        return None
    value = answer.value
    assert isinstance(value, float)  # a decimal item's answers are floats (_answer)
    fever_link = definition.red_flags.get("fever")
    temperature_link = definition.red_flags["temperature"]
    # Where the questionnaire asks "fever?" first, a temperature comes with a yes; one that asks only for the
    # measured value takes it on its own (CLINICAL.md §1: "or the measured value").
    if fever_link is not None and not fever:
        raise InvalidSubmission(
            f"Item '{temperature_link}' is answered but '{fever_link}' is not true; "
            f"send '{fever_link}' = true with a temperature.",
            answer.pointer,
        )
    low, high = TEMPERATURE_RANGE_C
    if not low <= value <= high:
        raise InvalidSubmission(
            f"The temperature {show(value)} °C in item '{temperature_link}' is outside {low:g}-{high:g} °C.",
            answer.pointer,
        )
    return value


def _ecog(definition: QuestionnaireDefinition, given: Mapping[str, GivenItem]) -> int | None:
    answer = _single(given, definition.ecog_link_id)
    return None if answer is None or answer.ordinal is None else int(answer.ordinal)
