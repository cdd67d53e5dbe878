"""Each service tells time by the clock it is built with, everywhere. The alerting service: the consumer that scores
answers and raises an alert, the API's "overdue", its nurse steps, its "today" and the team's period, as its
escalation check already did. The devices service: a tablet's steps, a loan, its "today" (a return due soon or
overdue), a heartbeat's arrival, a return, a wipe and the receipt's date, as its silence check already did. The
questionnaire service: when answers and messages arrive, the team's hours a patient is told, and the tablet's clock
its answers are checked against. The events each service publishes are dated by that clock too, as the rows they
describe. A test that pins that clock no longer depends on the day or the hour it runs at."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import pytest

from shared.auth import TokenService
from shared.opening_hours import IN_HOURS_NOTICE, OUT_OF_HOURS_NOTICE
from shared.testing.clock import PinnableClock
from shared.testing.fhir import CALM, RED_NAUSEA, questionnaire_response
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
    assert instant(alert["latest_answers_received_at"]) == morning  # the score's date, which tells late answers
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


def ten_at_paris(days_from_today: int) -> datetime:
    """10:00 at Paris ``days_from_today`` days from the real today: a day the real clock cannot be on, whatever the
    hour the test runs at."""
    day = datetime.now(PARIS).date() + timedelta(days=days_from_today)
    return datetime.combine(day, time(10), PARIS).astimezone(UTC)


async def a_lent_tablet(
    client: httpx.AsyncClient, staff: dict[str, str], clock: PinnableClock, **loan: Any
) -> dict[str, Any]:
    """A tablet registered, made ready and lent at the service's clock, its agreement signed an hour before."""
    registered = await client.post(
        "/v1/tablets",
        json={"serial_number": f"R52-{uuid.uuid4().hex[:10]}", "model": "Tab", "accessories": []},
        headers=staff,
    )
    assert registered.status_code == 201, registered.text
    tablet = registered.json()["id"]
    provisioned = await client.post(f"/v1/tablets/{tablet}/actions/provision", json={}, headers=staff)
    assert provisioned.status_code == 200, provisioned.text
    body = {
        "patient_id": str(uuid.uuid4()),
        "agreement": {"signed_at": (clock() - timedelta(hours=1)).isoformat(), "witnessed_by": "ide-martin"},
        "accessories": [],
        **loan,
    }
    lent = await client.post(f"/v1/tablets/{tablet}/loan", json=body, headers=staff)
    assert lent.status_code == 201, lent.text
    granted: dict[str, Any] = lent.json()
    return granted


@pytest.fixture
def staff(tokens: TokenService) -> dict[str, str]:
    """A fleet manager's headers."""
    return {"Authorization": f"Bearer {tokens.issue_staff_token('parc-julie', {'fleet'})}"}


def heartbeat_at(at: datetime) -> dict[str, Any]:
    return {"battery_percent": 80, "app_version": "1.4.2", "sent_at": at.isoformat()}


async def test_the_fleet_dates_a_loan_its_heartbeats_its_return_wipe_and_receipt_by_the_service_clock(
    devices: tuple[httpx.AsyncClient, Any], devices_clock: PinnableClock, staff: dict[str, str]
) -> None:
    client, _ = devices
    # Three weeks back, the loan due back ten days later: due soon by the service's today, overdue by the real one.
    lent_at = devices_clock.pin(ten_at_paris(-21))
    due = (lent_at.date() + timedelta(days=10)).isoformat()
    granted = await a_lent_tablet(client, staff, devices_clock, expected_return_on=due)
    tablet, loan = granted["tablet"]["id"], granted["loan"]
    assert instant(loan["loaned_at"]) == lent_at
    assert instant(granted["tablet"]["state_changed_at"]) == lent_at
    assert loan["return_status"] == "due_soon"

    seen = devices_clock.advance(timedelta(minutes=30))
    device = {"Authorization": f"Bearer {granted['device_token']}"}
    beat = await client.post("/v1/heartbeats", json=heartbeat_at(seen - timedelta(seconds=5)), headers=device)
    assert beat.status_code == 204, beat.text
    detail = (await client.get(f"/v1/tablets/{tablet}", headers=staff)).json()
    assert instant(detail["last_seen_at"]) == seen  # when it arrived, by the service's clock
    assert detail["loan"]["return_status"] == "due_soon"
    listed = (await client.get("/v1/tablets", headers=staff)).json()["items"]
    assert [t["loan"]["return_status"] for t in listed if t["id"] == tablet] == ["due_soon"]
    glance = (await client.get("/v1/fleet", headers=staff)).json()
    assert (glance["loans_due_soon"], glance["loans_overdue"]) == (1, 0)

    back = devices_clock.advance(timedelta(hours=1))
    returned = await client.post(
        f"/v1/tablets/{tablet}/return", json={"channel": "day_hospital", "accessories_returned": []}, headers=staff
    )
    assert returned.status_code == 200, returned.text
    assert instant(returned.json()["ended_at"]) == back
    wiped = await client.post(
        f"/v1/tablets/{tablet}/wipe", json={"method": "factory_reset", "proof": "77"}, headers=staff
    )
    assert wiped.status_code == 200, wiped.text
    receipt = (await client.get(f"/v1/loans/{loan['id']}/receipt", headers=staff)).json()
    assert instant(receipt["returned_at"]) == back
    assert instant(receipt["wipe"]["wiped_at"]) == back
    assert instant(receipt["issued_at"]) == back  # the date printed on it


