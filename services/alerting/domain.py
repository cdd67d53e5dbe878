"""Scoring and alert rules for questionnaire answers and patient messages (CLINICAL.md §2–§3).

Pure functions over the event models: no I/O, no clock (``now`` is passed in), so every decision can be
replayed from the stored events and the rule-set label recorded with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.events.alerts import AlertLevel, AlertReason, AlertStatus, ScoreLevel
from shared.events.questionnaire import AnsweredBy, MessageSentV1, QuestionnaireSubmittedV1, TermAnswer

__all__ = [
    "DEFAULT_RULE_SET",
    "RULE_BLEEDING",
    "RULE_ECOG",
    "RULE_FEVER",
    "RULE_GRADE_2",
    "RULE_GRADE_3",
    "RULE_MESSAGE",
    "RULE_PROXY_CAPPED",
    "RULE_UNABLE_TO_EAT_OR_DRINK",
    "RULE_VERY_SEVERE",
    "RULE_WANTS_CALL",
    "RULE_WORSENED",
    "ActiveAlert",
    "AlertPlan",
    "AlertUpdate",
    "Assessment",
    "ExpectedLevel",
    "Finding",
    "InvalidCombination",
    "Pattern",
    "PreviousScore",
    "RuleSet",
    "TransitionRefused",
    "assess_message",
    "assess_submission",
    "attribute_pattern",
    "check_acknowledge",
    "check_resolve",
    "composite_grade",
    "level_rank",
    "plan_alerts",
    "term_grade",
]

Pattern = Literal["F", "S", "I", "FS", "SI", "FI", "FSI"]

RULE_GRADE_3: Final = "red.grade3"
RULE_VERY_SEVERE: Final = "red.very_severe"
RULE_FEVER: Final = "red.fever"
RULE_BLEEDING: Final = "red.bleeding"
RULE_UNABLE_TO_EAT_OR_DRINK: Final = "red.unable_to_eat_or_drink"
RULE_WANTS_CALL: Final = "red.wants_call"
RULE_GRADE_2: Final = "orange.grade2"
RULE_WORSENED: Final = "orange.worsened"
RULE_ECOG: Final = "orange.ecog"
RULE_MESSAGE: Final = "orange.message"
RULE_PROXY_CAPPED: Final = "orange.proxy_psychological"

_MIN_SCORE: Final = 0
_MAX_SCORE: Final = 4
_SEVERITY_VERY_SEVERE: Final = 4

_ATTRIBUTE_NAMES: Final[Mapping[str, str]] = {"F": "frequency", "S": "severity", "I": "interference"}
# Attribute letters always in F, S, I order, so a pattern is also the order of its lookup-table axes.
_PATTERNS: Final[Mapping[str, Pattern]] = {
    "F": "F",
    "S": "S",
    "I": "I",
    "FS": "FS",
    "SI": "SI",
    "FI": "FI",
    "FSI": "FSI",
}


class InvalidCombination(ValueError):
    """Answers that no PRO-CTCAE questionnaire can produce; the caller treats the event as poison."""


# --- PRO-CTCAE composite grade tables --------------------------------------------------------------
#
# Basch et al., Clin Trials 2021;18:104-114, as read in research/clinical.md §3.2.1. Kept as literal grids
# because the published mapping is not a formula (it is not even consistent across patterns: F·S·I
# (1,0,0) is 0 while F·S (1,0) is 1). ``None`` is a published "–" cell: the first attribute is 0 but a
# later one is not, which the branching (skipped attributes score 0) cannot produce.

_Cell = int | None
_Row = tuple[_Cell, _Cell, _Cell, _Cell, _Cell]
_Grid = tuple[_Row, _Row, _Row, _Row, _Row]

_ONLY_ZERO_ROW: Final[_Row] = (0, None, None, None, None)
_NOTHING_ROW: Final[_Row] = (None, None, None, None, None)

# Single attribute, indexed by the score.
_F_ONLY: Final[_Row] = (0, 1, 1, 2, 3)
_S_ONLY: Final[_Row] = (0, 1, 2, 3, 3)
_I_ONLY: Final[_Row] = (0, 1, 1, 2, 2)

# Two attributes: rows = first attribute 0..4, columns = second attribute 0..4.
_FS: Final[_Grid] = (
    _ONLY_ZERO_ROW,
    (1, 1, 1, 2, 2),
    (1, 1, 2, 2, 2),
    (1, 1, 2, 3, 3),
    (1, 1, 2, 3, 3),
)
_SI: Final[_Grid] = (
    _ONLY_ZERO_ROW,
    (1, 1, 1, 2, 2),
    (1, 1, 2, 2, 3),
    (1, 2, 2, 3, 3),
    (2, 2, 2, 3, 3),
)
_FI: Final[_Grid] = (
    _ONLY_ZERO_ROW,
    (1, 1, 1, 2, 2),
    (1, 1, 1, 2, 2),
    (1, 1, 2, 3, 3),
    (1, 1, 2, 3, 3),
)

# Three attributes: one grid per frequency 0..4; in each grid rows = severity, columns = interference.
_FSI: Final[tuple[_Grid, _Grid, _Grid, _Grid, _Grid]] = (
    (  # frequency 0: only the all-zero answer exists
        _ONLY_ZERO_ROW,
        _NOTHING_ROW,
        _NOTHING_ROW,
        _NOTHING_ROW,
        _NOTHING_ROW,
    ),
    (  # frequency 1
        (0, 1, 1, 2, 2),
        (1, 1, 1, 2, 2),
        (1, 2, 2, 2, 3),
        (2, 2, 2, 3, 3),
        (2, 2, 3, 3, 3),
    ),
    (  # frequency 2
        (0, 1, 1, 2, 2),
        (1, 1, 1, 2, 2),
        (2, 2, 2, 3, 3),
        (2, 2, 2, 3, 3),
        (2, 2, 3, 3, 3),
    ),
    (  # frequency 3
        (1, 1, 1, 2, 2),
        (1, 1, 1, 2, 2),
        (2, 2, 2, 3, 3),
        (2, 2, 3, 3, 3),
        (2, 2, 3, 3, 3),
    ),
    (  # frequency 4
        (1, 1, 1, 2, 2),
        (1, 1, 2, 2, 3),
        (2, 2, 2, 3, 3),
        (2, 2, 3, 3, 3),
        (2, 2, 3, 3, 3),
    ),
)


def attribute_pattern(answer: TermAnswer) -> Pattern:
    """The term's attribute pattern: which attributes the answer carries (``amount`` counts as I)."""
    if answer.interference is not None and answer.amount is not None:
        raise InvalidCombination(
            f"Term {answer.term!r} has both an interference ({answer.interference}) and an amount "
            f"({answer.amount}) answer, but a PRO-CTCAE term has at most one of them."
        )
    letters = "".join(
        letter
        for letter, value in (
            ("F", answer.frequency),
            ("S", answer.severity),
            ("I", answer.interference if answer.interference is not None else answer.amount),
        )
        if value is not None
    )
    if not letters:
        raise InvalidCombination(
            f"Term {answer.term!r} has no frequency, severity, interference or amount answer, "
            "so it has no composite grade."
        )
    return _as_pattern(letters)


