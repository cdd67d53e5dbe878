"""The team's figures for a period (pure): how fast alerts are taken and closed, and what came of them.

These are the numbers that show whether the closed loop works: in the trials, without one, fewer than half
of the alerts were acted on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.alerting.service_levels import ServiceLevels


@dataclass(frozen=True)
class PatientWeeks:
    """The period cut into weeks from its first day; a patient counts for a week when they answered (or wrote) in
    it: followed, not merely enrolled, so patients whose follow-up ended weigh nothing."""

    followed: int
    with_alert: int  # of which an alert was raised for the patient that week


@dataclass(frozen=True)
class AlertFacts:
    level: str
    status: str
    raised_at: datetime
    level_since: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    outcome: str | None
    # When it last started waiting for a nurse: its raise, or a new finding that sent it back to open after a
    # nurse had taken it (the triage list's and ``waiting_seconds``' start).
    waiting_since: datetime | None = None


@dataclass(frozen=True)
class Durations:
    count: int
    median_s: float | None
    p90_s: float | None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of the values; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def durations(values: Sequence[float]) -> Durations:
    return Durations(len(values), percentile(values, 50), percentile(values, 90))


@dataclass(frozen=True)
class TeamFigures:
    alerts_by_level: dict[str, int]
    time_to_acknowledge: Durations
    within_service_level_share: float | None
    time_to_close: Durations
    acted_share: float | None
    alert_rate_per_patient_week: float | None
    # The trials' measure (CLINICAL.md §3: 13–37 % of patient-weeks had an alert).
    patient_weeks_with_alert_share: float | None
    overdue_now: int

    def as_json(self) -> dict[str, Any]:
        return {
            "alerts_by_level": self.alerts_by_level,
            "time_to_acknowledge": {
                "count": self.time_to_acknowledge.count,
                "median_s": self.time_to_acknowledge.median_s,
                "p90_s": self.time_to_acknowledge.p90_s,
                "within_service_level_share": self.within_service_level_share,
            },
            "time_to_close": {
                "count": self.time_to_close.count,
                "median_s": self.time_to_close.median_s,
                "p90_s": self.time_to_close.p90_s,
            },
            "acted_share": self.acted_share,
            "alert_rate_per_patient_week": self.alert_rate_per_patient_week,
            "patient_weeks_with_alert_share": self.patient_weeks_with_alert_share,
            "overdue_now": self.overdue_now,
        }


def team_figures(
    alerts: Iterable[AlertFacts],
    *,
    patient_weeks: PatientWeeks,
    open_now: Iterable[AlertFacts],
    now: datetime,
    levels: ServiceLevels,
) -> TeamFigures:
    """Figures over the alerts raised in the period. An alert counts within its service level when it was
    acknowledged by its deadline; one still unacknowledged past its deadline counts as missed; one still
    within its deadline is not counted yet. Time to acknowledge runs from when the alert last started waiting
    (a new finding that sent it back to open restarts it, as it restarts its deadline); time to close runs from
    the raise: the whole episode."""
    raised = list(alerts)
    followed = patient_weeks.followed
    by_level = {"red": 0, "orange": 0}
    to_ack: list[float] = []
    to_close: list[float] = []
    within = judged = 0
    resolved = acted = 0
    for alert in raised:
        by_level[alert.level] = by_level.get(alert.level, 0) + 1
        due = levels.due_after(alert.level, alert.level_since)  # type: ignore[arg-type]
        if alert.acknowledged_at is not None:
            to_ack.append((alert.acknowledged_at - (alert.waiting_since or alert.raised_at)).total_seconds())
            judged += 1
            within += alert.acknowledged_at <= due
        elif now >= due:
            judged += 1
        if alert.resolved_at is not None:
            to_close.append((alert.resolved_at - alert.raised_at).total_seconds())
            resolved += 1
            acted += alert.outcome != "no_action_needed"
    overdue = len(
        [a for a in open_now if a.status == "open" and now >= levels.due_after(a.level, a.level_since)]  # type: ignore[arg-type]
    )
    return TeamFigures(
        alerts_by_level=by_level,
        time_to_acknowledge=durations(to_ack),
        within_service_level_share=within / judged if judged else None,
        time_to_close=durations(to_close),
        acted_share=acted / resolved if resolved else None,
        alert_rate_per_patient_week=len(raised) / followed if followed else None,
        patient_weeks_with_alert_share=patient_weeks.with_alert / followed if followed else None,
        overdue_now=overdue,
    )