async def test_a_loan_at_a_clock_set_ahead_of_the_real_time_gives_a_token_the_tablet_can_use(
    devices: tuple[httpx.AsyncClient, Any], devices_clock: PinnableClock, staff: dict[str, str]
) -> None:
    client, _ = devices
    # Six weeks ahead: a token issued at the loan's second would be refused by the real time (issued in its future).
    lent_at = devices_clock.pin(ten_at_paris(42))
    granted = await a_lent_tablet(client, staff, devices_clock)
    assert instant(granted["loan"]["loaned_at"]) == lent_at
    device = {"Authorization": f"Bearer {granted['device_token']}"}
    beat = await client.post("/v1/heartbeats", json=heartbeat_at(lent_at), headers=device)
    assert beat.status_code == 204, beat.text
    detail = (await client.get(f"/v1/tablets/{granted['tablet']['id']}", headers=staff)).json()
    assert instant(detail["last_seen_at"]) == lent_at


def an_hour_weeks_back(platform: Any, *, team_at_work: bool) -> datetime:
    """An hour at Paris three weeks or more before the real today, the team at work then (``team_at_work``) or not:
    the real clock cannot be on it, whatever the hour the test runs at."""
    hours = platform.questionnaire_platform.extras["opening_hours"]
    day = datetime.now(PARIS).date() - timedelta(days=21)
    while True:
        for hour in (10, 22):
            at = datetime.combine(day, time(hour), PARIS)
            if hours.is_open(at) == team_at_work:
                return at.astimezone(UTC)
        day -= timedelta(days=1)