def composite_grade(pattern: Pattern, frequency: int | None, severity: int | None, interference: int | None) -> int:
    """PRO-CTCAE composite grade 0-3 for one term answered with the given attribute pattern."""
    pattern = _as_pattern(pattern)
    values = {"F": frequency, "S": severity, "I": interference}
    _check_attributes_match_pattern(pattern, values)
    scores = tuple(_checked_score(letter, values[letter]) for letter in pattern)
    grade = _lookup(pattern, scores)
    if grade is None:
        raise InvalidCombination(
            f"The answers {_describe(pattern, scores)} cannot come from a PRO-CTCAE questionnaire: "
            f"when {_ATTRIBUTE_NAMES[pattern[0]]} is 0 the later questions are skipped and score 0."
        )
    return grade


def term_grade(answer: TermAnswer) -> int:
    """Composite grade of one term in its own pattern (hair-loss ``amount`` is scored as interference)."""
    pattern = attribute_pattern(answer)
    interference = answer.interference if answer.interference is not None else answer.amount
    try:
        return composite_grade(pattern, answer.frequency, answer.severity, interference)
    except InvalidCombination as error:
        # composite_grade does not know the term; the nurse and the dead-letter log need it.
        raise InvalidCombination(f"Invalid answers for term {answer.term!r}. {error}") from error


