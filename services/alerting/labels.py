"""French display labels for the nurse dashboard, served as JSON at ``GET /v1/reference``.

Events, alerts and the API speak in codes (PRO-CTCAE terms, red-flag codes, rule ids, outcome codes);
this module is the one place that turns them into the words a coordinating nurse reads, so the dashboard
never hard-codes a clinical label. Pure data: no I/O.

Keep it in step with ``services.alerting.domain`` (``RULE_*``), ``shared.events.alerts.Outcome``,
``shared.events.questionnaire.AnsweredBy`` and the questionnaire definitions; a unit test checks that
every code has a label. The dashboard falls back to the code itself for anything missing here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["LEVELS", "OUTCOMES", "RED_FLAGS", "RULES", "SOURCES", "TERMS", "reference"]

# PRO-CTCAE terms of the questionnaire (short, nurse-facing), plus the other psychological terms the
# rule set knows (RuleSet.psychological_terms) so that a hospital questionnaire using them reads well.
TERMS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "diarrhoea": "Diarrhée",
        "nausea": "Nausées",
        "vomiting": "Vomissements",
        "decreased_appetite": "Manque d'appétit",
        "taste_changes": "Troubles du goût",
        "mouth_sores": "Plaies bouche / gorge",
        "dry_skin": "Peau sèche",
        "hand_foot_syndrome": "Syndrome main-pied",
        "fatigue": "Fatigue",
        "pain": "Douleur",
        "numbness_tingling": "Engourdissements, fourmillements",
        "shortness_of_breath": "Essoufflement",
        "anxiety": "Anxiété",
        "hair_loss": "Perte de cheveux",
        "sad": "Tristesse",
        "discouraged": "Découragement",
    }
)

# Reason codes that are not PRO-CTCAE terms: the red-flag questions, the free-text message, the ECOG.
RED_FLAGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "fever": "Fièvre ≥ 38 °C",
        "temperature": "Température mesurée",
        "bleeding": "Saignement inhabituel",
        "unable_to_eat_or_drink": "Incapable de manger ou de boire (24 h)",
        "wants_call": "Demande à être appelé·e",
        "patient_message": "Message du patient",
        "ecog": "État général (ECOG)",
    }
)

# Rule ids (services.alerting.domain RULE_*): why a reason fired.
RULES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "red.grade3": "Symptôme sévère (grade 3)",
        "red.very_severe": "Intensité déclarée « très fort » (la plus haute)",
        "red.fever": "Fièvre ≥ 38 °C",
        "red.bleeding": "Saignement inhabituel",
        "red.unable_to_eat_or_drink": "Incapable de manger ou de boire depuis 24 h",
        "red.wants_call": "Le patient demande à être appelé",
        "orange.grade2": "Symptôme modéré (grade 2)",
        "orange.worsened": "Aggravation depuis le dernier questionnaire",
        "orange.ecog": "État général dégradé (ECOG ≥ 3 ou en baisse)",
        "orange.message": "Message libre du patient",
        "orange.proxy_psychological": "Réponse d'un proche sur un symptôme ressenti (plafonnée à orange)",
    }
)

# Outcome codes (shared.events.alerts.Outcome): what the nurse did, mandatory to close an alert.
OUTCOMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "phone_call": "Appel téléphonique",
        "advice_given": "Conseils donnés",
        "chemo_postponed": "Chimiothérapie reportée",
        "chemo_cancelled": "Chimiothérapie annulée",
        "dose_modified": "Dose modifiée",
        "urgent_visit": "Consultation en urgence",
        "sent_to_emergency": "Orientation vers les urgences",
        "no_action_needed": "Aucune action nécessaire",
    }
)

# Who answered (shared.events.questionnaire.AnsweredBy).
SOURCES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "patient": "Patient·e",
        "relative": "Un proche",
        "nurse_phone": "Infirmier·ère (par téléphone)",
    }
)

# Alert levels (shared.events.alerts.AlertLevel); the dashboard pairs each with a shape, never colour alone.
LEVELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "red": "ROUGE",
        "orange": "ORANGE",
    }
)


def reference() -> dict[str, dict[str, str]]:
    """The body of ``GET /v1/reference``: fresh plain dicts, safe to serialise or mutate."""
    return {
        "terms": dict(TERMS),
        "rules": dict(RULES),
        "red_flags": dict(RED_FLAGS),
        "outcomes": dict(OUTCOMES),
        "sources": dict(SOURCES),
        "levels": dict(LEVELS),
    }