def fhir(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/fhir+json"}


@pytest.mark.parametrize("team_at_work", [True, False], ids=["team-at-work", "team-away"])
async def test_the_questionnaire_service_dates_answers_and_messages_and_tells_the_team_s_hours_by_its_clock(
    platform: Any, team_at_work: bool
) -> None:
    at = platform.questionnaire_clock.pin(an_hour_weeks_back(platform, team_at_work=team_at_work))
    notice = IN_HOURS_NOTICE if team_at_work else OUT_OF_HOURS_NOTICE
    patient = uuid.uuid4()
    device = platform.device(patient)
    answers = orjson.dumps(questionnaire_response(CALM, authored=at - timedelta(minutes=3)))

    posted = await platform.questionnaire.post("/v1/submissions", content=answers, headers=fhir(device))
    assert posted.status_code == 202, posted.text
    assert posted.json()["notice"] == notice
    status = (await platform.questionnaire.get(f"/v1/submissions/{posted.json()['id']}", headers=device)).json()
    assert instant(status["received_at"]) == at
    assert status["notice"] == notice

    phoned = await platform.questionnaire.post(
        f"/v1/patients/{patient}/submissions", content=answers, headers=fhir(platform.staff())
    )
    assert phoned.status_code == 202, phoned.text
    assert phoned.json()["notice"] == notice
    entered = await platform.questionnaire.get(f"/v1/submissions/{phoned.json()['id']}", headers=platform.staff())
    assert instant(entered.json()["received_at"]) == at

    sent = await platform.questionnaire.post(
        "/v1/messages",
        json={"text": "Pouvez-vous me rappeler ?"},
        headers={**device, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["notice"] == notice
    message = (await platform.questionnaire.get(f"/v1/messages/{sent.json()['id']}", headers=device)).json()
    assert instant(message["sent_at"]) == at
    assert message["notice"] == notice


async def test_answers_given_after_the_questionnaire_service_s_now_are_from_a_wrong_clock(platform: Any) -> None:
    platform.questionnaire_clock.pin(an_hour_weeks_back(platform, team_at_work=True))
    # Given by the real time: weeks after the service's now, as only a tablet's clock set wrong could date them.
    answers = orjson.dumps(questionnaire_response(CALM, authored=datetime.now(UTC)))
    posted = await platform.questionnaire.post(
        "/v1/submissions", content=answers, headers=fhir(platform.device(uuid.uuid4()))
    )
    assert posted.status_code == 422, posted.text
    assert posted.json()["type"].endswith("/in-the-future"), posted.text


async def event_dates(pool: asyncpg.Pool, about: str) -> dict[str, list[datetime]]:
    """The envelope ``time`` of each event a service wrote to its outbox (as its relay publishes it, byte for byte)
    about ``about``: the event's subject, or the patient it names; by event type."""
    dates: dict[str, list[datetime]] = {}
    for row in await pool.fetch("SELECT body FROM outbox ORDER BY seq"):
        event = orjson.loads(row["body"])
        if about in (event["subject"], event["data"].get("patient_id")):
            dates.setdefault(event["type"], []).append(instant(event["time"]))
    return dates


async def test_each_service_dates_the_events_it_publishes_by_its_clock(platform: Any) -> None:
    # Weeks apart from each other and from the real time: each event can only be dated by its own service's clock.
    answered = platform.questionnaire_clock.pin(an_hour_weeks_back(platform, team_at_work=True))
    scored = platform.alerting_clock.pin(a_working_morning_weeks_ahead(platform))
    patient = uuid.uuid4()
    device = platform.device(patient)
    answers = orjson.dumps(questionnaire_response(RED_NAUSEA, authored=answered - timedelta(minutes=3)))
    posted = await platform.questionnaire.post("/v1/submissions", content=answers, headers=fhir(device))
    assert posted.status_code == 202, posted.text

    async def raised() -> Any:
        items = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
        return next((a for a in items if a["patient_id"] == str(patient)), None)

    alert = await eventually(raised)
    taken_at = platform.alerting_clock.advance(timedelta(minutes=10))
    taken = await platform.alerting.post(f"/v1/alerts/{alert['id']}/ack", headers=platform.staff())
    assert taken.status_code == 200, taken.text
    assert await event_dates(platform.alerting_platform.pool, str(patient)) == {
        "submission.scored": [scored],
        "alert.raised": [scored],
        "alert.acknowledged": [taken_at],
    }

    sent = await platform.questionnaire.post(
        "/v1/messages", json={"text": "J'ai encore vomi."}, headers={**device, "Idempotency-Key": str(uuid.uuid4())}
    )
    assert sent.status_code == 202, sent.text
    assert await event_dates(platform.questionnaire_platform.pool, str(patient)) == {
        "questionnaire.submitted": [answered],
        "message.sent": [answered],
    }


async def test_the_fleet_dates_the_events_it_publishes_by_its_clock(
    devices: tuple[httpx.AsyncClient, Any], devices_clock: PinnableClock, staff: dict[str, str]
) -> None:
    client, fleet = devices
    lent_at = devices_clock.pin(ten_at_paris(-21))
    tablet = (await a_lent_tablet(client, staff, devices_clock))["tablet"]["id"]
    back = devices_clock.advance(timedelta(hours=1))
    returned = await client.post(
        f"/v1/tablets/{tablet}/return", json={"channel": "day_hospital", "accessories_returned": []}, headers=staff
    )
    assert returned.status_code == 200, returned.text
    assert await event_dates(fleet.pool, tablet) == {"tablet.loaned": [lent_at], "tablet.returned": [back]}