def _as_pattern(value: str) -> Pattern:
    try:
        return _PATTERNS[value]
    except KeyError:
        raise InvalidCombination(f"{value!r} is not a PRO-CTCAE attribute pattern.") from None


def _check_attributes_match_pattern(pattern: Pattern, values: Mapping[str, int | None]) -> None:
    for letter, name in _ATTRIBUTE_NAMES.items():
        value = values[letter]
        if letter in pattern and value is None:
            raise InvalidCombination(f"Pattern {pattern} needs a {name} answer but none was given.")
        if letter not in pattern and value is not None:
            raise InvalidCombination(f"Pattern {pattern} has no {name}, but {name} {value} was given.")


def _checked_score(letter: str, value: int | None) -> int:
    # bool is an int in Python; a yes/no answer is a presence item, which has no composite grade.
    if not isinstance(value, int) or isinstance(value, bool) or not _MIN_SCORE <= value <= _MAX_SCORE:
        raise InvalidCombination(
            f"{_ATTRIBUTE_NAMES[letter].capitalize()} {value!r} is outside the PRO-CTCAE 0-4 scale."
        )
    return value


def _lookup(pattern: Pattern, scores: tuple[int, ...]) -> _Cell:
    match pattern:
        case "F":
            return _F_ONLY[scores[0]]
        case "S":
            return _S_ONLY[scores[0]]
        case "I":
            return _I_ONLY[scores[0]]
        case "FS":
            return _FS[scores[0]][scores[1]]
        case "SI":
            return _SI[scores[0]][scores[1]]
        case "FI":
            return _FI[scores[0]][scores[1]]
        case "FSI":
            return _FSI[scores[0]][scores[1]][scores[2]]
    raise AssertionError(f"unhandled pattern {pattern!r}")  # pragma: no cover - _as_pattern checked it


def _describe(pattern: Pattern, scores: tuple[int, ...]) -> str:
    return ", ".join(f"{_ATTRIBUTE_NAMES[letter]} {score}" for letter, score in zip(pattern, scores, strict=True))


# --- Alert rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSet:
    """Thresholds a hospital can change; ``label`` is stored with every score so it can be explained."""

    id: str = "default"
    version: str = "1"
    psychological_terms: frozenset[str] = frozenset({"anxiety", "sad", "discouraged"})
    fever_threshold_c: float = 38.0
    worsening_grades: int = 2
    ecog_orange_at: int = 3
    ecog_worsening: int = 1
    silent_terms: frozenset[str] = frozenset({"hair_loss"})

    def __post_init__(self) -> None:
        # A zero step would flag every unchanged term or ECOG as "worse", flooding the nurses.
        if self.worsening_grades < 1 or self.ecog_worsening < 1:
            raise ValueError(
                f"Rule set {self.label}: worsening_grades ({self.worsening_grades}) and ecog_worsening "
                f"({self.ecog_worsening}) must be at least 1."
            )

    @property
    def label(self) -> str:
        return f"{self.id}@{self.version}"


DEFAULT_RULE_SET: Final = RuleSet()


class RuleSetDefinition(BaseModel):
    """A hospital's own rule set (``ALERT_RULES_FILE``), checked before the service starts. Omitted thresholds keep
    the default's; the id and version are the hospital's, so every score says which rules produced it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,30}$")
    fever_threshold_c: float = Field(default=DEFAULT_RULE_SET.fever_threshold_c, ge=37.5, le=39.5)
    worsening_grades: int = Field(default=DEFAULT_RULE_SET.worsening_grades, ge=1, le=3)
    ecog_orange_at: int = Field(default=DEFAULT_RULE_SET.ecog_orange_at, ge=1, le=4)
    ecog_worsening: int = Field(default=DEFAULT_RULE_SET.ecog_worsening, ge=1, le=4)
    psychological_terms: frozenset[str] = DEFAULT_RULE_SET.psychological_terms
    silent_terms: frozenset[str] = DEFAULT_RULE_SET.silent_terms

    @field_validator("id")
    @classmethod
    def _not_the_default(cls, value: str) -> str:
        # Scores already labelled default@1 were produced by the platform's defaults: another rule set under that
        # name would make them impossible to explain.
        if value == DEFAULT_RULE_SET.id:
            raise ValueError(
                "'default' names the platform's own rule set: give yours an id of its own, such as 'chu-lyon'"
            )
        return value

    def rule_set(self) -> RuleSet:
        return RuleSet(**self.model_dump())


@dataclass(frozen=True)
class PreviousScore:
    """The patient's previous scored submission, the baseline for the worsening rules."""

    grades: Mapping[str, int]
    ecog: int | None


