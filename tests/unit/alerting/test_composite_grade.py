"""PRO-CTCAE composite grade: every published cell, the named vectors P01-P43 and the edge cases.

The table below is transcribed independently from research/clinical.md §3.2.1 (Basch et al., Clin Trials
2021;18:104-114), as markdown rows, so a typo in the implementation's grids cannot hide behind the same
typo here.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import NamedTuple, get_args

import pytest

from services.alerting.domain import (
    InvalidCombination,
    Pattern,
    attribute_pattern,
    composite_grade,
    term_grade,
)
from shared.events.questionnaire import TermAnswer

# --- The published table ---------------------------------------------------------------------------
# Each block: a header line "<pattern> [F=<n>]" then rows "| <row value> | cells for column 0..4 |".
# Rows and columns follow the attribute order of the pattern (F, then S, then I). "–" marks a combination
# that branching cannot produce (first attribute 0, a later one not 0): not one of the 179 cells.

PUBLISHED_TABLE = """
FSI F=0
| S=0 | 0 | – | – | – | – |
| S=1 | – | – | – | – | – |
| S=2 | – | – | – | – | – |
| S=3 | – | – | – | – | – |
| S=4 | – | – | – | – | – |

FSI F=1
| S=0 | 0 | 1 | 1 | 2 | 2 |
| S=1 | 1 | 1 | 1 | 2 | 2 |
| S=2 | 1 | 2 | 2 | 2 | 3 |
| S=3 | 2 | 2 | 2 | 3 | 3 |
| S=4 | 2 | 2 | 3 | 3 | 3 |

FSI F=2
| S=0 | 0 | 1 | 1 | 2 | 2 |
| S=1 | 1 | 1 | 1 | 2 | 2 |
| S=2 | 2 | 2 | 2 | 3 | 3 |
| S=3 | 2 | 2 | 2 | 3 | 3 |
| S=4 | 2 | 2 | 3 | 3 | 3 |

FSI F=3
| S=0 | 1 | 1 | 1 | 2 | 2 |
| S=1 | 1 | 1 | 1 | 2 | 2 |
| S=2 | 2 | 2 | 2 | 3 | 3 |
| S=3 | 2 | 2 | 3 | 3 | 3 |
| S=4 | 2 | 2 | 3 | 3 | 3 |

FSI F=4
| S=0 | 1 | 1 | 1 | 2 | 2 |
| S=1 | 1 | 1 | 2 | 2 | 3 |
| S=2 | 2 | 2 | 2 | 3 | 3 |
| S=3 | 2 | 2 | 3 | 3 | 3 |
| S=4 | 2 | 2 | 3 | 3 | 3 |

FS
| F=0 | 0 | – | – | – | – |
| F=1 | 1 | 1 | 1 | 2 | 2 |
| F=2 | 1 | 1 | 2 | 2 | 2 |
| F=3 | 1 | 1 | 2 | 3 | 3 |
| F=4 | 1 | 1 | 2 | 3 | 3 |

SI
| S=0 | 0 | – | – | – | – |
| S=1 | 1 | 1 | 1 | 2 | 2 |
| S=2 | 1 | 1 | 2 | 2 | 3 |
| S=3 | 1 | 2 | 2 | 3 | 3 |
| S=4 | 2 | 2 | 2 | 3 | 3 |

FI
| F=0 | 0 | – | – | – | – |
| F=1 | 1 | 1 | 1 | 2 | 2 |
| F=2 | 1 | 1 | 1 | 2 | 2 |
| F=3 | 1 | 1 | 2 | 3 | 3 |
| F=4 | 1 | 1 | 2 | 3 | 3 |

F
| - | 0 | 1 | 1 | 2 | 3 |

S
| - | 0 | 1 | 2 | 3 | 3 |

