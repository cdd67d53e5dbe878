"""What a hospital changes without changing code (CLINICAL.md: "default" means configuration): its rule set, the
delay to take a RED alert, the weekdays its team works. Each is checked before the service starts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.alerting.domain import DEFAULT_RULE_SET, RuleSet, RuleSetDefinition
from services.alerting.main import AlertingSettings, build_service, load_rule_set
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.opening_hours import parse_weekdays


def rules_file(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_a_hospital_rule_set_keeps_the_defaults_it_does_not_name_and_its_own_label(tmp_path: Path) -> None:
    path = rules_file(tmp_path, {"id": "chu-lyon", "version": "2026.1", "fever_threshold_c": 38.5})
    rules = load_rule_set(path)
    assert rules == RuleSet(
        id="chu-lyon",
        version="2026.1",
        fever_threshold_c=38.5,
        psychological_terms=DEFAULT_RULE_SET.psychological_terms,
        silent_terms=DEFAULT_RULE_SET.silent_terms,
    )
    assert rules.label == "chu-lyon@2026.1"
    assert AlertingSettings(ALERT_RULES_FILE=str(path)).rule_set() == rules
    assert AlertingSettings().rule_set() is DEFAULT_RULE_SET


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ({"id": "default", "version": "1", "fever_threshold_c": 38.5}, "give yours an id of its own"),
        ({"version": "1"}, "id: Field required"),
        ({"id": "chu-lyon", "version": "1", "fever_threshold_c": 41}, "fever_threshold_c: Input should be less"),
        ({"id": "chu-lyon", "version": "1", "worsening_grades": 0}, "worsening_grades: Input should be greater"),
        ({"id": "chu-lyon", "version": "1", "fever_threshold": 38.5}, "fever_threshold: Extra inputs"),
        ({"id": "chu lyon", "version": "1"}, "id: String should match"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_rule_set_that_cannot_be_used_stops_the_start(tmp_path: Path, content: object, says: str) -> None:
    path = rules_file(tmp_path, content)
    with pytest.raises(ValidationError, match=says):
        AlertingSettings(ALERT_RULES_FILE=str(path))


def test_a_rule_set_file_that_is_not_there_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot be read"):
        AlertingSettings(ALERT_RULES_FILE=str(tmp_path / "missing.json"))


def test_the_definition_and_the_rule_set_know_the_same_thresholds() -> None:
    # A threshold added to RuleSet but not to its definition could never be set by a hospital.
    assert set(RuleSetDefinition.model_fields) == set(RuleSet.__dataclass_fields__)


def test_the_red_delay_is_the_hospital_s() -> None:
    levels = build_service(AlertingSettings(RED_ACKNOWLEDGE_WITHIN_MIN="30")).extras["service_levels"]
    assert levels.red_within == timedelta(minutes=30)
    monday_9 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 09:00 in Paris
    assert levels.due_after("red", monday_9) == monday_9 + timedelta(minutes=30)
    for wrong in ("0", "4", "1441"):
        with pytest.raises(ValidationError, match="RED_ACKNOWLEDGE_WITHIN_MIN"):
            AlertingSettings(RED_ACKNOWLEDGE_WITHIN_MIN=wrong)


@pytest.mark.parametrize(
    ("spec", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("mon-sat", {0, 1, 2, 3, 4, 5}),
        ("MON,wed, fri", {0, 2, 4}),
        ("sat-sun,mon", {0, 5, 6}),
    ],
)
def test_opening_days_are_written_as_days_and_ranges(spec: str, days: set[int]) -> None:
    assert parse_weekdays(spec) == frozenset(days)


@pytest.mark.parametrize(
    ("spec", "says"), [("lun-ven", "is not weekdays"), ("fri-mon", "runs from Monday"), ("", "is not")]
)
def test_opening_days_that_cannot_be_read_stop_the_start(spec: str, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        AlertingSettings(OPENING_DAYS=spec or ",")


def test_a_ward_open_on_saturday_tells_the_patient_and_counts_its_service_levels_the_same() -> None:
    saturday_10 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)  # 10:00 in Paris
    questionnaire = build_questionnaire(QuestionnaireSettings(OPENING_DAYS="mon-sat"))
    alerting = build_service(AlertingSettings(OPENING_DAYS="mon-sat"))
    assert questionnaire.extras["opening_hours"].is_open(saturday_10)
    levels = alerting.extras["service_levels"]
    assert levels.hours.is_open(saturday_10)
    assert levels.due_after("red", saturday_10) == saturday_10 + timedelta(hours=1)
    weekdays_only = build_service(AlertingSettings()).extras["service_levels"]
    assert not weekdays_only.hours.is_open(saturday_10)
