"""TEAM_PHONE, the coordinating nurses' number the tablet shows: checked at start-up, since a typo would reach every
tablet as a link that calls no one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.questionnaire.main import QuestionnaireSettings


def test_no_number_by_default_and_a_number_is_kept_as_patients_dial_it() -> None:
    assert QuestionnaireSettings().team_phone is None
    assert QuestionnaireSettings(TEAM_PHONE="   ").team_phone is None
    for given, kept in [
        ("01 49 81 21 11", "01 49 81 21 11"),
        ("  01  49 81 21 11 ", "01 49 81 21 11"),
        ("+33 1 49 81 21 11", "+33 1 49 81 21 11"),
        ("01.49.81.21.11", "01.49.81.21.11"),
        ("01-49-81-21-11", "01-49-81-21-11"),
        ("3966", "3966"),
    ]:
        assert QuestionnaireSettings(TEAM_PHONE=given).team_phone == kept


@pytest.mark.parametrize(
    "value",
    [
        "123",  # 3 digits
        "1" * 21,
        "infirmières",
        "01 49 81 21 11 (poste 12)",
        "tel:0149812111",
        "33+1 49 81 21 11",
        "++33 1 49 81 21 11",
        "01 49 81 21 11,",
        "-01 49",
        "01 49 81 21 1١",  # an Arabic-Indic digit: not one a keypad dials
    ],
)
def test_a_number_no_one_can_dial_stops_the_service(value: str) -> None:
    with pytest.raises(ValidationError, match="TEAM_PHONE must be a phone number as patients dial it"):
        QuestionnaireSettings(TEAM_PHONE=value)
