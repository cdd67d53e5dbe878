"""When the coordinating nurses watch the alerts (CLINICAL.md §4): service levels and patient notices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

OUT_OF_HOURS_NOTICE = (
    "L'équipe ne surveille pas les réponses en ce moment (en dehors des heures d'ouverture). "
    "En cas d'urgence, appelez le 15."
)
IN_HOURS_NOTICE = "En cas d'urgence, appelez le 15."


@dataclass(frozen=True)
class OpeningHours:
    opens: time = time(8, 0)
    closes: time = time(18, 0)
    weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    zone: str = "Europe/Paris"

    @classmethod
    def parse(cls, spec: str, zone: str = "Europe/Paris") -> OpeningHours:
        """``"08:00-18:00"`` (Monday to Friday)."""
        start, _, end = spec.partition("-")
        return cls(time.fromisoformat(start.strip()), time.fromisoformat(end.strip()), zone=zone)

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.zone))
        return local.weekday() in self.weekdays and self.opens <= local.time() < self.closes

    def patient_notice(self, at: datetime) -> str:
        return IN_HOURS_NOTICE if self.is_open(at) else OUT_OF_HOURS_NOTICE
