"""How long a photo no message names is kept: a setting checked at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.questionnaire.main import QuestionnaireSettings, build_service


def test_a_week_by_default_and_the_housekeeping_purges_with_it() -> None:
    assert QuestionnaireSettings().orphan_photo_days == 7
    settings = QuestionnaireSettings(ORPHAN_PHOTO_DAYS="3")
    assert settings.orphan_photo_days == 3
    [purge] = build_service(settings).purges
    assert (purge.table, purge.args) == ("orphan_photos", (3,))


@pytest.mark.parametrize("value", ["0", "-1", "0.5", "3651", "a week"])
def test_fewer_than_a_day_or_not_a_number_of_days_stops_the_service(value: str) -> None:
    # A tablet offline for a few days still sends the message naming its photo: never less than a day.
    with pytest.raises(ValidationError, match="ORPHAN_PHOTO_DAYS"):
        QuestionnaireSettings(ORPHAN_PHOTO_DAYS=value)
