"""The merge rule and the lifecycle steps (CLINICAL.md §3 noise control, §4)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from services.alerting.domain import (
    RULE_GRADE_2,
    RULE_GRADE_3,
    RULE_MESSAGE,
    ActiveAlert,
    Finding,
    TransitionRefused,
    alert_source,
    check_acknowledge,
    check_resolve,
    plan_alerts,
)
from shared.events.alerts import AlertLevel, AlertReason, AlertStatus


def _alert(status: AlertStatus = "open", level: AlertLevel = "orange", *codes: str) -> ActiveAlert:
    reasons = tuple(AlertReason(code=c, rule=RULE_GRADE_2, level="orange", grade=2) for c in codes or ("fatigue",))
    return ActiveAlert(uuid.uuid4(), level, status, reasons)


def test_no_active_alert_gathers_all_findings_into_one_new_alert() -> None:
    findings = [Finding("nausea", RULE_GRADE_3, "red", 3), Finding("fatigue", RULE_GRADE_2, "orange", 2)]
    plan = plan_alerts(findings, [])
    assert plan.updates == ()
    assert [r.code for r in plan.new_reasons] == ["nausea", "fatigue"] and plan.new_level == "red"


def test_a_finding_on_a_term_of_an_open_alert_updates_it_and_others_open_a_new_one() -> None:
    active = _alert("open", "orange", "fatigue", "pain")
    plan = plan_alerts(
        [Finding("fatigue", RULE_GRADE_2, "orange", 2), Finding("nausea", RULE_MESSAGE, "orange")], [active]
    )
    (update,) = plan.updates
    assert update.alert is active and update.level == "orange" and update.status == "open"
    assert [r.code for r in update.reasons] == ["pain", "fatigue"]  # the new fatigue finding replaces the old one
    assert [r.code for r in plan.new_reasons] == ["nausea"]


def test_a_rise_to_red_reopens_an_acknowledged_alert() -> None:
    plan = plan_alerts([Finding("fatigue", RULE_GRADE_3, "red", 3)], [_alert("acknowledged")])
    (update,) = plan.updates
    assert update.level == "red" and update.status == "open"


def test_no_rise_keeps_it_acknowledged_and_an_improvement_never_lowers_the_level() -> None:
    red = ActiveAlert(
        uuid.uuid4(), "red", "acknowledged", (AlertReason(code="fatigue", rule=RULE_GRADE_3, level="red"),)
    )
    plan = plan_alerts([Finding("fatigue", RULE_GRADE_2, "orange", 2)], [red])
    (update,) = plan.updates
    assert update.level == "red" and update.status == "acknowledged"


def test_no_findings_no_plan() -> None:
    plan = plan_alerts([], [_alert()])
    assert plan.updates == () and plan.new_reasons == () and plan.new_level is None


@pytest.mark.parametrize(
    ("check", "status", "words"),
    [
        (check_acknowledge, "acknowledged", "already acknowledged"),
        (check_acknowledge, "resolved", "already resolved"),
        (check_resolve, "resolved", "already resolved"),
    ],
)
def test_refused_steps(check: Callable[[AlertStatus], None], status: AlertStatus, words: str) -> None:
    with pytest.raises(TransitionRefused, match=words):
        check(status)


@pytest.mark.parametrize(
    ("check", "status"), [(check_acknowledge, "open"), (check_resolve, "open"), (check_resolve, "acknowledged")]
)
def test_allowed_steps(check: Callable[[AlertStatus], None], status: AlertStatus) -> None:
    check(status)


def _red(code: str, status: AlertStatus = "acknowledged") -> ActiveAlert:
    return ActiveAlert(uuid.uuid4(), "red", status, (AlertReason(code=code, rule=RULE_GRADE_3, level="red", grade=3),))


@pytest.mark.parametrize(
    "finding",
    [
        Finding("wants_call", "red.wants_call", "red"),  # asked again to be called
        Finding("fatigue", RULE_GRADE_3, "red", 3),  # still grade 3 a day later: new information all the same
    ],
    ids=["call-me-again", "red-again"],
)
def test_a_red_finding_reopens_an_acknowledged_red_alert(finding: Finding) -> None:
    alert = _red(finding.code)
    (update,) = plan_alerts([finding], [alert]).updates
    assert update.level == "red" and update.status == "open"


def test_a_new_message_or_a_worse_term_reopens_an_acknowledged_alert_and_a_same_grade_report_does_not() -> None:
    acknowledged = _alert("acknowledged", "orange", "fatigue", "patient_message")
    message = plan_alerts([Finding("patient_message", RULE_MESSAGE, "orange")], [acknowledged])
    assert message.updates[0].status == "open"
    same = plan_alerts([Finding("fatigue", RULE_GRADE_2, "orange", 2)], [acknowledged])
    assert same.updates[0].status == "acknowledged"  # noise control: the same report, already in hand


def test_a_later_milder_report_never_takes_away_the_reason_an_alert_is_red() -> None:
    # A relative reports grade 2 pain after the patient reported grade 3 (or an offline tablet's older answers).
    red = _red("pain", status="open")
    (update,) = plan_alerts([Finding("pain", RULE_GRADE_2, "orange", 2)], [red]).updates
    assert update.level == "red"
    assert [(r.code, r.level, r.grade) for r in update.reasons] == [("pain", "red", 3)]


def test_each_reason_says_who_answered_and_the_alert_keeps_the_source_of_its_most_severe_one() -> None:
    # The patient reported a fever (red) and nausea (orange); then a relative reports nausea at the same grade.
    red = AlertReason(code="fever", rule="red.fever", level="red", answered_by="patient")
    nausea = AlertReason(code="nausea", rule=RULE_GRADE_2, level="orange", grade=2, answered_by="patient")
    active = ActiveAlert(uuid.uuid4(), "red", "open", (red, nausea))
    (update,) = plan_alerts([Finding("nausea", RULE_GRADE_2, "orange", 2)], [active], "relative").updates
    by_code = {r.code: r.answered_by for r in update.reasons}
    assert by_code == {"fever": "patient", "nausea": "relative"}
    # The triage row must not show the patient's own red fever as a relative's report.
    assert alert_source(update.reasons, "relative") == "patient"
    # Among equals, the latest report's source; reasons recorded before they named one fall back.
    later = AlertReason(code="pain", rule=RULE_GRADE_2, level="orange", grade=2, answered_by="nurse_phone")
    assert alert_source((nausea, later), "patient") == "nurse_phone"
    unnamed = AlertReason(code="pain", rule=RULE_GRADE_2, level="orange", grade=2)
    assert alert_source((unnamed,), "relative") == "relative"
    assert {
        r.answered_by for r in plan_alerts([Finding("pain", RULE_GRADE_2, "orange", 2)], [], "relative").new_reasons
    } == {"relative"}
