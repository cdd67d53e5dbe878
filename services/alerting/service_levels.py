"""Service levels (CLINICAL.md §4): when an alert must be acknowledged, and its escalation levels.

Pure: the clock and the opening hours are parameters, so the escalation job, the API's "overdue" flag
and the tests all decide the same way, at any moment the tests choose.

- RED: acknowledged within 1 hour of opening time (the clock stops at night and on closed days).
- ORANGE: acknowledged within the next business day (by its closing time).
An alert still open when its delay runs out is escalated to level 1; when a second delay of the same
kind runs out after that, to level 2. A level that rises restarts the clock at the new level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from shared.events.alerts import AlertLevel, AlertStatus
from shared.opening_hours import OpeningHours

EscalationLevel = Literal[0, 1, 2]
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class ServiceLevels:
    hours: OpeningHours = field(default_factory=OpeningHours)
    red_within: timedelta = timedelta(hours=1)

    def due_after(self, level: AlertLevel, start: datetime) -> datetime:
        if level == "red":
            return self.hours.add_open_time(start, self.red_within)
        return self.hours.close_of_next_business_day(start)

    def deadlines(self, level: AlertLevel, since: datetime) -> tuple[datetime, datetime]:
        """When escalation levels 1 and 2 fall due for an alert at ``level`` since ``since``."""
        first = self.due_after(level, since)
        return first, self.due_after(level, first)

    def overdue_if_since(self, level: AlertLevel, now: datetime) -> datetime:
        """The latest start (``level_since``) at which an alert still open at ``level`` is overdue at ``now``.

        So that SQL can count the overdue alerts (``level_since <= this``) exactly as ``due_after`` flags each one.
        A later start is never due sooner, so the overdue starts are all those up to one moment: found by
        bisection, to the microsecond, between a month ago (long overdue with any opening hours) and now (never
        due yet)."""
        overdue, not_yet = now - timedelta(days=31), now
        while not_yet - overdue > _MICROSECOND:
            middle = overdue + (not_yet - overdue) // 2
            if self.due_after(level, middle) <= now:
                overdue = middle
            else:
                not_yet = middle
        return overdue

    @property
    def shortest_delay(self) -> timedelta:
        """No alert falls due sooner than this after its level started, at any level and any moment.

        RED counts opening time, which never runs faster than the clock. ORANGE is due at a closing time on
        a later local date: at least the closing time's offset from midnight, less an hour when a
        daylight-saving change shortens that night. The escalation job only reads alerts older than this.
        """
        closes = timedelta(hours=self.hours.closes.hour, minutes=self.hours.closes.minute)
        return max(timedelta(0), min(self.red_within, closes - timedelta(hours=1)))

    def escalation_due(self, level: AlertLevel, status: AlertStatus, since: datetime, now: datetime) -> EscalationLevel:
        """The escalation level an alert should have reached at ``now`` (0 once someone has it)."""
        if status != "open":
            return 0
        first, second = self.deadlines(level, since)
        if now >= second:
            return 2
        if now >= first:
            return 1
        return 0
