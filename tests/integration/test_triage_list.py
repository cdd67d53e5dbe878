"""The triage list (GET /v1/alerts): how long each alert has waited for a nurse; and, read page by page, every
alert once, in triage order, with the totals of the whole filter on each page."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.alerting import repository
from services.alerting.figures import PatientWeeks
from shared.testing.fhir import RED_NAUSEA
from shared.testing.waiting import eventually
from tests.integration.test_nurse_workflow import open_alert, submit

pytestmark = pytest.mark.integration

ORANGE_NAUSEA = [{"code": "nausea", "rule": "orange.grade2", "level": "orange", "grade": 2}]
RED_FEVER = [{"code": "fever", "rule": "red.fever", "level": "red"}]


async def insert_alert(
    platform: Any,
    level: str,
    *,
    status: str = "open",
    waiting: timedelta = timedelta(minutes=5),
    taken_after: timedelta | None = None,
) -> str:
    """An alert written straight into the table (much faster than scoring a submission for each)."""
    raised = datetime.now(UTC) - waiting
    async with platform.alerting_platform.pool.acquire() as conn:
        alert_id = await conn.fetchval(
            "INSERT INTO alerts (id, patient_id, level, status, reasons, answered_by, rule_set, raised_at, "
            "updated_at, level_since, acknowledged_by, acknowledged_at, outcome) "
            "VALUES ($1, $2, $3, $4, $5, 'patient', 'test', $6, $6, $6, $7, $8, $9) RETURNING id",
            uuid.uuid4(),
            uuid.uuid4(),
            level,
            status,
            RED_FEVER if level == "red" else ORANGE_NAUSEA,
            raised,
            "nurse-2" if taken_after is not None else None,
            raised + taken_after if taken_after is not None else None,
            "phone_call" if status == "resolved" else None,
        )
    return str(alert_id)


async def test_an_alert_in_hand_waited_until_it_was_taken(platform: Any) -> None:
    taken = await insert_alert(
        platform, "red", status="acknowledged", waiting=timedelta(hours=3), taken_after=timedelta(minutes=4)
    )
    alert = (await platform.alerting.get(f"/v1/alerts/{taken}", headers=platform.staff())).json()
    assert alert["waiting_seconds"] == 240
    assert alert["waiting_since"] == alert["raised_at"]


async def test_an_alert_nobody_has_taken_comes_before_one_in_hand_that_waited_longer(platform: Any) -> None:
    # Karim took a red alert after 3 hours; another red one arrived 20 minutes ago and nobody has it yet.
    taken = await insert_alert(
        platform, "red", status="acknowledged", waiting=timedelta(hours=4), taken_after=timedelta(hours=3)
    )
    untouched = await insert_alert(platform, "red", waiting=timedelta(minutes=20))
    listed = (await platform.alerting.get("/v1/alerts?level=red&limit=500", headers=platform.staff())).json()["items"]
    order = [a["id"] for a in listed if a["id"] in (taken, untouched)]
    assert order == [untouched, taken]
    assert [a["waiting_seconds"] for a in listed if a["id"] == taken] == [3 * 3600]


async def test_a_nurse_s_reopen_keeps_how_long_the_patient_waited_and_the_team_s_time_to_take(platform: Any) -> None:
    # Karim took it 4 minutes after it was raised, 3 hours ago, and closed it; Claire reopens it now. The patient
    # waited 4 minutes: her reopen is a step of its history, not a second wait from the raise.
    patient = uuid.uuid4()
    alert = await open_alert(platform, patient)
    url = f"/v1/alerts/{alert['id']}"
    karim, claire = platform.staff("nurse", "ide-karim"), platform.staff("nurse", "ide-claire")
    assert (await platform.alerting.post(f"{url}/ack", headers=karim)).status_code == 200
    async with platform.alerting_platform.pool.acquire() as conn:
        await conn.execute(
            "UPDATE alerts SET raised_at = raised_at - interval '3 hours', level_since = level_since - interval "
            "'3 hours', acknowledged_at = raised_at - interval '3 hours' + interval '4 minutes' WHERE id = $1",
            uuid.UUID(alert["id"]),
        )
    taken = (await platform.alerting.get(url, headers=karim)).json()
    assert taken["waiting_seconds"] == 240
    closed = await platform.alerting.post(f"{url}/resolve", json={"outcome": "phone_call"}, headers=karim)
    assert closed.status_code == 200, closed.text

    reopened = await platform.alerting.post(f"{url}/reopen", json={"reason": "rappel"}, headers=claire)
    assert reopened.status_code == 200, reopened.text
    body = reopened.json()
    assert (body["status"], body["acknowledged_by"], body["reopened_by"]) == (
        "acknowledged",
        "ide-claire",
        "ide-claire",
    )
    assert body["acknowledged_at"] == taken["acknowledged_at"] and body["waiting_seconds"] == 240
    shown = (await platform.alerting.get(url, headers=claire)).json()
    listed = (await platform.alerting.get("/v1/alerts", headers=claire)).json()["items"]
    assert shown["waiting_seconds"] == next(a["waiting_seconds"] for a in listed if a["id"] == alert["id"]) == 240
    assert datetime.fromisoformat(shown["reopened_at"]) > datetime.fromisoformat(shown["acknowledged_at"])
    # The team's figures count the first take, as the alert's wait does.
    figures = (await platform.alerting.get("/v1/metrics", headers=claire)).json()
    assert figures["time_to_acknowledge"]["count"] == 1
    assert figures["time_to_acknowledge"]["median_s"] == 240


async def test_an_alert_a_new_finding_reopens_waits_again_from_then(platform: Any) -> None:
    # Taken long ago, then a new red report: it needs a nurse again, and has waited since that report (as its
    # service-level clock), not since it was first raised; the list says who had it.
    patient = uuid.uuid4()
    alert = await open_alert(platform, patient)
    taken = await platform.alerting.post(f"/v1/alerts/{alert['id']}/ack", headers=platform.staff("nurse", "ide-claire"))
    assert taken.status_code == 200
    async with platform.alerting_platform.pool.acquire() as conn:
        await conn.execute(
            "UPDATE alerts SET raised_at = raised_at - interval '3 hours', level_since = level_since - interval "
            "'3 hours', acknowledged_at = acknowledged_at - interval '170 minutes' WHERE id = $1",
            uuid.UUID(alert["id"]),
        )
    waiting_longer = await insert_alert(platform, "red", waiting=timedelta(minutes=30))
    await submit(platform, patient, RED_NAUSEA)

    async def reopened() -> Any:
        found = (await platform.alerting.get(f"/v1/alerts/{alert['id']}", headers=platform.staff())).json()
        return found if found["status"] == "open" else None

    again = await eventually(reopened)
    assert again["previously_acknowledged_by"] == "ide-claire" and again["acknowledged_by"] is None
    assert again["waiting_since"] == again["reopened_by_finding_at"]
    assert datetime.fromisoformat(again["waiting_since"]) > datetime.fromisoformat(again["raised_at"])
    assert again["waiting_seconds"] < 60
    async with platform.alerting_platform.pool.acquire() as conn:
        level_since = await conn.fetchval("SELECT level_since FROM alerts WHERE id = $1", uuid.UUID(alert["id"]))
    assert datetime.fromisoformat(again["waiting_since"]) == level_since
    listed = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
    assert [a["id"] for a in listed] == [waiting_longer, alert["id"]]


async def test_paging_reads_every_alert_once_in_triage_order_with_the_totals_on_each_page(platform: Any) -> None:
    red = [await insert_alert(platform, "red", waiting=timedelta(minutes=10 * i)) for i in range(1, 4)]
    orange = [await insert_alert(platform, "orange", waiting=timedelta(minutes=i)) for i in range(1, 5)]
    taken = await insert_alert(
        platform, "orange", status="acknowledged", waiting=timedelta(hours=5), taken_after=timedelta(seconds=90)
    )
    overdue = await insert_alert(platform, "orange", waiting=timedelta(days=9))
    await insert_alert(platform, "red", status="resolved", taken_after=timedelta(minutes=1))  # not active

    pages = []
    for offset in (0, 4, 8):
        response = await platform.alerting.get(f"/v1/alerts?limit=4&offset={offset}", headers=platform.staff())
        assert response.status_code == 200, response.text
        pages.append(response.json())

    assert [page["count"] for page in pages] == [4, 4, 1]  # this page's items, as before
    listed = [a["id"] for page in pages for a in page["items"]]
    # Red first; within a level, those nobody has taken, the longest waiting first; then those in hand.
    assert listed == [*red[::-1], overdue, *orange[::-1], taken]
    for page in pages:
        assert page["totals"] == {
            "total": 9,
            "by_level": {"red": 3, "orange": 6},
            "by_status": {"open": 8, "acknowledged": 1, "resolved": 0},
            "overdue": 1,
        }
    assert [a["id"] for page in pages for a in page["items"] if a["overdue"]] == [overdue]

    reds = (await platform.alerting.get("/v1/alerts?level=red&status=resolved", headers=platform.staff())).json()
    assert reds["totals"]["total"] == 1 and reds["totals"]["by_status"]["resolved"] == 1


async def test_each_page_audits_the_patients_it_showed(platform: Any) -> None:
    for i in range(3):
        await insert_alert(platform, "orange", waiting=timedelta(minutes=i + 1))
    nurse = platform.staff("nurse", "nurse-9")
    first = (await platform.alerting.get("/v1/alerts?limit=2", headers=nurse)).json()["items"]
    async with platform.alerting_platform.pool.acquire() as conn:
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE actor = 'nurse-9' AND action = 'alerts.list'"
        )
    assert audited == len(first) == 2


@pytest.mark.parametrize(
    ("query", "names"),
    [("limit=0", "limit"), ("limit=501", "limit"), ("offset=-1", "offset"), ("limit=ten", "limit")],
)
async def test_bad_paging_is_refused_and_audits_nothing(platform: Any, query: str, names: str) -> None:
    await insert_alert(platform, "red")
    response = await platform.alerting.get(f"/v1/alerts?{query}", headers=platform.staff())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert names in response.json()["detail"]
    async with platform.alerting_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'alerts.list'") == 0


async def test_each_alert_says_when_its_latest_answers_were_given_even_days_before_they_arrived(platform: Any) -> None:
    # A tablet offline since Sunday sends its answers on Tuesday: the alert is raised now, on answers two days old.
    patient = uuid.uuid4()
    authored = (datetime.now(UTC) - timedelta(days=2, hours=3)).replace(microsecond=0)
    await submit(platform, patient, RED_NAUSEA, authored=authored)

    async def raised() -> Any:
        items = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
        return next((a for a in items if a["patient_id"] == str(patient)), None)

    listed = await eventually(raised)
    assert datetime.fromisoformat(listed["answered_at"]) == authored
    assert datetime.fromisoformat(listed["raised_at"]) - authored > timedelta(days=2)
    one = (await platform.alerting.get(f"/v1/alerts/{listed['id']}", headers=platform.staff())).json()
    taken = (await platform.alerting.post(f"/v1/alerts/{listed['id']}/ack", headers=platform.staff())).json()
    assert one["answered_at"] == taken["answered_at"] == listed["answered_at"]

    # Newer answers merged into it move it forward: the alert holds answers of today too.
    await submit(platform, patient, RED_NAUSEA)

    async def merged() -> Any:
        alert = (await platform.alerting.get(f"/v1/alerts/{listed['id']}", headers=platform.staff())).json()
        return alert if len(alert["submission_ids"]) == 2 else None

    latest = await eventually(merged)
    assert datetime.now(UTC) - datetime.fromisoformat(latest["answered_at"]) < timedelta(minutes=5)


async def test_a_message_s_alert_was_answered_when_the_message_was_sent(platform: Any) -> None:
    patient = uuid.uuid4()
    sent = await platform.questionnaire.post(
        "/v1/messages",
        json={"text": "Pouvez-vous me rappeler ?"},
        headers={**platform.device(patient), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert sent.status_code == 202, sent.text

    async def raised() -> Any:
        items = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
        return next((a for a in items if a["patient_id"] == str(patient)), None)

    alert = await eventually(raised)
    async with platform.alerting_platform.pool.acquire() as conn:
        sent_at = await conn.fetchval("SELECT sent_at FROM messages WHERE patient_id = $1", patient)
    assert datetime.fromisoformat(alert["answered_at"]) == sent_at


async def test_patient_weeks_count_the_weeks_each_patient_was_followed_and_those_with_an_alert(platform: Any) -> None:
    # Four weeks of 2001 (no other test writes there): the team's figures compare with the trials' 13–37 % of
    # patient-weeks with an alert, so a patient counts for the weeks they answered or wrote in, not for ever after.
    start = datetime(2001, 3, 5, tzinfo=UTC)
    stop = start + timedelta(weeks=4)
    steady, alerted, former = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with platform.alerting_platform.pool.acquire() as conn:

        async def answered(patient: uuid.UUID, at: datetime) -> None:
            await conn.execute(
                "INSERT INTO scores (submission_id, patient_id, questionnaire_id, authored, answered_by, answers, "
                "grades, level, rule_set) VALUES ($1, $2, 'reconnect-symptoms', $3, 'patient', '{}', '{}', 'none', "
                "'test')",
                uuid.uuid4(),
                patient,
                at,
            )

        for week in range(4):  # twice a week, every week: four weeks, no alert
            await answered(steady, start + timedelta(weeks=week, days=1))
            await answered(steady, start + timedelta(weeks=week, days=4))
        await answered(alerted, start + timedelta(days=2))  # week 1 answered; week 2 a message and an alert
        await conn.execute(
            "INSERT INTO messages (id, patient_id, answered_by, body, sent_at) VALUES ($1, $2, 'patient', 'x', $3)",
            uuid.uuid4(),
            alerted,
            start + timedelta(weeks=1, days=3),
        )
        await conn.execute(
            "INSERT INTO alerts (id, patient_id, level, status, reasons, answered_by, rule_set, raised_at, updated_at, "
            "level_since) VALUES ($1, $2, 'orange', 'open', $3, 'patient', 'test', $4, $4, $4)",
            uuid.uuid4(),
            alerted,
            ORANGE_NAUSEA,
            start + timedelta(weeks=1, days=3),
        )
        await answered(former, start - timedelta(days=60))  # followed before the period only: weighs nothing
        weeks = await repository.patient_weeks_between(conn, start, stop)
    assert weeks == PatientWeeks(followed=6, with_alert=1)
