"""The alerting service tells time by the clock it is built with, everywhere: the consumer that raises an alert,
the API's "overdue", its nurse steps, its "today" and the team's period, as its escalation check already did.
A test that pins that clock no longer depends on the hour it runs at."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")


def a_working_morning_weeks_ahead(platform: Any) -> datetime:
    """10:00 at Paris on a Tuesday at least a week from the real today, the team at work until noon at least:
    days the real clock cannot be on, whatever the hour the test runs at."""
    levels = platform.alerting_platform.extras["service_levels"]
    day = datetime.now(PARIS).date() + timedelta(days=7)
    while True:
        day += timedelta(days=(1 - day.weekday()) % 7 or 7)
        morning = datetime.combine(day, time(10), PARIS)
        if all(levels.hours.is_open(morning + timedelta(hours=h)) for h in (0, 1, 2)):
            return morning.astimezone(UTC)


async def raise_red_alert(platform: Any) -> dict[str, Any]:
    """A patient's red answers from the tablet (dated by the real time), and the alert they raise."""
    patient = uuid.uuid4()
    response = await platform.questionnaire.post(
        "/v1/submissions",
        content=orjson.dumps(questionnaire_response(RED_NAUSEA)),
        headers={
            **platform.device(patient),
            "Idempotency-Key": str(uuid.uuid4()),
            "Content-Type": "application/fhir+json",
        },
    )
    assert response.status_code == 202, response.text

    async def raised() -> Any:
        items = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
        return next((a for a in items if a["patient_id"] == str(patient)), None)

    alert: dict[str, Any] = await eventually(raised)
    return alert


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_the_consumer_raises_the_alert_at_the_service_clock(platform: Any) -> None:
    morning = platform.alerting_clock.pin(a_working_morning_weeks_ahead(platform))
    alert = await raise_red_alert(platform)
    assert instant(alert["raised_at"]) == morning
    assert instant(alert["due_at"]) == morning + timedelta(hours=1)
    assert alert["overdue"] is False


async def test_the_api_tells_overdue_writes_steps_and_counts_days_by_the_service_clock(platform: Any) -> None:
    morning = platform.alerting_clock.pin(a_working_morning_weeks_ahead(platform))
    alert = await raise_red_alert(platform)
    noon = platform.alerting_clock.advance(timedelta(hours=2))  # an hour past its service level, the team at work

    one = (await platform.alerting.get(f"/v1/alerts/{alert['id']}", headers=platform.staff())).json()
    listed = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()
    assert one["overdue"] is True
    assert [a["overdue"] for a in listed["items"] if a["id"] == alert["id"]] == [True]
    assert listed["totals"]["overdue"] == 1
    figures = (await platform.alerting.get("/v1/metrics", headers=platform.staff())).json()
    assert figures["to"] == morning.astimezone(PARIS).date().isoformat()
    assert figures["overdue_now"] == 1

    taken = await platform.alerting.post(f"/v1/alerts/{alert['id']}/ack", headers=platform.staff())
    assert taken.status_code == 200, taken.text
    assert instant(taken.json()["acknowledged_at"]) == noon

    # "Today" is the clock's: an expected level may last until 29 days after it, not after the real today.
    last_day = (morning.astimezone(PARIS).date() + timedelta(days=29)).isoformat()
    expected = await platform.alerting.put(
        f"/v1/patients/{alert['patient_id']}/expected-levels/nausea",
        json={"grade": 2, "until": last_day},
        headers=platform.staff(),
    )
    assert expected.status_code == 200, expected.text
