"""The team's figures for a period (CLINICAL.md §4): alerts by level, time to acknowledge and to close,
what was done, and the alert rate per patient-week."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query

from services.alerting import repository
from services.alerting.api import LevelsDep, Nurse
from services.alerting.figures import AlertFacts, team_figures
from shared.audit import record_access
from shared.datetimes import CalendarDate
from shared.http.app import NowDep, PlatformDep
from shared.http.openapi import problem_responses
from shared.http.problems import Problem

router = APIRouter(prefix="/v1", tags=["team"])

MAX_PERIOD_DAYS = 366
# The days a period may name: the platform holds nothing earlier, and a date near the calendar's ends cannot
# be stepped from (a default 'from' 29 days before 0001-01-01 does not exist).
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2099, 12, 31)


def _facts(row: Any) -> AlertFacts:
    return AlertFacts(**{k: row[k] for k in AlertFacts.__dataclass_fields__})


@router.get(
    "/metrics", summary="The team's figures over a period (default: the last 30 days)", responses=problem_responses(422)
)
async def metrics(
    nurse: Nurse,
    platform: PlatformDep,
    levels: LevelsDep,
    now: NowDep,
    from_: Annotated[CalendarDate | None, Query(alias="from", description="First day (included)")] = None,
    to: Annotated[CalendarDate | None, Query(description="Last day (included)")] = None,
) -> Any:
    for name, day in (("from", from_), ("to", to)):
        if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
            raise Problem(
                422,
                f"Choose '{name}' between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}.",
                pointer=f"/{name}",
            )
    zone = ZoneInfo(levels.hours.zone)
    last = to or now.astimezone(zone).date()
    first = from_ or last - timedelta(days=29)
    if first > last:
        raise Problem(422, "The period starts after it ends: swap 'from' and 'to'.", pointer="/from")
    if (last - first).days >= MAX_PERIOD_DAYS:
        raise Problem(
            422, f"Choose a period of at most {MAX_PERIOD_DAYS} days.", pointer="/from", max_days=MAX_PERIOD_DAYS
        )
    start = datetime.combine(first, time(0), zone)
    stop = min(datetime.combine(last + timedelta(days=1), time(0), zone), now)
    async with platform.pool.acquire() as conn, conn.transaction():
        raised = await repository.alerts_raised_between(conn, start, stop)
        weeks = await repository.patient_weeks_between(conn, start, stop)
        open_now = await repository.open_alerts_for_overdue(conn)
        await record_access(conn, actor=nurse.staff_id, roles=nurse.roles, action="team.metrics", resource="metrics")
    figures = team_figures(
        [_facts(r) for r in raised],
        patient_weeks=weeks,
        open_now=[_facts(r) for r in open_now],
        now=now,
        levels=levels,
    )
    return {"from": first.isoformat(), "to": last.isoformat(), **figures.as_json()}
