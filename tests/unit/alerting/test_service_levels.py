"""Service levels and escalation deadlines (CLINICAL.md §4), and the team's figures, at chosen moments."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.alerting.figures import AlertFacts, PatientWeeks, percentile, team_figures
from services.alerting.service_levels import ServiceLevels
from shared.events.alerts import AlertLevel
from shared.opening_hours import OpeningHours

PARIS = ZoneInfo("Europe/Paris")
LEVELS = ServiceLevels()


def paris(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    # November 2026: the 23rd is a Monday; the 21st and 22nd a weekend.
    return datetime(2026, month, day, hour, minute, tzinfo=PARIS)


@pytest.mark.parametrize(
    ("raised", "due"),
    [
        (paris(23, 10), paris(23, 11)),  # during opening hours: one hour later
        (paris(23, 17, 30), paris(24, 8, 30)),  # half an hour tonight, half an hour tomorrow morning
        (paris(23, 6), paris(23, 9)),  # before opening: the clock starts at 08:00
        (paris(21, 3), paris(23, 9)),  # Saturday night: Monday 09:00
        (paris(27, 17, 45), paris(30, 8, 45)),  # Friday evening: Monday morning
        (paris(23, 18), paris(24, 9)),  # at closing time exactly
    ],
)
def test_red_is_due_one_opening_hour_after_it_was_raised(raised: datetime, due: datetime) -> None:
    assert LEVELS.due_after("red", raised) == due


@pytest.mark.parametrize(
    ("raised", "due"),
    [
        (paris(23, 10), paris(24, 18)),  # Monday: by Tuesday's closing
        (paris(27, 10), paris(30, 18)),  # Friday: by Monday's closing
        (paris(21, 12), paris(23, 18)),  # Saturday: by Monday's closing
        (paris(23, 23), paris(24, 18)),
    ],
)
def test_orange_is_due_by_the_end_of_the_next_business_day(raised: datetime, due: datetime) -> None:
    assert LEVELS.due_after("orange", raised) == due


@pytest.mark.parametrize(
    ("raised", "due"),
    [
        # Tuesday 10 November, 17:30: half an hour that evening, and the clock stops on Wednesday 11 November.
        (paris(10, 17, 30), paris(12, 8, 30)),
        (paris(11, 10), paris(12, 9)),  # raised on the holiday itself: Thursday 09:00
        (paris(13, 17, 30, month=5), paris(15, 8, 30, month=5)),  # the eve of Ascension (Thursday 14 May 2026)
    ],
)
def test_red_waits_for_the_team_over_a_public_holiday(raised: datetime, due: datetime) -> None:
    assert LEVELS.due_after("red", raised) == due


def test_orange_raised_before_a_public_holiday_is_due_the_day_after_it() -> None:
    # Monday 13 July 2026: the next business day is not Tuesday 14 July but Wednesday 15.
    assert LEVELS.due_after("orange", paris(13, 10, month=7)) == paris(15, 18, month=7)
    staffed = ServiceLevels(OpeningHours.parse("08:00-18:00", closed="none"))
    assert staffed.due_after("orange", paris(13, 10, month=7)) == paris(14, 18, month=7)


def test_daylight_saving_change_keeps_local_opening_hours() -> None:
    # 25 October 2026: clocks go back in France (a Sunday); Monday's opening is still 08:00 local.
    assert LEVELS.due_after("red", datetime(2026, 10, 24, 12, tzinfo=PARIS)) == datetime(2026, 10, 26, 9, tzinfo=PARIS)


def test_escalation_levels_fall_due_one_delay_after_the_other() -> None:
    since = paris(23, 10)
    first, second = LEVELS.deadlines("red", since)
    assert (first, second) == (paris(23, 11), paris(23, 12))
    assert LEVELS.escalation_due("red", "open", since, paris(23, 10, 59)) == 0
    assert LEVELS.escalation_due("red", "open", since, paris(23, 11)) == 1
    assert LEVELS.escalation_due("red", "open", since, paris(23, 12, 30)) == 2
    assert LEVELS.escalation_due("red", "acknowledged", since, paris(23, 15)) == 0
    assert LEVELS.deadlines("orange", paris(23, 10)) == (paris(24, 18), paris(25, 18))


def test_custom_opening_hours_and_red_delay() -> None:
    levels = ServiceLevels(OpeningHours.parse("09:00-17:00"), red_within=timedelta(minutes=30))
    assert levels.due_after("red", paris(23, 16, 50)) == paris(24, 9, 20)


@pytest.mark.parametrize(
    "levels",
    [
        LEVELS,
        ServiceLevels(OpeningHours.parse("09:00-17:00"), red_within=timedelta(minutes=30)),
        ServiceLevels(OpeningHours.parse("00:00-23:59"), red_within=timedelta(hours=3)),
        # Open every day, closing early, with a RED delay longer than the night: ORANGE sets the bound.
        ServiceLevels(OpeningHours(time(6), time(7, 30), frozenset(range(7))), red_within=timedelta(hours=8)),
    ],
    ids=["default", "short-red", "round-the-clock", "every-day-early-close"],
)
def test_no_alert_falls_due_sooner_than_the_shortest_delay(levels: ServiceLevels) -> None:
    # The escalation job reads only alerts older than the shortest delay: check it against every level,
    # every 53 minutes of a year that holds both daylight-saving changes, and minute by minute around them.
    start = datetime(2026, 1, 1, tzinfo=UTC)
    moments = [start + timedelta(minutes=53 * k) for k in range(365 * 24 * 60 // 53)]
    for change in (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)):
        moments += [change + timedelta(minutes=k) for k in range(-120, 180)]
    shortest = levels.shortest_delay
    assert shortest > timedelta(0)
    for since in moments:
        for level in ("red", "orange"):
            due = levels.due_after(level, since)
            assert due.astimezone(UTC) - since >= shortest, (level, since)


def test_the_shortest_delay_is_the_red_delay_with_the_default_hours() -> None:
    assert LEVELS.shortest_delay == timedelta(hours=1)


def test_naive_moments_are_refused() -> None:
    with pytest.raises(ValueError):
        LEVELS.due_after("red", datetime(2026, 11, 23, 10))


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(v) for v in range(1, 11)], 90) == 9.0


def facts(
    level: str, raised: datetime, ack_after: float | None, close_after: float | None, outcome: str | None
) -> AlertFacts:
    ack = raised + timedelta(minutes=ack_after) if ack_after is not None else None
    closed = raised + timedelta(minutes=close_after) if close_after is not None else None
    status = "resolved" if closed else "acknowledged" if ack else "open"
    return AlertFacts(level, status, raised, raised, ack, closed, outcome)


def test_team_figures() -> None:
    now = paris(26, 12)
    alerts = [
        facts("red", paris(23, 10), 20, 60, "phone_call"),  # within its hour
        facts("red", paris(23, 14), 90, 120, "no_action_needed"),  # late
        facts("orange", paris(24, 9), 600, None, None),  # within the next business day
        facts("red", paris(26, 11, 30), None, None, None),  # not yet due: not judged
        facts("orange", paris(23, 9), None, None, None),  # never taken, past due: missed
    ]
    figures = team_figures(
        alerts,
        patient_weeks=PatientWeeks(followed=10, with_alert=3),
        open_now=[a for a in alerts if a.status == "open"],
        now=now,
        levels=LEVELS,
    )
    assert figures.alerts_by_level == {"red": 3, "orange": 2}
    assert figures.time_to_acknowledge.count == 3
    assert figures.time_to_acknowledge.median_s == 90 * 60
    assert figures.time_to_acknowledge.p90_s == 600 * 60
    assert figures.within_service_level_share == pytest.approx(2 / 4)
    assert figures.time_to_close.count == 2 and figures.time_to_close.median_s == 60 * 60
    assert figures.acted_share == pytest.approx(1 / 2)
    assert figures.alert_rate_per_patient_week == pytest.approx(0.5)
    assert figures.patient_weeks_with_alert_share == pytest.approx(0.3)
    assert figures.overdue_now == 1


def test_time_to_acknowledge_a_reopened_alert_runs_from_the_finding_that_reopened_it() -> None:
    # Raised at 10:00 and taken at 10:20; a worse answer at 14:00 sent it back to open; taken again at 14:30.
    # The team took 30 min to answer the new finding, not 4 h 30 (the patient waited from 14:00, as the triage
    # list and its service-level deadline count).
    raised, reopened = paris(23, 10), paris(23, 14)
    taken_again = reopened + timedelta(minutes=30)
    reopened_alert = AlertFacts("red", "acknowledged", raised, reopened, taken_again, None, None, reopened)
    figures = team_figures(
        [reopened_alert],
        patient_weeks=PatientWeeks(followed=10, with_alert=3),
        open_now=[],
        now=paris(23, 16),
        levels=LEVELS,
    )
    assert figures.time_to_acknowledge.median_s == 30 * 60
    assert figures.within_service_level_share == 1.0


def test_team_figures_without_data_are_empty_not_zero() -> None:
    figures = team_figures([], patient_weeks=PatientWeeks(0, 0), open_now=[], now=datetime.now(UTC), levels=LEVELS)
    assert figures.time_to_acknowledge.median_s is None
    assert figures.within_service_level_share is None
    assert figures.acted_share is None
    assert figures.alert_rate_per_patient_week is None
    assert figures.patient_weeks_with_alert_share is None


@pytest.mark.parametrize("level", ["red", "orange"])
@pytest.mark.parametrize(
    "now",
    [
        paris(23, 10, 30),  # Monday, open
        paris(23, 8, 20),  # just after opening
        paris(23, 20),  # Monday night
        paris(21, 12),  # Saturday
        paris(24, 18),  # at closing time
        datetime(2026, 3, 30, 8, 30, tzinfo=PARIS),  # the Monday after the change to summer time
    ],
)
def test_the_overdue_cutoff_agrees_with_each_alert_s_deadline(level: AlertLevel, now: datetime) -> None:
    # The triage list counts overdue alerts in SQL as level_since <= cutoff: the same alerts as due_after flags.
    cutoff = LEVELS.overdue_if_since(level, now)
    assert LEVELS.due_after(level, cutoff) <= now
    assert LEVELS.due_after(level, cutoff + timedelta(microseconds=1)) > now
