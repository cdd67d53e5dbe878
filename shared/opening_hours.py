"""When the coordinating nurses watch the alerts (CLINICAL.md §4): service levels and patient notices."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

OUT_OF_HOURS_NOTICE = (
    "L'équipe soignante ne regarde pas les réponses et les messages en ce moment. Le service est fermé. "
    "En cas d'urgence, appelez le 15."
)
IN_HOURS_NOTICE = "En cas d'urgence, appelez le 15."


@dataclass(frozen=True)
class ClosedDays:
    """Weekdays the team does not work: the public holidays of a country (or of one of its regions), and the
    hospital's own closures. A nurse team of a day hospital is not there on 14 July: a patient answering that day
    must be told so, and an alert's service level waits for the next day it is.

    The holidays come from the ``holidays`` library (``holidays.country_holidays``), which computes the movable ones
    (Easter Monday, Ascension, Whit Monday) for any year."""

    calendar: str | None = "FR"  # a country code, with a region after a dash ("FR-57": Moselle), or None
    dates: frozenset[date] = frozenset()
    _public: holidays.HolidayBase | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.calendar is not None:
            country, _, region = self.calendar.partition("-")
            try:
                public = holidays.country_holidays(country, subdiv=region or None)
            except NotImplementedError:
                raise ValueError(f"no public holidays known for {self.calendar!r}") from None
            object.__setattr__(self, "_public", public)

    @classmethod
    def parse(cls, spec: str) -> ClosedDays:
        """``"FR"``, ``"FR-57"`` (Moselle: also Good Friday and 26 December), ``"none"``, each optionally followed
        by closure dates: ``"FR,2026-12-24,2026-12-31"``."""
        calendar: str | None = None
        named = False
        dates = set()
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            if item[:1].isdigit():
                try:
                    dates.add(date.fromisoformat(item))
                except ValueError:
                    raise ValueError(f"{item!r} is not a day written YYYY-MM-DD") from None
            elif named:
                raise ValueError(f"{spec!r}: name one calendar of public holidays at most, or none")
            else:
                named = True
                calendar = None if item.lower() == "none" else item.upper()
        return cls(calendar if named else "FR", frozenset(dates))

    def __contains__(self, day: date) -> bool:
        return day in self.dates or (self._public is not None and day in self._public)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_weekdays(spec: str) -> frozenset[int]:
    """``"mon-fri"``, ``"mon-sat"``, ``"mon,tue,thu"``, ``"mon-fri,sun"`` (Monday = 0)."""
    days: set[int] = set()
    for item in (part.strip().lower() for part in spec.split(",")):
        first, _, last = item.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"{spec!r} is not weekdays written like 'mon-fri' or 'mon,wed,fri' (mon … sun)")
        start, stop = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if stop < start:
            raise ValueError(f"{item!r}: a range of days runs from Monday towards Sunday, such as 'mon-fri'")
        days.update(range(start, stop + 1))
    return frozenset(days)


@dataclass(frozen=True)
class OpeningHours:
    opens: time = time(8, 0)
    closes: time = time(18, 0)
    weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    zone: str = "Europe/Paris"
    closed: ClosedDays = field(default_factory=ClosedDays)

    def __post_init__(self) -> None:
        # Checked when the hours are made (at start-up), not when a tablet submits: a time zone nobody can load would
        # otherwise fail every submission, and hours that close before they open would leave no opening time at all
        # (no service level could be computed and no notice would ever say the team is there).
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{self.zone!r} is not a time zone name such as 'Europe/Paris'") from None
        if self.opens >= self.closes:
            raise ValueError(
                "the team's hours must open before they close on the same day, "
                f"not {self.opens:%H:%M}-{self.closes:%H:%M}"
            )
        if not self.weekdays or not self.weekdays <= set(range(7)):
            raise ValueError("the team must be there on at least one weekday (0 = Monday to 6 = Sunday)")

    @classmethod
    def parse(cls, spec: str, zone: str = "Europe/Paris", closed: str = "FR", days: str = "mon-fri") -> OpeningHours:
        """``"08:00-18:00"`` on the weekdays ``days`` names (``parse_weekdays``), except on the ``closed`` days
        (``ClosedDays.parse``)."""
        start, _, end = spec.partition("-")
        try:
            opens, closes = time.fromisoformat(start.strip()), time.fromisoformat(end.strip())
        except ValueError:
            raise ValueError(f"{spec!r} is not opening hours written HH:MM-HH:MM, such as '08:00-18:00'") from None
        return cls(opens, closes, parse_weekdays(days), zone=zone, closed=ClosedDays.parse(closed))

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.zone))
        return (
            local.weekday() in self.weekdays
            and self.opens <= local.time() < self.closes
            and local.date() not in self.closed
        )

    def patient_notice(self, at: datetime) -> str:
        return IN_HOURS_NOTICE if self.is_open(at) else OUT_OF_HOURS_NOTICE

    def _local(self, at: datetime) -> datetime:
        return at.astimezone(ZoneInfo(self.zone))

    def _opening_on(self, day: datetime) -> tuple[datetime, datetime] | None:
        """The open interval of ``day``'s local date, or None on a closed day."""
        if day.weekday() not in self.weekdays or day.date() in self.closed:
            return None
        zone = ZoneInfo(self.zone)
        opens = datetime.combine(day.date(), self.opens, zone)
        closes = datetime.combine(day.date(), self.closes, zone)
        return opens, closes

    def add_open_time(self, start: datetime, duration: timedelta) -> datetime:
        """The moment when ``duration`` of opening time has passed since ``start`` (the clock stops at night
        and on closed days): an alert raised on Saturday at 03:00 with one hour to go is due Monday 09:00."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        remaining = duration
        day = self._local(start)
        for _ in range(3660):  # ten years of days: a bound, never reached with a weekday open
            interval = self._opening_on(day)
            if interval is not None:
                opens, closes = interval
                begin = max(opens, self._local(start))
                if begin < closes:
                    if begin + remaining <= closes:
                        return (begin + remaining).astimezone(start.tzinfo)
                    remaining -= closes - begin
            day = datetime.combine(day.date() + timedelta(days=1), time(0), ZoneInfo(self.zone))
        raise ValueError("no opening hours: the service is never open")

    def close_of_next_business_day(self, at: datetime) -> datetime:
        """Closing time of the first open day after ``at``'s local date ("within the next business day")."""
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        day = self._local(at)
        for _ in range(3660):
            day = datetime.combine(day.date() + timedelta(days=1), time(0), ZoneInfo(self.zone))
            interval = self._opening_on(day)
            if interval is not None:
                return interval[1].astimezone(at.tzinfo)
        raise ValueError("no opening hours: the service is never open")
