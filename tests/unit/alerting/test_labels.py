"""Every code the dashboard can receive has a French label in services.alerting.labels."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

import pytest

from services.alerting import domain, labels
from shared.events.alerts import AlertLevel, Outcome
from shared.events.questionnaire import AnsweredBy

DEFINITIONS_DIR = Path(__file__).resolve().parents[3] / "services" / "questionnaire" / "definitions"
ATTRIBUTE_SYSTEM = "https://oncofollow.example/fhir/CodeSystem/pro-ctcae-attribute"

RULE_IDS = sorted(value for name, value in vars(domain).items() if name.startswith("RULE_") and isinstance(value, str))


def _items(items: list[dict[str, Any]], parent: str | None = None) -> Iterator[tuple[dict[str, Any], str | None]]:
    for item in items:
        yield item, parent
        yield from _items(item.get("item", []), item.get("linkId"))


def _questionnaire_terms() -> set[str]:
    """Terms asked by the definitions: the group of every PRO-CTCAE attribute item, and the code's term."""
    terms: set[str] = set()
    for path in sorted(DEFINITIONS_DIR.glob("*.json")):
        definition = json.loads(path.read_text(encoding="utf-8"))
        for item, parent in _items(definition.get("item", [])):
            for coding in item.get("code", []):
                if coding.get("system") == ATTRIBUTE_SYSTEM:
                    terms.add(coding["code"].partition(".")[0])
                    if parent is not None:
                        terms.add(parent)
    return terms


def _assert_labelled(code: str, table: Mapping[str, str]) -> None:
    label = table.get(code)
    assert isinstance(label, str), f"{code!r} has no label"
    assert label.strip(), f"{code!r} has an empty label"


def test_rule_ids_are_found() -> None:
    assert len(RULE_IDS) >= 11
    assert "red.grade3" in RULE_IDS


@pytest.mark.parametrize("rule", RULE_IDS)
def test_every_rule_has_a_label(rule: str) -> None:
    _assert_labelled(rule, labels.RULES)


@pytest.mark.parametrize("outcome", get_args(Outcome))
def test_every_outcome_has_a_label(outcome: str) -> None:
    _assert_labelled(outcome, labels.OUTCOMES)


@pytest.mark.parametrize("source", get_args(AnsweredBy))
def test_every_answer_source_has_a_label(source: str) -> None:
    _assert_labelled(source, labels.SOURCES)


@pytest.mark.parametrize("level", get_args(AlertLevel))
def test_every_alert_level_has_a_label(level: str) -> None:
    _assert_labelled(level, labels.LEVELS)


def test_every_questionnaire_term_has_a_label() -> None:
    terms = _questionnaire_terms()
    assert "nausea" in terms and "hair_loss" in terms, "the default questionnaire was not read"
    for term in sorted(terms):
        _assert_labelled(term, labels.TERMS)


@pytest.mark.parametrize(
    "code", ["fever", "bleeding", "unable_to_eat_or_drink", "wants_call", "patient_message", "ecog"]
)
def test_every_non_term_reason_code_has_a_label(code: str) -> None:
    _assert_labelled(code, labels.RED_FLAGS)


def test_reference_has_the_api_shape() -> None:
    body = labels.reference()
    assert set(body) == {"terms", "rules", "red_flags", "outcomes", "sources", "levels"}
    assert body["levels"] == {"red": "ROUGE", "orange": "ORANGE"}
    assert all(isinstance(k, str) and isinstance(v, str) for table in body.values() for k, v in table.items())
    json.dumps(body)  # plain dicts, serialisable as they are
    body["terms"]["nausea"] = "changed"
    assert labels.reference()["terms"]["nausea"] == "Nausées"