@dataclass(frozen=True)
class ExpectedLevel:
    """A nurse's note that grades up to ``grade`` are expected for this patient and term until ``until``."""

    term: str
    grade: int
    until: datetime


@dataclass(frozen=True)
class Finding:
    """One reason to alert: ``code`` is a PRO-CTCAE term or a red-flag code, ``rule`` a RULE_* id."""

    code: str
    rule: str
    level: AlertLevel
    grade: int | None = None

    def as_reason(self, answered_by: AnsweredBy | None = None) -> AlertReason:
        return AlertReason(code=self.code, rule=self.rule, level=self.level, grade=self.grade, answered_by=answered_by)


@dataclass(frozen=True)
class Assessment:
    """Every term's grade and the findings, at most one per code, red first then by code."""

    grades: dict[str, int]
    findings: tuple[Finding, ...]

    @property
    def level(self) -> ScoreLevel:
        return max((finding.level for finding in self.findings), key=level_rank, default="none")


_LEVEL_RANKS: Final[Mapping[ScoreLevel, int]] = {"red": 2, "orange": 1, "none": 0}

# When several rules fire for one code only one finding is kept; within a level, the rule that says most
# about the patient's state wins (a grade is a stronger statement than a single answer or a change).
_RULE_PRIORITY: Final[Mapping[str, int]] = {
    RULE_GRADE_3: 0,
    RULE_VERY_SEVERE: 1,
    RULE_PROXY_CAPPED: 2,
    RULE_GRADE_2: 3,
    RULE_WORSENED: 4,
}
_UNRANKED_RULE: Final = len(_RULE_PRIORITY)


def level_rank(level: ScoreLevel) -> int:
    """Red 2, orange 1, none 0: for sorting and for "did the level rise"."""
    return _LEVEL_RANKS[level]


def assess_submission(
    submission: QuestionnaireSubmittedV1,
    previous: PreviousScore | None,
    expected: Iterable[ExpectedLevel],
    now: datetime,
    rules: RuleSet = DEFAULT_RULE_SET,
) -> Assessment:
    """Grade every term and apply the rule set (CLINICAL.md §3); raises InvalidCombination on bad answers."""
    grades = _grade_terms(submission.terms)
    expected_grades = _active_expected_grades(expected, now)
    by_term = {answer.term: answer for answer in submission.terms}

    findings: list[Finding] = []
    for term, grade in grades.items():
        if term in rules.silent_terms:
            continue
        term_findings = _term_findings(by_term[term], grade, previous, rules)
        if submission.answered_by == "relative" and term in rules.psychological_terms:
            term_findings = [_cap_proxy(finding) for finding in term_findings]
        if grade <= expected_grades.get(term, -1):
            # What the team expects of this patient (a known grade 2, say) is quiet; a red finding never is.
            term_findings = [finding for finding in term_findings if finding.level == "red"]
        findings.extend(term_findings)
    findings.extend(_red_flag_findings(submission, rules))
    findings.extend(_ecog_findings(submission.ecog, previous, rules))
    return Assessment(grades=grades, findings=_one_per_code(findings))


MESSAGE_CODE = "patient_message"


def assess_message(message: MessageSentV1, rules: RuleSet = DEFAULT_RULE_SET) -> Assessment:
    """Any free-text message asks for a human reading; the text itself is never interpreted here.

    ``message`` and ``rules`` do not change the outcome today; they keep the signature parallel to
    assess_submission so a rule set can later tune message handling without touching callers.
    """
    return Assessment(grades={}, findings=(Finding(code=MESSAGE_CODE, rule=RULE_MESSAGE, level="orange"),))


