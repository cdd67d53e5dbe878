"""Alert rules of the default rule set (CLINICAL.md §3) and their configuration."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from services.alerting.domain import (
    DEFAULT_RULE_SET,
    RULE_BLEEDING,
    RULE_ECOG,
    RULE_FEVER,
    RULE_GRADE_2,
    RULE_GRADE_3,
    RULE_MESSAGE,
    RULE_PROXY_CAPPED,
    RULE_UNABLE_TO_EAT_OR_DRINK,
    RULE_VERY_SEVERE,
    RULE_WANTS_CALL,
    RULE_WORSENED,
    Assessment,
    ExpectedLevel,
    Finding,
    InvalidCombination,
    PreviousScore,
    RuleSet,
    assess_message,
    assess_submission,
    level_rank,
)
from shared.events.alerts import AlertReason, ScoreLevel
from shared.events.questionnaire import (
    AnsweredBy,
    MessageSentV1,
    QuestionnaireSubmittedV1,
    RedFlags,
    TermAnswer,
)

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
PATIENT = UUID("00000000-0000-4000-8000-000000000001")


def submission(
    *terms: TermAnswer,
    answered_by: AnsweredBy = "patient",
    red_flags: RedFlags | None = None,
    ecog: int | None = None,
) -> QuestionnaireSubmittedV1:
    return QuestionnaireSubmittedV1(
        submission_id=UUID("00000000-0000-4000-8000-0000000000aa"),
        patient_id=PATIENT,
        questionnaire_id="feu-vert",
        questionnaire_version="1",
        authored=NOW - timedelta(minutes=5),
        answered_by=answered_by,
        terms=terms,
        red_flags=red_flags or RedFlags(),
        ecog=ecog,
    )


def assess(
    *terms: TermAnswer,
    previous: PreviousScore | None = None,
    expected: tuple[ExpectedLevel, ...] = (),
    rules: RuleSet = DEFAULT_RULE_SET,
    answered_by: AnsweredBy = "patient",
    red_flags: RedFlags | None = None,
    ecog: int | None = None,
) -> Assessment:
    return assess_submission(
        submission(*terms, answered_by=answered_by, red_flags=red_flags, ecog=ecog),
        previous,
        expected,
        NOW,
        rules,
    )


# Answers with a known composite grade (values from the published table).
def nausea(grade: int) -> TermAnswer:
    frequency, severity = {0: (0, 0), 1: (1, 1), 2: (2, 2), 3: (3, 3)}[grade]
    return TermAnswer(term="nausea", frequency=frequency, severity=severity)


def fsi(term: str, grade: int) -> TermAnswer:
    scores = {0: (0, 0, 0), 1: (1, 1, 1), 2: (2, 2, 2), 3: (3, 3, 3)}[grade]
    return TermAnswer(term=term, frequency=scores[0], severity=scores[1], interference=scores[2])


def diarrhoea(grade: int) -> TermAnswer:
    return TermAnswer(term="diarrhoea", frequency={0: 0, 1: 1, 2: 3, 3: 4}[grade])


def hair_loss(amount: int) -> TermAnswer:
    return TermAnswer(term="hair_loss", amount=amount)


NAUSEA_VERY_SEVERE_GRADE_2 = TermAnswer(term="nausea", frequency=1, severity=4)  # F·S (1,4) -> 2
NAUSEA_VERY_SEVERE_GRADE_3 = TermAnswer(term="nausea", frequency=3, severity=4)  # F·S (3,4) -> 3


def codes_and_rules(assessment: Assessment) -> list[tuple[str, str]]:
    return [(finding.code, finding.rule) for finding in assessment.findings]


# --- Constants, rule set ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constant", "value"),
    [
        (RULE_GRADE_3, "red.grade3"),
        (RULE_VERY_SEVERE, "red.very_severe"),
        (RULE_FEVER, "red.fever"),
        (RULE_BLEEDING, "red.bleeding"),
        (RULE_UNABLE_TO_EAT_OR_DRINK, "red.unable_to_eat_or_drink"),
        (RULE_WANTS_CALL, "red.wants_call"),
        (RULE_GRADE_2, "orange.grade2"),
        (RULE_WORSENED, "orange.worsened"),
        (RULE_ECOG, "orange.ecog"),
        (RULE_MESSAGE, "orange.message"),
        (RULE_PROXY_CAPPED, "orange.proxy_psychological"),
    ],
)
def test_rule_ids_are_stable_strings(constant: str, value: str) -> None:
    # Rule ids are stored with every alert; renaming one would break the audit trail.
    assert constant == value


def test_default_rule_set_matches_the_clinical_defaults() -> None:
    assert DEFAULT_RULE_SET == RuleSet()
    assert DEFAULT_RULE_SET.label == "default@1"
    assert DEFAULT_RULE_SET.psychological_terms == {"anxiety", "sad", "discouraged"}
    assert DEFAULT_RULE_SET.fever_threshold_c == 38.0
    assert DEFAULT_RULE_SET.worsening_grades == 2
    assert DEFAULT_RULE_SET.ecog_orange_at == 3
    assert DEFAULT_RULE_SET.ecog_worsening == 1
    assert DEFAULT_RULE_SET.silent_terms == {"hair_loss"}


def test_rule_set_label_names_id_and_version() -> None:
    assert RuleSet(id="chu-nord", version="2025-03").label == "chu-nord@2025-03"


@pytest.mark.parametrize("field", ["worsening_grades", "ecog_worsening"])
@pytest.mark.parametrize("value", [0, -1])
def test_a_worsening_step_below_one_is_refused(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        step: dict[str, Any] = {field: value}
        RuleSet(**step)


# --- Grades ---------------------------------------------------------------------------------------


def test_grades_hold_every_term_including_grade_0_and_silent_terms() -> None:
    assessment = assess(nausea(0), diarrhoea(1), fsi("pain", 2), hair_loss(4))
    assert assessment.grades == {"nausea": 0, "diarrhoea": 1, "pain": 2, "hair_loss": 2}


def test_invalid_combination_is_raised_for_the_caller_to_dead_letter() -> None:
    with pytest.raises(InvalidCombination, match="'nausea'"):
        assess(TermAnswer(term="nausea", frequency=0, severity=3))


def test_a_term_answered_twice_is_rejected() -> None:
    with pytest.raises(InvalidCombination, match="more than once"):
        assess(nausea(1), nausea(3))


# --- RED --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        diarrhoea(3),
        nausea(3),
        fsi("pain", 3),
        TermAnswer(term="fatigue", severity=2, interference=4),
        TermAnswer(term="loss_of_urine_control", frequency=4, interference=3),
        TermAnswer(term="constipation", severity=3),
    ],
    ids=lambda answer: answer.term,
)
def test_grade_3_is_red(answer: TermAnswer) -> None:
    assessment = assess(answer)
    assert assessment.findings == (Finding(answer.term, RULE_GRADE_3, "red", 3),)
    assert assessment.level == "red"


def test_very_severe_is_red_even_when_the_grade_is_2() -> None:
    assessment = assess(NAUSEA_VERY_SEVERE_GRADE_2)
    assert assessment.grades == {"nausea": 2}
    assert assessment.findings == (Finding("nausea", RULE_VERY_SEVERE, "red", 2),)


def test_very_severe_fires_at_the_lowest_grade_such_an_answer_can_have() -> None:
    # S·I (4,0) is grade 2, the lowest composite any "very severe" answer reaches.
    assessment = assess(TermAnswer(term="fatigue", severity=4, interference=0))
    assert assessment.findings == (Finding("fatigue", RULE_VERY_SEVERE, "red", 2),)


def test_very_severe_and_grade_3_on_one_term_give_one_grade_3_finding() -> None:
    assessment = assess(NAUSEA_VERY_SEVERE_GRADE_3)
    assert assessment.findings == (Finding("nausea", RULE_GRADE_3, "red", 3),)


@pytest.mark.parametrize("severity", [0, 1, 2, 3])
def test_severity_below_very_severe_does_not_fire_the_very_severe_rule(severity: int) -> None:
    assessment = assess(TermAnswer(term="dry_skin", severity=severity))
    assert RULE_VERY_SEVERE not in {finding.rule for finding in assessment.findings}


@pytest.mark.parametrize(
    "flags",
    [
        RedFlags(fever=True),
        RedFlags(temperature_c=38.0),
        RedFlags(temperature_c=39.4),
        RedFlags(fever=True, temperature_c=36.8),  # the patient's word is enough
        RedFlags(fever=True, temperature_c=38.5),
    ],
)
def test_fever_is_red_once(flags: RedFlags) -> None:
    assessment = assess(nausea(0), red_flags=flags)
    assert assessment.findings == (Finding("fever", RULE_FEVER, "red"),)


@pytest.mark.parametrize("flags", [RedFlags(), RedFlags(temperature_c=37.9), RedFlags(temperature_c=36.5)])
def test_no_fever_below_the_threshold(flags: RedFlags) -> None:
    assert assess(nausea(0), red_flags=flags).findings == ()


@pytest.mark.parametrize(("temperature", "fires"), [(37.4, False), (37.5, True), (37.6, True)])
def test_fever_threshold_is_configurable(temperature: float, fires: bool) -> None:
    rules = RuleSet(fever_threshold_c=37.5)
    assessment = assess(nausea(0), red_flags=RedFlags(temperature_c=temperature), rules=rules)
    assert bool(assessment.findings) is fires


@pytest.mark.parametrize(
    ("flags", "code", "rule"),
    [
        (RedFlags(bleeding=True), "bleeding", RULE_BLEEDING),
        (RedFlags(unable_to_eat_or_drink=True), "unable_to_eat_or_drink", RULE_UNABLE_TO_EAT_OR_DRINK),
        (RedFlags(wants_call=True), "wants_call", RULE_WANTS_CALL),
    ],
)
def test_red_flag_is_red(flags: RedFlags, code: str, rule: str) -> None:
    assessment = assess(nausea(1), red_flags=flags)
    assert assessment.findings == (Finding(code, rule, "red"),)
    assert assessment.level == "red"


def test_red_flags_fire_without_any_term() -> None:
    assessment = assess(red_flags=RedFlags(wants_call=True))
    assert assessment.grades == {}
    assert codes_and_rules(assessment) == [("wants_call", RULE_WANTS_CALL)]


def test_all_red_flags_together_are_sorted_by_code() -> None:
    flags = RedFlags(fever=True, bleeding=True, unable_to_eat_or_drink=True, wants_call=True)
    assert codes_and_rules(assess(red_flags=flags)) == [
        ("bleeding", RULE_BLEEDING),
        ("fever", RULE_FEVER),
        ("unable_to_eat_or_drink", RULE_UNABLE_TO_EAT_OR_DRINK),
        ("wants_call", RULE_WANTS_CALL),
    ]


# --- ORANGE ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [diarrhoea(2), nausea(2), fsi("pain", 2), TermAnswer(term="vaginal_discharge", interference=4)],
    ids=lambda answer: answer.term,
)
def test_grade_2_is_orange(answer: TermAnswer) -> None:
    assessment = assess(answer)
    assert assessment.findings == (Finding(answer.term, RULE_GRADE_2, "orange", 2),)
    assert assessment.level == "orange"


@pytest.mark.parametrize("answer", [nausea(0), nausea(1), diarrhoea(1), fsi("pain", 0), fsi("pain", 1)])
def test_grade_0_or_1_gives_no_finding(answer: TermAnswer) -> None:
    assessment = assess(answer)
    assert assessment.findings == ()
    assert assessment.level == "none"


# --- Worsening against the previous submission ------------------------------------------------------

LENIENT_WORSENING = RuleSet(worsening_grades=1)  # makes the worsened rule visible below grade 2


def test_worsening_by_two_grades_from_0_is_reported_as_grade_2() -> None:
    # Both grade2 and worsened fire; one finding per code, and grade2 is the stable choice.
    assessment = assess(nausea(2), previous=PreviousScore(grades={"nausea": 0}, ecog=None))
    assert assessment.findings == (Finding("nausea", RULE_GRADE_2, "orange", 2),)


def test_worsening_by_two_grades_to_grade_3_is_red() -> None:
    assessment = assess(nausea(3), previous=PreviousScore(grades={"nausea": 1}, ecog=None))
    assert assessment.findings == (Finding("nausea", RULE_GRADE_3, "red", 3),)


def test_worsened_rule_fires_on_its_own_below_grade_2() -> None:
    previous = PreviousScore(grades={"nausea": 0}, ecog=None)
    assessment = assess(nausea(1), previous=previous, rules=LENIENT_WORSENING)
    assert assessment.findings == (Finding("nausea", RULE_WORSENED, "orange", 1),)


@pytest.mark.parametrize(
    ("before", "grade", "rule"),
    [
        (0, 1, RULE_WORSENED),
        (0, 2, RULE_GRADE_2),  # grade2 and worsened both fire; grade2 is kept
        (1, 2, RULE_GRADE_2),
        (1, 1, None),
        (2, 1, None),
        (1, 0, None),
    ],
)
def test_worsening_threshold(before: int, grade: int, rule: str | None) -> None:
    previous = PreviousScore(grades={"diarrhoea": before}, ecog=None)
    assessment = assess(diarrhoea(grade), previous=previous, rules=LENIENT_WORSENING)
    assert [finding.rule for finding in assessment.findings] == ([rule] if rule else [])


def test_no_previous_submission_means_no_worsening() -> None:
    assert assess(nausea(1), previous=None, rules=LENIENT_WORSENING).findings == ()


def test_a_term_absent_from_the_previous_submission_is_not_worsened() -> None:
    previous = PreviousScore(grades={"pain": 0}, ecog=None)
    assert assess(nausea(1), previous=previous, rules=LENIENT_WORSENING).findings == ()


def test_improvement_gives_no_finding() -> None:
    previous = PreviousScore(grades={"nausea": 3, "pain": 2}, ecog=None)
    assert assess(nausea(1), fsi("pain", 0), previous=previous).findings == ()


def test_worsening_by_one_grade_is_not_enough_by_default() -> None:
    previous = PreviousScore(grades={"nausea": 0}, ecog=None)
    assert assess(nausea(1), previous=previous).findings == ()


# --- ECOG -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ecog", "previous_ecog", "fires"),
    [
        (None, None, False),
        (None, 1, False),
        (0, None, False),
        (2, None, False),
        (3, None, True),
        (4, None, True),
        (3, 4, True),  # improved, but still at or above the threshold
        (1, 0, True),
        (2, 1, True),
        (2, 0, True),
        (1, 1, False),
        (1, 2, False),
        (0, 2, False),
    ],
)
def test_ecog(ecog: int | None, previous_ecog: int | None, fires: bool) -> None:
    previous = PreviousScore(grades={}, ecog=previous_ecog)
    assessment = assess(nausea(0), previous=previous, ecog=ecog)
    expected = (Finding("ecog", RULE_ECOG, "orange", ecog),) if fires else ()
    assert assessment.findings == expected


def test_ecog_without_previous_submission_uses_only_the_threshold() -> None:
    assert assess(ecog=2, previous=None).findings == ()
    assert assess(ecog=3, previous=None).findings == (Finding("ecog", RULE_ECOG, "orange", 3),)


def test_ecog_thresholds_are_configurable() -> None:
    rules = RuleSet(ecog_orange_at=4, ecog_worsening=2)
    previous = PreviousScore(grades={}, ecog=1)
    assert assess(ecog=2, previous=previous, rules=rules).findings == ()
    assert assess(ecog=3, previous=previous, rules=rules).level == "orange"
    assert assess(ecog=3, previous=PreviousScore(grades={}, ecog=2), rules=rules).findings == ()
    assert assess(ecog=4, previous=None, rules=rules).level == "orange"


# --- One finding per code ---------------------------------------------------------------------------


def test_one_finding_per_code_keeps_the_most_severe() -> None:
    previous = PreviousScore(grades={"nausea": 0, "pain": 0}, ecog=None)
    assessment = assess(
        NAUSEA_VERY_SEVERE_GRADE_3,  # grade3 + very_severe + worsened
        fsi("pain", 2),  # grade2 + worsened
        previous=previous,
    )
    assert assessment.findings == (
        Finding("nausea", RULE_GRADE_3, "red", 3),
        Finding("pain", RULE_GRADE_2, "orange", 2),
    )
    codes = [finding.code for finding in assessment.findings]
    assert len(codes) == len(set(codes))


def test_red_beats_orange_for_one_term() -> None:
    # very_severe (red) and grade2 (orange) both fire for a F·S (1,4) answer.
    previous = PreviousScore(grades={"nausea": 0}, ecog=None)
    assessment = assess(NAUSEA_VERY_SEVERE_GRADE_2, previous=previous)
    assert assessment.findings == (Finding("nausea", RULE_VERY_SEVERE, "red", 2),)


# --- Proxy answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("term", ["anxiety", "sad", "discouraged"])
def test_relative_answering_a_psychological_term_caps_red_to_orange(term: str) -> None:
    assessment = assess(fsi(term, 3), answered_by="relative")
    assert assessment.findings == (Finding(term, RULE_PROXY_CAPPED, "orange", 3),)
    assert assessment.level == "orange"


def test_proxy_cap_also_covers_very_severe() -> None:
    answer = TermAnswer(term="anxiety", frequency=1, severity=4, interference=0)  # grade 2, very severe
    assessment = assess(answer, answered_by="relative")
    assert assessment.findings == (Finding("anxiety", RULE_PROXY_CAPPED, "orange", 2),)


def test_proxy_cap_leaves_orange_psychological_findings_alone() -> None:
    assessment = assess(fsi("anxiety", 2), answered_by="relative")
    assert assessment.findings == (Finding("anxiety", RULE_GRADE_2, "orange", 2),)


@pytest.mark.parametrize("answered_by", ["patient", "nurse_phone"])
def test_psychological_term_is_red_when_not_answered_by_a_relative(answered_by: AnsweredBy) -> None:
    assessment = assess(fsi("anxiety", 3), answered_by=answered_by)
    assert assessment.findings == (Finding("anxiety", RULE_GRADE_3, "red", 3),)


def test_relative_answering_a_physical_term_still_raises_red() -> None:
    assessment = assess(nausea(3), answered_by="relative")
    assert assessment.findings == (Finding("nausea", RULE_GRADE_3, "red", 3),)


def test_proxy_cap_does_not_hide_other_red_findings() -> None:
    assessment = assess(fsi("anxiety", 3), answered_by="relative", red_flags=RedFlags(bleeding=True))
    assert assessment.level == "red"
    assert assessment.findings == (
        Finding("bleeding", RULE_BLEEDING, "red"),
        Finding("anxiety", RULE_PROXY_CAPPED, "orange", 3),
    )


def test_psychological_terms_are_configurable() -> None:
    rules = RuleSet(psychological_terms=frozenset({"insomnia"}))
    insomnia = TermAnswer(term="insomnia", severity=3, interference=3)
    assessment = assess(insomnia, fsi("anxiety", 3), answered_by="relative", rules=rules)
    assert assessment.findings == (
        Finding("anxiety", RULE_GRADE_3, "red", 3),
        Finding("insomnia", RULE_PROXY_CAPPED, "orange", 3),
    )


# --- Silent terms -----------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0, 1, 2, 3, 4])
def test_hair_loss_is_graded_but_never_alerts(amount: int) -> None:
    previous = PreviousScore(grades={"hair_loss": 0}, ecog=None)
    assessment = assess(hair_loss(amount), previous=previous, rules=LENIENT_WORSENING)
    assert assessment.findings == ()
    assert "hair_loss" in assessment.grades


def test_silent_terms_are_configurable() -> None:
    rules = RuleSet(silent_terms=frozenset({"dry_skin"}))
    assessment = assess(hair_loss(4), TermAnswer(term="dry_skin", severity=4), rules=rules)
    assert assessment.grades == {"hair_loss": 2, "dry_skin": 3}
    assert assessment.findings == (Finding("hair_loss", RULE_GRADE_2, "orange", 2),)


# --- Expected levels --------------------------------------------------------------------------------


def expected_level(term: str, grade: int, until: datetime = NOW + timedelta(days=7)) -> ExpectedLevel:
    return ExpectedLevel(term=term, grade=grade, until=until)


@pytest.mark.parametrize(("expected_grade", "grade"), [(2, 2), (3, 2), (2, 1)])
def test_active_expected_level_suppresses_findings_up_to_its_grade(expected_grade: int, grade: int) -> None:
    assessment = assess(nausea(grade), expected=(expected_level("nausea", expected_grade),))
    assert assessment.findings == ()
    assert assessment.grades == {"nausea": grade}


def test_expected_level_does_not_cover_a_higher_grade() -> None:
    assessment = assess(nausea(3), expected=(expected_level("nausea", 2),))
    assert assessment.findings == (Finding("nausea", RULE_GRADE_3, "red", 3),)


def test_expected_level_never_quiets_a_red_finding() -> None:
    # CLINICAL.md §3: an expected level is "below which no alert fires"; grade 3 and "very severe" are RED.
    assert assess(nausea(3), expected=(expected_level("nausea", 3),)).findings == (
        Finding("nausea", RULE_GRADE_3, "red", 3),
    )
    previous = PreviousScore(grades={"nausea": 0}, ecog=None)
    expected = (expected_level("nausea", 2),)
    found = assess(NAUSEA_VERY_SEVERE_GRADE_2, previous=previous, expected=expected).findings
    assert [(f.code, f.level) for f in found] == [("nausea", "red")]  # the worsening (orange) is quiet


@pytest.mark.parametrize("until", [NOW, NOW - timedelta(seconds=1), NOW - timedelta(days=30)])
def test_expired_expected_level_is_ignored(until: datetime) -> None:
    assessment = assess(nausea(2), expected=(expected_level("nausea", 3, until),))
    assert assessment.findings == (Finding("nausea", RULE_GRADE_2, "orange", 2),)


def test_expected_level_only_covers_its_own_term() -> None:
    assessment = assess(nausea(2), fsi("pain", 2), expected=(expected_level("pain", 3),))
    assert assessment.findings == (Finding("nausea", RULE_GRADE_2, "orange", 2),)


def test_the_highest_active_expected_level_for_a_term_applies() -> None:
    expected = (
        expected_level("nausea", 1),
        expected_level("nausea", 3, NOW - timedelta(days=1)),  # expired
        expected_level("nausea", 2),
    )
    assert assess(nausea(2), expected=expected).findings == ()
    assert assess(nausea(3), expected=expected).findings == (Finding("nausea", RULE_GRADE_3, "red", 3),)


@pytest.mark.parametrize(
    ("flags", "code"),
    [
        (RedFlags(fever=True), "fever"),
        (RedFlags(bleeding=True), "bleeding"),
        (RedFlags(unable_to_eat_or_drink=True), "unable_to_eat_or_drink"),
        (RedFlags(wants_call=True), "wants_call"),
    ],
)
def test_expected_levels_never_suppress_red_flags(flags: RedFlags, code: str) -> None:
    expected = (expected_level(code, 3), expected_level("nausea", 2))
    assessment = assess(nausea(2), red_flags=flags, expected=expected)
    assert [finding.code for finding in assessment.findings] == [code]


def test_expected_levels_never_suppress_ecog() -> None:
    assessment = assess(ecog=4, expected=(expected_level("ecog", 4),))
    assert assessment.findings == (Finding("ecog", RULE_ECOG, "orange", 4),)


def test_expected_level_accepts_any_iterable() -> None:
    assessment = assess_submission(submission(nausea(2)), None, (level for level in [expected_level("nausea", 2)]), NOW)
    assert assessment.findings == ()


# --- Messages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("answered_by", ["patient", "relative", "nurse_phone"])
@pytest.mark.parametrize("text", ["J'ai très mal au ventre depuis hier.", "merci", ""])
def test_any_message_is_one_orange_finding(answered_by: AnsweredBy, text: str) -> None:
    message = MessageSentV1(
        message_id=UUID("00000000-0000-4000-8000-0000000000bb"),
        patient_id=PATIENT,
        sent_at=NOW,
        answered_by=answered_by,
        text=text,
    )
    assessment = assess_message(message)
    assert assessment.grades == {}
    assert assessment.findings == (Finding("patient_message", RULE_MESSAGE, "orange"),)
    assert assessment.level == "orange"
    assert assess_message(message, RuleSet(id="other")) == assessment


# --- Levels, order, reasons --------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "rank"), [("red", 2), ("orange", 1), ("none", 0)])
def test_level_rank(level: ScoreLevel, rank: int) -> None:
    assert level_rank(level) == rank


def test_level_rank_sorts_levels() -> None:
    levels: list[ScoreLevel] = ["orange", "none", "red", "orange"]
    assert sorted(levels, key=level_rank, reverse=True) == ["red", "orange", "orange", "none"]


@pytest.mark.parametrize(
    ("findings", "level"),
    [
        ((), "none"),
        ((Finding("pain", RULE_GRADE_2, "orange", 2),), "orange"),
        ((Finding("fever", RULE_FEVER, "red"),), "red"),
        ((Finding("fever", RULE_FEVER, "red"), Finding("pain", RULE_GRADE_2, "orange", 2)), "red"),
        ((Finding("pain", RULE_GRADE_2, "orange", 2), Finding("fever", RULE_FEVER, "red")), "red"),
    ],
)
def test_assessment_level(findings: tuple[Finding, ...], level: ScoreLevel) -> None:
    assert Assessment(grades={}, findings=findings).level == level


def test_finding_as_reason() -> None:
    assert Finding("nausea", RULE_GRADE_3, "red", 3).as_reason() == AlertReason(
        code="nausea", rule="red.grade3", level="red", grade=3
    )
    assert Finding("fever", RULE_FEVER, "red").as_reason() == AlertReason(
        code="fever", rule="red.fever", level="red", grade=None
    )


def test_findings_are_red_first_then_by_code() -> None:
    previous = PreviousScore(grades={}, ecog=0)
    assessment = assess(
        fsi("pain", 2),
        nausea(3),
        diarrhoea(2),
        TermAnswer(term="fatigue", severity=4, interference=0),
        ecog=1,
        previous=previous,
        red_flags=RedFlags(wants_call=True, bleeding=True),
    )
    assert [(f.level, f.code) for f in assessment.findings] == [
        ("red", "bleeding"),
        ("red", "fatigue"),
        ("red", "nausea"),
        ("red", "wants_call"),
        ("orange", "diarrhoea"),
        ("orange", "ecog"),
        ("orange", "pain"),
    ]


def test_finding_order_does_not_depend_on_answer_order() -> None:
    answers = [
        fsi("pain", 2),
        nausea(3),
        diarrhoea(2),
        TermAnswer(term="vomiting", frequency=1, severity=4),
        fsi("anxiety", 3),
    ]
    previous = PreviousScore(grades={"pain": 0, "vomiting": 0}, ecog=2)
    results = {
        assess(*ordering, previous=previous, ecog=3, red_flags=RedFlags(fever=True)).findings
        for ordering in itertools.permutations(answers)
    }
    assert len(results) == 1


def test_assessing_twice_gives_the_same_result() -> None:
    sub = submission(nausea(2), fsi("anxiety", 3), red_flags=RedFlags(bleeding=True), ecog=3)
    previous = PreviousScore(grades={"nausea": 0}, ecog=1)
    first = assess_submission(sub, previous, [], NOW)
    second = assess_submission(sub, previous, [], NOW)
    assert first == second
