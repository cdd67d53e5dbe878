"""Which items a response may and must answer: those its answers enable (FHIR enableWhen, groups included),
and every question of a PRO-CTCAE term it answers (the PRO-CTCAE branching). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping

from services.questionnaire.answers import GivenItem, InvalidSubmission
from services.questionnaire.fhir_questionnaire import AnswerValue, ItemDefinition, QuestionnaireDefinition, is_enabled


class _Enablement:
    """Whether the response enables an item, worked out only for the items asked about (and what they
    depend on), since a patient answers a few terms of many.

    Conditions only refer to earlier items (checked at load), so the recursion ends; a disabled question
    counts as unanswered (FHIR).
    """

    def __init__(self, definition: QuestionnaireDefinition, given: Mapping[str, GivenItem]) -> None:
        self._items = definition.items
        self._given = given
        self._known: dict[str, bool] = {}

    def __getitem__(self, link_id: str) -> bool:
        known = self._known.get(link_id)
        if known is not None:
            return known
        item = self._items[link_id]
        on = item.parent is None or self[item.parent]
        if on and item.enable_when:
            effective = {q: self._effective(q) for q in item.depends_on}
            on = is_enabled(item, effective) if any(effective.values()) else item.enabled_while_unanswered
        self._known[link_id] = on
        return on

    def _effective(self, link_id: str) -> tuple[AnswerValue, ...]:
        given = self._given.get(link_id)
        if given is None or not given.answers or not self[link_id]:
            return ()
        return tuple(answer.value for answer in given.answers)


def check_branching(
    definition: QuestionnaireDefinition, given: Mapping[str, GivenItem], answered_terms: set[str]
) -> None:
    """Answered items must be enabled; enabled items must be answered if required or part of an answered term."""
    enabled = _Enablement(definition, given)
    answered = {link_id for link_id, item in given.items() if item.answers}
    must_answer = definition.required_questions.union(*(definition.terms[term].values() for term in answered_terms))
    position = definition.position
    for link_id in sorted(answered | must_answer, key=position.__getitem__):  # the first problem is the one told
        item = definition.items[link_id]
        if link_id in answered:
            if not enabled[link_id]:
                raise InvalidSubmission(_disabled_detail(definition, item, enabled), given[link_id].pointer)
        elif item.is_question and enabled[link_id]:
            raise InvalidSubmission(
                _missing_detail(item, definition.term_of.get(link_id)), _missing_pointer(item, given)
            )


def answered_terms(definition: QuestionnaireDefinition, given: Mapping[str, GivenItem]) -> set[str]:
    """Terms with at least one answer: those must be complete (NCI: ask all attributes of a term)."""
    term_of = definition.term_of
    return {term_of[link] for link, item in given.items() if item.answers and link in term_of}


def _disabled_detail(definition: QuestionnaireDefinition, item: ItemDefinition, enabled: _Enablement) -> str:
    if item.parent is not None and not enabled[item.parent]:
        return f"Item '{item.link_id}' must not be answered: its group '{item.parent}' is not enabled by this response."
    joiner = " and " if item.enable_behavior == "all" else " or "
    conditions = joiner.join(c.describe() for c in item.enable_when)
    why = " (PRO-CTCAE branching)" if item.link_id in definition.term_of else ""
    return (
        f"Item '{item.link_id}' must not be answered: it is only asked when {conditions}{why}, "
        "which this response does not satisfy."
    )


def _missing_detail(item: ItemDefinition, term: str | None) -> str:
    if term is None:
        return f"Item '{item.link_id}' is required and missing."
    return (
        f"Item '{item.link_id}' is missing: the response answers term '{term}', and every question of a term "
        "that the PRO-CTCAE branching asks must be answered."
    )


def _missing_pointer(item: ItemDefinition, given: Mapping[str, GivenItem]) -> str:
    # The missing answer belongs in its group if the response sent the group, else at the top level.
    if item.parent is not None and item.parent in given:
        return f"{given[item.parent].pointer}/item"
    return "/item"