def _grade_terms(terms: Iterable[TermAnswer]) -> dict[str, int]:
    grades: dict[str, int] = {}
    for answer in terms:
        if answer.term in grades:
            # Two answers for one term would make the grade depend on their order; refuse rather than guess.
            raise InvalidCombination(f"Term {answer.term!r} is answered more than once in one submission.")
        grades[answer.term] = term_grade(answer)
    return grades


def _active_expected_grades(expected: Iterable[ExpectedLevel], now: datetime) -> dict[str, int]:
    grades: dict[str, int] = {}
    for level in expected:
        if level.until > now:
            grades[level.term] = max(level.grade, grades.get(level.term, level.grade))
    return grades


def _term_findings(answer: TermAnswer, grade: int, previous: PreviousScore | None, rules: RuleSet) -> list[Finding]:
    findings: list[Finding] = []
    if grade == 3:
        findings.append(Finding(answer.term, RULE_GRADE_3, "red", grade))
    if answer.severity == _SEVERITY_VERY_SEVERE:
        findings.append(Finding(answer.term, RULE_VERY_SEVERE, "red", grade))
    if grade == 2:
        findings.append(Finding(answer.term, RULE_GRADE_2, "orange", grade))
    if _worsened(answer.term, grade, previous, rules):
        findings.append(Finding(answer.term, RULE_WORSENED, "orange", grade))
    return findings


def _worsened(term: str, grade: int, previous: PreviousScore | None, rules: RuleSet) -> bool:
    if previous is None or term not in previous.grades:
        return False
    return grade >= previous.grades[term] + rules.worsening_grades


def _cap_proxy(finding: Finding) -> Finding:
    # Relatives overestimate psychological symptoms: their answer is worth a look, not an emergency.
    if finding.level != "red":
        return finding
    return Finding(finding.code, RULE_PROXY_CAPPED, "orange", finding.grade)


def _red_flag_findings(submission: QuestionnaireSubmittedV1, rules: RuleSet) -> list[Finding]:
    flags = submission.red_flags
    measured_fever = flags.temperature_c is not None and flags.temperature_c >= rules.fever_threshold_c
    fired = (
        ("fever", RULE_FEVER, flags.fever or measured_fever),
        ("bleeding", RULE_BLEEDING, flags.bleeding),
        ("unable_to_eat_or_drink", RULE_UNABLE_TO_EAT_OR_DRINK, flags.unable_to_eat_or_drink),
        ("wants_call", RULE_WANTS_CALL, flags.wants_call),
    )
    return [Finding(code, rule, "red") for code, rule, is_raised in fired if is_raised]


def _ecog_findings(ecog: int | None, previous: PreviousScore | None, rules: RuleSet) -> list[Finding]:
    if ecog is None:
        return []
    previous_ecog = previous.ecog if previous is not None else None
    worsened = previous_ecog is not None and ecog >= previous_ecog + rules.ecog_worsening
    if ecog >= rules.ecog_orange_at or worsened:
        return [Finding("ecog", RULE_ECOG, "orange", ecog)]
    return []