I
| - | 0 | 1 | 1 | 2 | 2 |
"""


class Cell(NamedTuple):
    pattern: Pattern
    frequency: int | None
    severity: int | None
    interference: int | None
    grade: int | None  # None = "–"

    @property
    def id(self) -> str:
        scores = (s for s in (self.frequency, self.severity, self.interference) if s is not None)
        return f"{self.pattern}-{'-'.join(map(str, scores))}"


def _cell(pattern: Pattern, scores: tuple[int, ...], grade: int | None) -> Cell:
    by_letter = dict(zip(pattern, scores, strict=True))
    return Cell(pattern, by_letter.get("F"), by_letter.get("S"), by_letter.get("I"), grade)


# A header's pattern, one of the domain's (a typo in a header fails the import with a KeyError).
PATTERNS: dict[str, Pattern] = {pattern: pattern for pattern in get_args(Pattern)}


def _parse_table(text: str) -> list[Cell]:
    cells: list[Cell] = []
    pattern: Pattern = "F"
    leading: tuple[int, ...] = ()
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        if not line.startswith("|"):
            header = line.split()
            pattern = PATTERNS[header[0]]
            leading = (int(header[1].removeprefix("F=")),) if len(header) > 1 else ()
            continue
        row_label, *values = (part.strip() for part in line.strip("|").split("|"))
        row = () if row_label == "-" else (int(row_label.split("=")[1]),)
        for column, value in enumerate(values):
            grade = None if value == "–" else int(value)
            cells.append(_cell(pattern, (*leading, *row, column), grade))
    return cells


ALL_CELLS = _parse_table(PUBLISHED_TABLE)
PUBLISHED_CELLS = [cell for cell in ALL_CELLS if cell.grade is not None]
IMPOSSIBLE_CELLS = [cell for cell in ALL_CELLS if cell.grade is None]


def test_the_transcription_has_the_179_published_cells_with_the_published_grade_distribution() -> None:
    assert len(PUBLISHED_CELLS) == 179
    assert Counter(cell.grade for cell in PUBLISHED_CELLS) == {0: 9, 1: 52, 2: 72, 3: 46}
    per_pattern = Counter(cell.pattern for cell in PUBLISHED_CELLS)
    assert per_pattern == {"FSI": 101, "FS": 21, "SI": 21, "FI": 21, "F": 5, "S": 5, "I": 5}


def test_the_transcription_covers_every_in_range_combination_exactly_once() -> None:
    # 5^3 + 3 * 5^2 + 3 * 5 combinations: every one is either a published cell or a "–".
    assert len(ALL_CELLS) == 215
    assert len({cell.id for cell in ALL_CELLS}) == 215
    assert len(IMPOSSIBLE_CELLS) == 36


@pytest.mark.parametrize("cell", PUBLISHED_CELLS, ids=lambda cell: cell.id)
def test_published_cell(cell: Cell) -> None:
    assert composite_grade(cell.pattern, cell.frequency, cell.severity, cell.interference) == cell.grade


@pytest.mark.parametrize("cell", IMPOSSIBLE_CELLS, ids=lambda cell: cell.id)
def test_combination_branching_cannot_produce_is_rejected(cell: Cell) -> None:
    with pytest.raises(InvalidCombination, match="cannot come from a PRO-CTCAE questionnaire"):
        composite_grade(cell.pattern, cell.frequency, cell.severity, cell.interference)


@pytest.mark.parametrize("cell", PUBLISHED_CELLS, ids=lambda cell: cell.id)
def test_published_cell_through_a_term_answer(cell: Cell) -> None:
    answer = TermAnswer(
        term="some_term", frequency=cell.frequency, severity=cell.severity, interference=cell.interference
    )
    assert attribute_pattern(answer) == cell.pattern
    assert term_grade(answer) == cell.grade


# --- Named vectors (research/clinical.md (b1)) ------------------------------------------------------

TERM_PATTERNS: dict[str, str] = {
    "nausea": "FS",
    "vomiting": "FS",
    "diarrhoea": "F",
    "constipation": "S",
    "dry_skin": "S",
    "hair_loss": "A",  # amount, scored as interference
    "fatigue": "SI",
    "decreased_appetite": "SI",
    "numbness_tingling": "SI",
    "loss_of_urine_control": "FI",
    "pain": "FSI",
    "anxiety": "FSI",
}

# id | term | F | S | I or amount | expected. "–" = not answered: 0 if the term asks it (skipped by
# branching), absent if the term does not have that attribute.
NAMED_VECTORS = """
P01 | nausea                | 0 | – | – | 0
P02 | nausea                | 1 | 1 | – | 1
P03 | nausea                | 2 | 2 | – | 2
P04 | nausea                | 3 | 3 | – | 3
P05 | nausea                | 4 | 2 | – | 2
P06 | vomiting              | 2 | 4 | – | 2
P07 | vomiting              | 1 | 3 | – | 2
P08 | diarrhoea             | 1 | – | – | 1
P09 | diarrhoea             | 2 | – | – | 1
P10 | diarrhoea             | 3 | – | – | 2
P11 | diarrhoea             | 4 | – | – | 3
P12 | constipation          | – | 2 | – | 2
P13 | constipation          | – | 3 | – | 3
P14 | constipation          | – | 4 | – | 3
P15 | hair_loss             | – | – | 2 | 1
P16 | hair_loss             | – | – | 4 | 2
P17 | fatigue               | – | 0 | – | 0
P18 | fatigue               | – | 1 | 4 | 2
P19 | fatigue               | – | 2 | 2 | 2
P20 | fatigue               | – | 2 | 4 | 3
P21 | fatigue               | – | 3 | 0 | 1
P22 | fatigue               | – | 3 | 1 | 2
P23 | fatigue               | – | 3 | 3 | 3
P24 | fatigue               | – | 4 | 0 | 2
P25 | decreased_appetite    | – | 3 | 0 | 1
P26 | numbness_tingling     | – | 2 | 3 | 2
P27 | loss_of_urine_control | 2 | – | 2 | 1
P28 | loss_of_urine_control | 3 | – | 2 | 2
P29 | loss_of_urine_control | 4 | – | 3 | 3
P30 | pain                  | 0 | – | – | 0
P31 | pain                  | 1 | 0 | 0 | 0
P32 | pain                  | 3 | 0 | 0 | 1
P33 | pain                  | 1 | 1 | 1 | 1
P34 | pain                  | 2 | 2 | 2 | 2
P35 | pain                  | 2 | 3 | 2 | 2
P36 | pain                  | 3 | 3 | 2 | 3
P37 | pain                  | 1 | 2 | 4 | 3
P38 | pain                  | 4 | 1 | 2 | 2
P39 | pain                  | 4 | 1 | 4 | 3
P40 | pain                  | 4 | 3 | 3 | 3
P41 | pain                  | 4 | 4 | 0 | 2
P42 | anxiety               | 2 | 2 | 0 | 2
P43 | anxiety               | 1 | 2 | 0 | 1
"""


def _answer_value(term: str, letter: str, text: str) -> int | None:
    asked = letter in TERM_PATTERNS[term]
    if text == "–":
        return 0 if asked else None
    assert asked, f"vector gives {letter} for {term}, which does not ask it"
    return int(text)


def _named_vectors() -> list[pytest.ParameterSet]:
    vectors = []
    for line in filter(None, (raw.strip() for raw in NAMED_VECTORS.splitlines())):
        vector_id, term, frequency, severity, third, expected = (part.strip() for part in line.split("|"))
        third_letter = "A" if "A" in TERM_PATTERNS[term] else "I"
        answer = TermAnswer(
            term=term,
            frequency=_answer_value(term, "F", frequency),
            severity=_answer_value(term, "S", severity),
            interference=_answer_value(term, "I", third) if third_letter == "I" else None,
            amount=_answer_value(term, "A", third) if third_letter == "A" else None,
        )
        vectors.append(pytest.param(answer, int(expected), id=f"{vector_id}-{term}"))
    return vectors


NAMED = _named_vectors()


def test_all_named_vectors_are_present() -> None:
    assert [str(param.id).split("-")[0] for param in NAMED] == [f"P{n:02d}" for n in range(1, 44)]


@pytest.mark.parametrize(("answer", "expected"), NAMED)
def test_named_vector(answer: TermAnswer, expected: int) -> None:
    assert term_grade(answer) == expected


@pytest.mark.parametrize(("severity", "expected"), [(0, 0), (1, 1), (2, 2), (3, 3), (4, 3)])
def test_dry_skin_is_severity_only(severity: int, expected: int) -> None:
    answer = TermAnswer(term="dry_skin", severity=severity)
    assert attribute_pattern(answer) == "S"
    assert term_grade(answer) == expected


# --- Cross-pattern inconsistency: one table per pattern, not a formula --------------------------------


def test_frequency_1_with_nothing_else_is_0_in_fsi_but_1_in_fs() -> None:
    assert composite_grade("FSI", 1, 0, 0) == 0
    assert composite_grade("FS", 1, 0, None) == 1
    assert term_grade(TermAnswer(term="pain", frequency=1, severity=0, interference=0)) == 0
    assert term_grade(TermAnswer(term="nausea", frequency=1, severity=0)) == 1


def test_frequency_3_with_nothing_else_is_1_in_fsi() -> None:
    assert composite_grade("FSI", 3, 0, 0) == 1


def test_fs_and_fi_differ_for_the_same_scores() -> None:
    assert composite_grade("FS", 2, 2, None) == 2
    assert composite_grade("FI", 2, None, 2) == 1


# --- Attribute patterns ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "pattern"),
    [
        (TermAnswer(term="diarrhoea", frequency=1), "F"),
        (TermAnswer(term="dry_skin", severity=1), "S"),
        (TermAnswer(term="hair_loss", amount=1), "I"),
        (TermAnswer(term="vaginal_discharge", interference=1), "I"),
        (TermAnswer(term="nausea", frequency=1, severity=1), "FS"),
        (TermAnswer(term="fatigue", severity=1, interference=1), "SI"),
        (TermAnswer(term="urinary_urgency", frequency=1, interference=1), "FI"),
        (TermAnswer(term="urinary_urgency", frequency=1, amount=1), "FI"),
        (TermAnswer(term="pain", frequency=1, severity=1, interference=1), "FSI"),
        (TermAnswer(term="pain", frequency=0, severity=0, interference=0), "FSI"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_attribute_pattern(answer: TermAnswer, pattern: Pattern) -> None:
    assert attribute_pattern(answer) == pattern


def test_a_term_without_any_attribute_has_no_pattern() -> None:
    # A yes/no (presence) item has no composite grade; it must not be scored as 0.
    with pytest.raises(InvalidCombination, match="'rash'"):
        attribute_pattern(TermAnswer(term="rash"))
    with pytest.raises(InvalidCombination, match="'rash'"):
        term_grade(TermAnswer(term="rash"))


def test_interference_and_amount_together_are_rejected_naming_the_term_and_values() -> None:
    answer = TermAnswer(term="hair_loss", interference=2, amount=3)
    with pytest.raises(InvalidCombination) as caught:
        attribute_pattern(answer)
    message = str(caught.value)
    assert "'hair_loss'" in message
    assert "(2)" in message
    assert "(3)" in message


def test_amount_is_scored_on_the_interference_row() -> None:
    for score in range(5):
        amount = term_grade(TermAnswer(term="hair_loss", amount=score))
        interference = term_grade(TermAnswer(term="vaginal_discharge", interference=score))
        assert amount == interference == composite_grade("I", None, None, score)


def test_an_impossible_term_answer_names_the_term_and_values() -> None:
    with pytest.raises(InvalidCombination) as caught:
        term_grade(TermAnswer(term="nausea", frequency=0, severity=2))
    message = str(caught.value)
    assert "'nausea'" in message
    assert "frequency 0" in message
    assert "severity 2" in message


# --- Invalid inputs --------------------------------------------------------------------------------

PATTERN_ARGUMENTS: dict[Pattern, tuple[int | None, int | None, int | None]] = {
    "F": (1, None, None),
    "S": (None, 1, None),
    "I": (None, None, 1),
    "FS": (1, 1, None),
    "SI": (None, 1, 1),
    "FI": (1, None, 1),
    "FSI": (1, 1, 1),
}


def _out_of_range_cases() -> list[pytest.ParameterSet]:
    cases = []
    for pattern, arguments in PATTERN_ARGUMENTS.items():
        for position, bad in itertools.product(range(3), (-1, 5, 10)):
            if arguments[position] is None:
                continue
            changed = list(arguments)
            changed[position] = bad
            cases.append(pytest.param(pattern, tuple(changed), id=f"{pattern}-{position}={bad}"))
    return cases


@pytest.mark.parametrize(("pattern", "arguments"), _out_of_range_cases())
def test_out_of_range_attribute_is_rejected(
    pattern: Pattern, arguments: tuple[int | None, int | None, int | None]
) -> None:
    with pytest.raises(InvalidCombination, match="outside the PRO-CTCAE 0-4 scale"):
        composite_grade(pattern, *arguments)


def test_out_of_range_term_answer_is_rejected_naming_the_term() -> None:
    # The event model validates 0-4; model_construct bypasses it, as a bug upstream could.
    answer = TermAnswer.model_construct(term="nausea", frequency=5, severity=1)
    with pytest.raises(InvalidCombination, match=r"'nausea'.*Frequency 5"):
        term_grade(answer)


def test_a_boolean_is_not_a_score() -> None:
    with pytest.raises(InvalidCombination):
        composite_grade("S", None, True, None)


def _missing_cases() -> list[pytest.ParameterSet]:
    cases = []
    for pattern, arguments in PATTERN_ARGUMENTS.items():
        for position, value in enumerate(arguments):
            if value is not None:
                changed = list(arguments)
                changed[position] = None
                cases.append(pytest.param(pattern, tuple(changed), id=f"{pattern}-without-{position}"))
    return cases


@pytest.mark.parametrize(("pattern", "arguments"), _missing_cases())
def test_missing_attribute_is_rejected(pattern: Pattern, arguments: tuple[int | None, int | None, int | None]) -> None:
    with pytest.raises(InvalidCombination, match="needs a"):
        composite_grade(pattern, *arguments)


def _extra_cases() -> list[pytest.ParameterSet]:
    cases = []
    for pattern, arguments in PATTERN_ARGUMENTS.items():
        for position, value in enumerate(arguments):
            if value is None:
                changed = list(arguments)
                changed[position] = 0
                cases.append(pytest.param(pattern, tuple(changed), id=f"{pattern}-with-{position}"))
    return cases


@pytest.mark.parametrize(("pattern", "arguments"), _extra_cases())
def test_attribute_the_pattern_does_not_have_is_rejected(
    pattern: Pattern, arguments: tuple[int | None, int | None, int | None]
) -> None:
    with pytest.raises(InvalidCombination, match="has no"):
        composite_grade(pattern, *arguments)


def test_unknown_pattern_is_rejected() -> None:
    with pytest.raises(InvalidCombination):
        composite_grade("SF", 1, 1, None)  # type: ignore[arg-type]  # not a Pattern, on purpose: the refusal is tested


def test_invalid_combination_is_a_value_error() -> None:
    assert issubclass(InvalidCombination, ValueError)


def test_there_is_no_grade_4() -> None:
    grades = set()
    for pattern in PATTERN_ARGUMENTS:
        for scores in itertools.product(range(5), repeat=len(pattern)):
            try:
                grades.add(_grade_of(pattern, scores))
            except InvalidCombination:
                continue
    assert grades == {0, 1, 2, 3}


def _grade_of(pattern: Pattern, scores: tuple[int, ...]) -> int:
    by_letter = dict(zip(pattern, scores, strict=True))
    return composite_grade(pattern, by_letter.get("F"), by_letter.get("S"), by_letter.get("I"))
