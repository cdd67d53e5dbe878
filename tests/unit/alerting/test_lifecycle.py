"""The merge rule and the lifecycle steps (CLINICAL.md §3 noise control, §4)."""

from __future__ import annotations

import uuid

import pytest

from services.alerting.domain import (
    RULE_GRADE_2,
    RULE_GRADE_3,
    RULE_MESSAGE,
    ActiveAlert,
    Finding,
    TransitionRefused,
    check_acknowledge,
    check_resolve,
    plan_alerts,
)
from shared.events.alerts import AlertReason


def _alert(status: str = "open", level: str = "orange", *codes: str) -> ActiveAlert:
    reasons = tuple(AlertReason(code=c, rule=RULE_GRADE_2, level="orange", grade=2) for c in codes or ("fatigue",))
    return ActiveAlert(uuid.uuid4(), level, status, reasons)  # type: ignore[arg-type]


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
def test_refused_steps(check: object, status: str, words: str) -> None:
    with pytest.raises(TransitionRefused, match=words):
        check(status)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("check", "status"), [(check_acknowledge, "open"), (check_resolve, "open"), (check_resolve, "acknowledged")]
)
def test_allowed_steps(check: object, status: str) -> None:
    check(status)  # type: ignore[operator]
