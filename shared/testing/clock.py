"""A service's clock that a test can pin, so that what it checks (a day, an hour, a service level) does not depend on
when the test runs: CI runs at any hour, midnight at Paris included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.periodic import system_clock

PARIS = ZoneInfo("Europe/Paris")


@dataclass
class PinnableClock:
    """The real time until the test pins an instant (``pin``: the time stands still there, until the test moves or
    unpins it) or sets the clock (``set``: the time flows on from there, as the real time does, for a flow of
    several steps each with its own instant). Build the service with it (``build_service(settings, clock=...)``):
    its routes, consumers and checks all read it."""

    pinned: datetime | None = None
    ahead: timedelta = timedelta(0)  # how far ``set`` put the clock from the real time

    def __call__(self) -> datetime:
        return system_clock() + self.ahead if self.pinned is None else self.pinned

    def set(self, at: datetime) -> datetime:
        self.pinned = None
        self.ahead = at - system_clock()
        return at

    def pin(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            raise ValueError("Pin an aware instant: a naive one has no place on the timeline")
        self.pinned = at.astimezone(UTC)
        return self.pinned

    def advance(self, by: timedelta) -> datetime:
        return self.pin(self() + by)

    def unpin(self) -> None:
        self.pinned = None
        self.ahead = timedelta(0)


def paris_noon_today() -> datetime:
    """Today's noon at Paris: the same Paris day as the real time for hours either side, far from midnight."""
    return datetime.combine(datetime.now(PARIS).date(), time(12), PARIS).astimezone(UTC)
