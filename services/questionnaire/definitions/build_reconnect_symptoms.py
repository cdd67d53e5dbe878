"""Generates ``reconnect-symptoms.json``, the default RE'CONNECT symptom questionnaire (FHIR R4).

The JSON file is the definition the service loads and serves; this script only keeps its 60-odd items
consistent (same scales, same branching, same extensions everywhere). Edit the data below, then run::

    python services/questionnaire/definitions/build_reconnect_symptoms.py

A unit test fails when the JSON file and this script disagree.

The French wording is the project's own, in plain words for patients with low literacy. It is *not* the
official, linguistically validated French PRO-CTCAE text (licensed by the NCI): a hospital that holds
that licence can publish a new version of this questionnaire with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent / "reconnect-symptoms.json"

BASE = "https://oncofollow.example/fhir"
ATTRIBUTE_SYSTEM = f"{BASE}/CodeSystem/pro-ctcae-attribute"
RED_FLAG_SYSTEM = f"{BASE}/CodeSystem/red-flag"
ECOG_SYSTEM = f"{BASE}/CodeSystem/ecog"
RED_FLAG_EXTENSION = f"{BASE}/StructureDefinition/red-flag"
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"

RECALL = "Au cours des 7 derniers jours"

# The published 0-4 PRO-CTCAE scales, in plain French. "amount" (hair loss) is scored like interference.
SCALES: dict[str, tuple[str, str, str, str, str]] = {
    "frequency": ("Jamais", "Rarement", "De temps en temps", "Souvent", "Presque tout le temps"),
    "severity": ("Pas du tout", "Léger", "Moyen", "Fort", "Très fort"),
    "interference": ("Pas du tout", "Un peu", "Moyennement", "Beaucoup", "Énormément"),
    "amount": ("Pas du tout", "Un peu", "Moyennement", "Beaucoup", "Énormément"),
}

# PRO-CTCAE asks the attributes of a term in this order; the branching below depends on it.
ATTRIBUTE_ORDER = ("frequency", "severity", "interference", "amount")


@dataclass(frozen=True)
class Term:
    code: str  # the term code the events carry (TermAnswer.term)
    title: str  # group heading shown to the patient
    questions: dict[str, str]  # attribute -> question text (without the recall period)


def _ask_interference(subject: str) -> str:
    return f"à quel point {subject} gêné(e) dans vos activités de tous les jours ?"


# CLINICAL.md §1, attribute patterns from research/clinical.md §3.3.
TERMS: tuple[Term, ...] = (
    Term(
        "diarrhoea",
        "Diarrhée",
        {"frequency": "combien de fois avez-vous eu la diarrhée (selles liquides) ?"},
    ),
    Term(
        "nausea",
        "Nausées (envie de vomir)",
        {
            "frequency": "combien de fois avez-vous eu envie de vomir ?",
            "severity": "au pire moment, quel était le niveau de votre envie de vomir ?",
        },
    ),
    Term(
        "vomiting",
        "Vomissements",
        {
            "frequency": "combien de fois avez-vous vomi ?",
            "severity": "au pire moment, quel était le niveau de vos vomissements ?",
        },
    ),
    Term(
        "decreased_appetite",
        "Manque d'appétit",
        {
            "severity": "au pire moment, quel était le niveau de votre manque d'appétit ?",
            "interference": _ask_interference("le manque d'appétit vous a-t-il"),
        },
    ),
    Term(
        "taste_changes",
        "Goût des aliments",
        {"severity": "au pire moment, à quel niveau le goût des aliments était-il changé pour vous ?"},
    ),
    Term(
        "mouth_sores",
        "Plaies dans la bouche ou la gorge",
        {
            "severity": ("au pire moment, quel était le niveau de vos plaies ou aphtes dans la bouche ou la gorge ?"),
            "interference": _ask_interference("ces plaies dans la bouche ou la gorge vous ont-elles"),
        },
    ),
    Term(
        "dry_skin",
        "Peau sèche",
        {"severity": "au pire moment, quel était le niveau de sécheresse de votre peau ?"},
    ),
    Term(
        "hand_foot_syndrome",
        "Mains et pieds (syndrome main-pied)",
        {
            "severity": (
                "au pire moment, quel était le niveau des problèmes de peau sur vos mains ou vos pieds "
                "(rougeurs, cloques, peau qui pèle, craque ou fait mal) ?"
            )
        },
    ),
    Term(
        "fatigue",
        "Fatigue",
        {
            "severity": "au pire moment, quel était le niveau de votre fatigue ?",
            "interference": _ask_interference("la fatigue vous a-t-elle"),
        },
    ),
    Term(
        "pain",
        "Douleur",
        {
            "frequency": "combien de fois avez-vous eu mal, à n'importe quel endroit du corps ?",
            "severity": "au pire moment, quel était le niveau de votre douleur ?",
            "interference": _ask_interference("la douleur vous a-t-elle"),
        },
    ),
    Term(
        "numbness_tingling",
        "Engourdissements ou fourmillements (mains, pieds)",
        {
            "severity": (
                "au pire moment, quel était le niveau des engourdissements ou des fourmillements "
                "dans vos mains ou vos pieds ?"
            ),
            "interference": _ask_interference("ces engourdissements ou fourmillements vous ont-ils"),
        },
    ),
    Term(
        "shortness_of_breath",
        "Essoufflement",
        {
            "severity": "au pire moment, quel était le niveau de votre essoufflement (manque d'air) ?",
            "interference": _ask_interference("l'essoufflement vous a-t-il"),
        },
    ),
    Term(
        "anxiety",
        "Inquiétude, angoisse",
        {
            "frequency": "combien de fois vous êtes-vous senti(e) inquiet ou inquiète, ou angoissé(e) ?",
            "severity": "au pire moment, quel était le niveau de votre inquiétude ou de votre angoisse ?",
            "interference": _ask_interference("l'inquiétude ou l'angoisse vous a-t-elle"),
        },
    ),
    Term(
        "hair_loss",
        "Perte de cheveux",
        {"amount": "avez-vous perdu des cheveux ? Si oui, combien ?"},
    ),
)

ECOG_LEVELS = (
    "Je fais tout ce que je faisais avant la maladie, sans difficulté.",
    "Je ne peux pas faire d'efforts physiques durs, mais je marche et je peux faire des choses légères "
    "(petit ménage, travail de bureau).",
    "Je marche et je m'occupe de moi seul(e), mais je ne peux pas travailler. "
    "Je suis debout plus de la moitié de la journée.",
    "Je ne peux m'occuper de moi qu'en partie. Je suis au lit ou au fauteuil plus de la moitié de la journée.",
    "Je ne peux pas m'occuper de moi. Je reste tout le temps au lit ou au fauteuil.",
)


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    return coding


def _options(system: str, labels: tuple[str, ...]) -> list[dict[str, Any]]:
    # The ordinal value (0-4) is what the composite grade uses; the code is the same number as text.
    return [
        {
            "extension": [{"url": ORDINAL_VALUE, "valueDecimal": score}],
            "valueCoding": _coding(system, str(score), label),
        }
        for score, label in enumerate(labels)
    ]


def _skipped_when_zero(term: str, attribute: str) -> dict[str, Any]:
    """enableWhen: ask only if the earlier attribute is not 0 ("never" / "none")."""
    return {
        "question": f"{term}.{attribute}",
        "operator": "!=",
        "answerCoding": _coding(f"{BASE}/CodeSystem/pro-ctcae-{attribute}", "0"),
    }


def _attribute_item(term: Term, attribute: str) -> dict[str, Any]:
    # PRO-CTCAE branching: frequency "never" skips the rest of the term, severity "none" skips
    # interference. Every condition on an earlier attribute of the term is listed, so that a skipped
    # severity does not re-enable interference (an unanswered question is "!= 0" in FHIR).
    earlier = [a for a in ATTRIBUTE_ORDER[: ATTRIBUTE_ORDER.index(attribute)] if a in term.questions]
    item: dict[str, Any] = {
        "linkId": f"{term.code}.{attribute}",
        "code": [_coding(ATTRIBUTE_SYSTEM, f"{term.code}.{attribute}")],
        "text": f"{RECALL}, {term.questions[attribute]}",
        "type": "choice",
        "required": False,
    }
    if earlier:
        item["enableWhen"] = [_skipped_when_zero(term.code, a) for a in earlier]
        if len(earlier) > 1:
            item["enableBehavior"] = "all"
    item["answerOption"] = _options(f"{BASE}/CodeSystem/pro-ctcae-{attribute}", SCALES[attribute])
    return item


def _term_group(term: Term) -> dict[str, Any]:
    attributes = [a for a in ATTRIBUTE_ORDER if a in term.questions]
    return {
        "linkId": term.code,
        "text": term.title,
        "type": "group",
        "item": [_attribute_item(term, a) for a in attributes],
    }


def _red_flag(code: str, text: str, item_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "extension": [{"url": RED_FLAG_EXTENSION, "valueBoolean": True}],
        "linkId": code,
        "code": [_coding(RED_FLAG_SYSTEM, code)],
        "text": text,
        "type": item_type,
        "required": False,
        **extra,
    }


def _red_flags_group() -> dict[str, Any]:
    temperature_extensions = [
        {"url": UNIT, "valueCoding": _coding(UCUM, "Cel", "°C")},
        {"url": MIN_VALUE, "valueDecimal": 30},
        {"url": MAX_VALUE, "valueDecimal": 45},
        {"url": RED_FLAG_EXTENSION, "valueBoolean": True},
    ]
    return {
        "linkId": "red_flags",
        "text": "Signes qui doivent être vus vite par l'équipe",
        "type": "group",
        "item": [
            _red_flag("fever", "Depuis hier, avez-vous eu de la fièvre (38 °C ou plus) ?", "boolean"),
            {
                **_red_flag(
                    "temperature",
                    "Si vous avez pris votre température : quelle était la plus haute, en °C ? (par exemple 38,5)",
                    "decimal",
                ),
                "extension": temperature_extensions,
                "enableWhen": [{"question": "fever", "operator": "=", "answerBoolean": True}],
            },
            _red_flag(
                "bleeding",
                "Depuis hier, avez-vous saigné d'une façon inhabituelle "
                "(nez, gencives, urines, selles, crachats ou vomissements) ?",
                "boolean",
            ),
            _red_flag(
                "unable_to_eat_or_drink",
                "Depuis 24 heures ou plus, êtes-vous incapable de manger ou de boire ?",
                "boolean",
            ),
            _red_flag("wants_call", "Je souhaite être appelé(e) par l'équipe", "boolean"),
        ],
    }


def _ecog_item() -> dict[str, Any]:
    return {
        "linkId": "ecog",
        "code": [
            _coding(ECOG_SYSTEM, "performance-status", "ECOG, état général évalué par le patient"),
            _coding(LOINC, "89247-1", "ECOG Performance Status score"),
        ],
        "text": "Question facultative : quelle phrase décrit le mieux votre état en ce moment ?",
        "type": "choice",
        "required": False,
        "answerOption": _options(ECOG_SYSTEM, ECOG_LEVELS),
    }


def build() -> dict[str, Any]:
    """The Questionnaire resource, as a JSON-ready dict."""
    return {
        "resourceType": "Questionnaire",
        "id": "reconnect-symptoms",
        "url": f"{BASE}/Questionnaire/reconnect-symptoms",
        "version": "1.0.0",
        "name": "ReconnectSymptoms",
        "title": "Mes symptômes de la semaine",
        "status": "active",
        "language": "fr-FR",
        "subjectType": ["Patient"],
        "date": "2026-11-22",
        "publisher": "OncoFollow",
        "description": (
            "Questionnaire court à remplir avant chaque séance de chimiothérapie et quelques jours après : "
            "effets indésirables fréquents (inspirés du PRO-CTCAE), signes d'alerte et, si vous le "
            "souhaitez, votre état général."
        ),
        "copyright": (
            "Questions inspirées du PRO-CTCAE™ du National Cancer Institute (NCI). La formulation française "
            "est propre à OncoFollow ; ce n'est pas la version française validée et diffusée par le NCI."
        ),
        "item": [
            *(_term_group(term) for term in TERMS),
            _red_flags_group(),
            _ecog_item(),
        ],
    }


def render() -> str:
    """The file's exact text: stable key order, UTF-8 French, trailing newline."""
    return json.dumps(build(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