def _one_per_code(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    kept: dict[str, Finding] = {}
    for finding in findings:
        current = kept.get(finding.code)
        if current is None or _severity_key(finding) < _severity_key(current):
            kept[finding.code] = finding
    return tuple(sorted(kept.values(), key=lambda finding: (-level_rank(finding.level), finding.code)))


def _severity_key(finding: Finding) -> tuple[int, int]:
    return (-level_rank(finding.level), _RULE_PRIORITY.get(finding.rule, _UNRANKED_RULE))


# --- The alert lifecycle (CLINICAL.md §3 noise control, §4 the nurse's work) ---------------------------


@dataclass(frozen=True)
class ActiveAlert:
    """An alert that is not resolved yet, as the merge rule needs it."""

    alert_id: UUID
    level: AlertLevel
    status: AlertStatus
    reasons: tuple[AlertReason, ...]


@dataclass(frozen=True)
class AlertUpdate:
    alert: ActiveAlert
    level: AlertLevel
    status: AlertStatus
    reasons: tuple[AlertReason, ...]
    # Whether the incoming findings became reasons of the alert (not merely less severe than what it holds):
    # only then does "who answered" become theirs.
    took_reasons: bool = True


@dataclass(frozen=True)
class AlertPlan:
    updates: tuple[AlertUpdate, ...]
    new_reasons: tuple[AlertReason, ...]

    @property
    def new_level(self) -> AlertLevel | None:
        return _highest(self.new_reasons)


def _highest(reasons: Iterable[AlertReason]) -> AlertLevel | None:
    levels = [r.level for r in reasons]
    if not levels:
        return None
    return "red" if "red" in levels else "orange"


def alert_source(reasons: Iterable[AlertReason], fallback: str) -> str:
    """Who answered, for the alert as a whole: the source of its most severe reason (the latest of equals), so
    that a relative's later orange report does not relabel the patient's own red one; ``fallback`` when no reason
    says (reasons recorded before they named their source)."""
    named = [(_severity(r), index, r.answered_by) for index, r in enumerate(reasons) if r.answered_by is not None]
    return max(named)[2] if named else fallback


def plan_alerts(
    findings: Iterable[Finding], active: Iterable[ActiveAlert], answered_by: AnsweredBy | None = None
) -> AlertPlan:
    """Merge findings into the patient's active alerts by term, and gather the rest into one new alert.

    A finding on a term (or red-flag code) that an active alert already carries updates that reason and may
    raise the alert's level. A reason is never made less severe by a merge (the alert keeps what made it red;
    a later report of the same grade replaces it). An acknowledged alert goes back to "open", so that a nurse
    looks again, when what arrives needs one: a red finding (a grade 3, a fever, a request to be called…),
    a new message, or a term worse than before.
    """
    owner: dict[str, ActiveAlert] = {}
    for alert in active:
        for reason in alert.reasons:
            owner.setdefault(reason.code, alert)
    merged: dict[UUID, list[AlertReason]] = {}
    fresh: list[AlertReason] = []
    for finding in findings:
        reason = finding.as_reason(answered_by)
        target = owner.get(reason.code)
        if target is None:
            fresh.append(reason)
        else:
            merged.setdefault(target.alert_id, []).append(reason)
    updates = []
    for alert in {a.alert_id: a for a in owner.values()}.values():
        incoming = merged.get(alert.alert_id)
        if not incoming:
            continue
        before = {r.code: r for r in alert.reasons}
        kept = {r.code: r for r in incoming if _at_least_as_severe(r, before.get(r.code))}
        reasons = tuple(r for r in alert.reasons if r.code not in kept) + tuple(kept.values())
        level = _highest((*reasons, AlertReason(code="_", rule="_", level=alert.level)))
        assert level is not None
        status: AlertStatus = alert.status
        if status == "acknowledged" and any(_needs_a_nurse_again(r, before.get(r.code)) for r in incoming):
            status = "open"
        updates.append(AlertUpdate(alert, level, status, reasons, took_reasons=bool(kept)))
    return AlertPlan(tuple(updates), tuple(fresh))


def _severity(reason: AlertReason) -> tuple[int, int]:
    return level_rank(reason.level), reason.grade if reason.grade is not None else -1


def _at_least_as_severe(reason: AlertReason, before: AlertReason | None) -> bool:
    return before is None or _severity(reason) >= _severity(before)


def _needs_a_nurse_again(reason: AlertReason, before: AlertReason | None) -> bool:
    return (
        reason.level == "red" or reason.code == MESSAGE_CODE or before is None or _severity(reason) > _severity(before)
    )


class TransitionRefused(Exception):
    """A lifecycle step that the alert's current status does not allow (HTTP 409)."""


def check_acknowledge(status: AlertStatus) -> None:
    if status == "resolved":
        raise TransitionRefused("This alert is already resolved; it cannot be acknowledged.")
    if status == "acknowledged":
        raise TransitionRefused("This alert was already acknowledged by a colleague.")


def check_resolve(status: AlertStatus) -> None:
    if status == "resolved":
        raise TransitionRefused("This alert is already resolved.")


def check_reopen(status: AlertStatus) -> None:
    if status != "resolved":
        raise TransitionRefused("Only a resolved alert can be reopened; this one is still being handled.")
