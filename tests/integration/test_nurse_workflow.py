"""The nurse's whole workflow against real NATS and PostgreSQL: escalation once per level with two replicas,
reopen, the patient view, expected levels, the team's figures, the audit, and the stream's own token."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats.errors
import orjson
import pytest

from services.alerting.escalation import escalate_overdue
from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from shared.events.catalog import make_event
from shared.events.inclusion import SessionScheduledV1
from shared.testing.clock import paris_noon_today
from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.services import in_process
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

NAUSEA_GRADE_2 = {"nausea.frequency": "2", "nausea.severity": "2"}


async def submit(platform: Any, patient: uuid.UUID, answers: dict[str, Any], **kw: Any) -> httpx.Response:
    response = await platform.questionnaire.post(
        "/v1/submissions",
        content=orjson.dumps(questionnaire_response(answers, **kw)),
        headers={
            **platform.device(patient),
            "Idempotency-Key": str(uuid.uuid4()),
            "Content-Type": "application/fhir+json",
        },
    )
    assert response.status_code == 202, response.text
    return response


async def open_alert(platform: Any, patient: uuid.UUID, answers: dict[str, Any] = RED_NAUSEA) -> dict[str, Any]:
    await submit(platform, patient, answers)

    async def raised() -> Any:
        items = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
        return next((a for a in items if a["patient_id"] == str(patient)), None)

    found: dict[str, Any] = await eventually(raised)
    return found


async def test_an_alert_nobody_takes_is_escalated_once_per_level_even_with_two_replicas(
    platform: Any, service_env: dict[str, str]
) -> None:
    patient = uuid.uuid4()
    alert = await open_alert(platform, patient)
    assert alert["escalation_level"] == 0 and alert["overdue"] is False
    js = platform.alerting_platform.js
    escalations = await js.subscribe("alert.escalated", stream="ALERTS", ordered_consumer=True)

    # Two more replicas whose clocks are a week ahead check every 50 ms, concurrently, on the same data.
    ahead = datetime.now(UTC) + timedelta(days=7)
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    settings = AlertingSettings(**env, ESCALATION_CHECK_S="0.05")
    async with (
        in_process(build_alerting(settings, clock=lambda: ahead)),
        in_process(build_alerting(settings, clock=lambda: ahead)),
    ):
        published = [orjson.loads((await escalations.next_msg(timeout=5)).data)["data"] for _ in range(2)]
        await asyncio.sleep(0.5)  # ten more checks by each replica
    assert [e["escalation_level"] for e in published] == [1, 2]
    assert {e["alert_id"] for e in published} == {alert["id"]}
    with pytest.raises(nats.errors.TimeoutError):
        await escalations.next_msg(timeout=0.5)
    assert (
        await escalate_overdue(
            platform.alerting_platform.pool, ahead, platform.alerting_platform.extras["service_levels"]
        )
        == []
    )

    listed = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
    assert [(a["escalation_level"], a["overdue"]) for a in listed if a["id"] == alert["id"]] == [(2, False)]


async def test_an_acknowledged_alert_is_not_escalated(platform: Any) -> None:
    alert = await open_alert(platform, uuid.uuid4())
    assert (await platform.alerting.post(f"/v1/alerts/{alert['id']}/ack", headers=platform.staff())).status_code == 200
    levels = platform.alerting_platform.extras["service_levels"]
    later = datetime.now(UTC) + timedelta(days=7)
    assert await escalate_overdue(platform.alerting_platform.pool, later, levels) == []


async def test_resolve_then_reopen(platform: Any) -> None:
    alert = await open_alert(platform, uuid.uuid4())
    url = f"/v1/alerts/{alert['id']}"
    refused = await platform.alerting.post(f"{url}/reopen", headers=platform.staff())
    assert refused.status_code == 409
    assert "resolved" in refused.json()["detail"]
    await platform.alerting.post(f"{url}/ack", headers=platform.staff())
    await platform.alerting.post(f"{url}/resolve", json={"outcome": "no_action_needed"}, headers=platform.staff())
    reopened = await platform.alerting.post(
        f"{url}/reopen", json={"reason": "rappel de la patiente"}, headers=platform.staff("nurse", "nurse-2")
    )
    assert reopened.status_code == 200, reopened.text
    body = reopened.json()
    assert (body["status"], body["acknowledged_by"], body["reopened_by"], body["outcome"]) == (
        "acknowledged",
        "nurse-2",
        "nurse-2",
        None,
    )
    listed = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
    assert [a["id"] for a in listed] == [alert["id"]]


async def test_the_patient_view_shows_the_trend_alerts_messages_and_sessions(platform: Any) -> None:
    patient = uuid.uuid4()
    session = SessionScheduledV1(
        session_id=uuid.uuid4(), patient_id=patient, scheduled_for=datetime.now(UTC) + timedelta(days=3), cycle=2
    )
    js = platform.alerting_platform.js
    await js.publish(
        "session.scheduled", make_event("session.scheduled", session, source="/tests", time=datetime.now(UTC)).to_json()
    )
    alert = await open_alert(platform, patient, NAUSEA_GRADE_2)
    message = await platform.questionnaire.post(
        "/v1/messages",
        json={"text": "J'ai du mal à boire depuis hier."},
        headers={**platform.device(patient), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert message.status_code == 202

    async def complete() -> Any:
        r = await platform.alerting.get(f"/v1/patients/{patient}/timeline", headers=platform.staff())
        body = r.json()
        return body if body["messages"] and body["sessions"] else None

    timeline = await eventually(complete)
    assert [s["grades"]["nausea"] for s in timeline["submissions"]] == [2]
    assert timeline["submissions"][0]["answered_by"] == "patient"
    # Newest first: the message's own alert, then the symptom's.
    assert [a["id"] for a in timeline["alerts"]][1:] == [alert["id"]]
    assert timeline["messages"][0]["body"] == "J'ai du mal à boire depuis hier."
    assert timeline["messages"][0]["alert_id"] == timeline["alerts"][0]["id"]
    assert timeline["sessions"][0]["cycle"] == 2
    listed = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
    assert datetime.fromisoformat(listed[0]["next_session_at"]) == session.scheduled_for

    audit = await platform.alerting.get(f"/v1/audit?patient_id={patient}", headers=platform.staff("admin", "admin-1"))
    assert "patient.timeline" in {e["action"] for e in audit.json()["items"]}


async def test_an_expected_level_stops_a_known_symptom_from_alerting(platform: Any) -> None:
    patient = uuid.uuid4()
    until = (clinic_today() + timedelta(days=10)).isoformat()
    url = f"/v1/patients/{patient}/expected-levels/nausea"
    set_ = await platform.alerting.put(url, json={"grade": 2, "until": until}, headers=platform.staff())
    assert set_.status_code == 200, set_.text
    assert set_.json()["set_by"] == "nurse-1"

    response = await submit(platform, patient, NAUSEA_GRADE_2)
    submission = response.json()["id"]

    async def scored() -> bool:
        r = await platform.questionnaire.get(f"/v1/submissions/{submission}", headers=platform.device(patient))
        return r.json()["status"] == "scored"

    assert await eventually(scored)
    listed = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
    assert [a for a in listed if a["patient_id"] == str(patient)] == []

    assert (await platform.alerting.delete(url, headers=platform.staff())).status_code == 204
    assert (await platform.alerting.delete(url, headers=platform.staff())).status_code == 404


async def test_a_symptom_of_a_hospital_s_own_questionnaire_can_be_expected(platform: Any) -> None:
    # A hospital's questionnaire (QUESTIONNAIRE_DEFINITIONS_DIR) asks about constipation, which the default one does
    # not: once the patient has answered about it, a nurse can expect it like any other symptom.
    patient, other = uuid.uuid4(), uuid.uuid4()
    async with platform.alerting_platform.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO scores (submission_id, patient_id, questionnaire_id, authored, answered_by, answers, grades, "
            "level, rule_set) VALUES ($1, $2, 'hospital-digestive', now(), 'patient', '{}', "
            "'{\"constipation\": 2}', 'none', 'default@1')",
            uuid.uuid4(),
            patient,
        )
    body = {"grade": 2, "until": (clinic_today() + timedelta(days=10)).isoformat()}
    url = f"/v1/patients/{patient}/expected-levels/constipation"
    set_ = await platform.alerting.put(url, json=body, headers=platform.staff())
    assert set_.status_code == 200, set_.text
    assert set_.json()["term"] == "constipation"
    # Another patient never answered about it: most likely a typing error.
    refused = await platform.alerting.put(
        f"/v1/patients/{other}/expected-levels/constipation", json=body, headers=platform.staff()
    )
    assert refused.status_code == 404 and "this patient's answers" in refused.json()["detail"]
    assert (await platform.alerting.delete(url, headers=platform.staff())).status_code == 204


def clinic_today() -> date:
    """Today where the ward is (the services' default CLINIC_TIMEZONE): from 23:00 or 22:00 UTC, a day after UTC's."""
    return datetime.now(ZoneInfo("Europe/Paris")).date()


def pin_clinic_day(platform: Any) -> date:
    """The alerting service's clock pinned at noon today in Paris, and that day: a day the test counts from is the
    service's, even if the test runs across midnight (a last day of 30 computed just before it, checked just after,
    would be the 29th)."""
    return platform.alerting_clock.pin(paris_noon_today()).astimezone(ZoneInfo("Europe/Paris")).date()


@pytest.mark.parametrize(
    ("term", "grade", "days_after_today", "status"),
    [
        ("nausea", 2, 30, 422),  # 31 days in all
        ("nausea", 3, 0, 422),  # grade 3 is red: it always alerts
        ("nausea", 2, -1, 422),
        ("nausea", 4, 0, 422),
        ("nausea", 1, None, 422),  # no end date
        ("headache_typo", 1, 0, 404),
    ],
)
async def test_bad_expected_levels_are_refused(
    platform: Any, term: str, grade: int, days_after_today: int | None, status: int
) -> None:
    patient = uuid.uuid4()
    body: dict[str, Any] = {"grade": grade}
    if days_after_today is not None:
        body["until"] = (pin_clinic_day(platform) + timedelta(days=days_after_today)).isoformat()
    response = await platform.alerting.put(
        f"/v1/patients/{patient}/expected-levels/{term}", json=body, headers=platform.staff()
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    timeline = await platform.alerting.get(f"/v1/patients/{patient}/timeline", headers=platform.staff())
    assert timeline.json()["expected_levels"] == []


async def test_team_figures_count_what_was_done(platform: Any) -> None:
    first = await open_alert(platform, uuid.uuid4())
    second = await open_alert(platform, uuid.uuid4())
    for alert, outcome in ((first, "chemo_postponed"), (second, "no_action_needed")):
        await platform.alerting.post(f"/v1/alerts/{alert['id']}/ack", headers=platform.staff())
        await platform.alerting.post(
            f"/v1/alerts/{alert['id']}/resolve", json={"outcome": outcome}, headers=platform.staff()
        )
    figures = (await platform.alerting.get("/v1/metrics", headers=platform.staff())).json()
    assert figures["alerts_by_level"] == {"red": 2, "orange": 0}
    assert figures["time_to_acknowledge"]["count"] == 2
    assert figures["time_to_acknowledge"]["within_service_level_share"] == 1.0
    assert figures["time_to_close"]["count"] == 2
    assert figures["acted_share"] == 0.5
    # Both patients were followed this week, and both had an alert (other tests' patients count too).
    assert figures["alert_rate_per_patient_week"] > 0
    assert 0 < figures["patient_weeks_with_alert_share"] <= 1
    bad = await platform.alerting.get("/v1/metrics?from=2026-12-01&to=2026-11-01", headers=platform.staff())
    assert bad.status_code == 422


async def test_a_period_too_long_says_how_long_it_may_be(platform: Any) -> None:
    # The dashboard tells the nurse the limit from the problem itself ("366 jours au plus").
    too_long = await platform.alerting.get("/v1/metrics?from=2025-01-01&to=2026-01-02", headers=platform.staff())
    assert too_long.status_code == 422
    assert too_long.json()["pointer"] == "/from" and too_long.json()["max_days"] == 366
    longest = await platform.alerting.get("/v1/metrics?from=2025-01-01&to=2026-01-01", headers=platform.staff())
    assert longest.status_code == 200, longest.text


async def test_the_audit_is_for_admins_and_reading_it_is_audited(platform: Any) -> None:
    alert = await open_alert(platform, uuid.uuid4())
    await platform.alerting.post(f"/v1/alerts/{alert['id']}/ack", headers=platform.staff())
    assert (await platform.alerting.get("/v1/audit", headers=platform.staff())).status_code == 403
    admin = platform.staff("admin", "admin-1")
    page = (await platform.alerting.get("/v1/audit?actor=nurse-1", headers=admin)).json()
    assert {"alert.acknowledge", "alerts.list"} <= {e["action"] for e in page["items"]}
    shown = {e["patient_id"] for e in page["items"] if e["patient_id"] is not None}
    assert alert["patient_id"] in shown
    again = (await platform.alerting.get("/v1/audit?actor=admin-1", headers=admin)).json()
    assert {e["action"] for e in again["items"]} == {"audit.read"}
    # The admin saw whose data the nurse opened: each of those patients' trails shows that read.
    assert {e["patient_id"] for e in again["items"]} == shown


async def test_the_stream_opens_with_a_short_lived_stream_token_only(platform: Any) -> None:
    issued = await platform.alerting.post("/v1/alerts/stream-token", headers=platform.staff())
    assert issued.status_code == 200 and issued.json()["expires_in"] == 60
    staff_token = platform.staff()["Authorization"].removeprefix("Bearer ")
    device_token = platform.device(uuid.uuid4())["Authorization"].removeprefix("Bearer ")
    for wrong in (staff_token, device_token, "garbage"):
        refused = await platform.alerting.get(f"/v1/alerts/stream?stream_token={wrong}")
        assert refused.status_code == 401, wrong
    # A stream token is not a bearer token for the rest of the API.
    stream_token = issued.json()["token"]
    refused = await platform.alerting.get("/v1/alerts", headers={"Authorization": f"Bearer {stream_token}"})
    assert refused.status_code == 401
    not_a_nurse = await platform.alerting.post("/v1/alerts/stream-token", headers=platform.staff("fleet", "fleet-1"))
    assert not_a_nurse.status_code == 403


async def test_dashboard_pages_and_sign_in_help_are_served(platform: Any) -> None:
    home = await platform.alerting.get("/", follow_redirects=False)
    assert home.status_code in (302, 307) and home.headers["location"] == "/dashboard/"
    page = await platform.alerting.get("/dashboard/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    config = (await platform.alerting.get("/v1/dashboard/config")).json()
    assert config["dev_login"] is True and config["dev_users"]
    token = (
        await platform.alerting.post("/v1/dashboard/dev-token", json={"staff_id": config["dev_users"][0]["staff_id"]})
    ).json()["token"]
    me = (await platform.alerting.get("/v1/me", headers={"Authorization": f"Bearer {token}"})).json()
    assert me["staff_id"] == config["dev_users"][0]["staff_id"]
    labels = (await platform.alerting.get("/v1/reference")).json()
    assert labels["terms"]["nausea"] == "Nausées"


async def test_no_development_sign_in_where_a_real_secret_is_set(service_env: dict[str, str]) -> None:
    # ENVIRONMENT left at its default (development) by a deployment that did set its own secret: the
    # sign-in that needs no password must not hand out nurse and admin tokens signed with that secret.
    settings = AlertingSettings(
        NATS_URL=service_env["NATS_URL"],
        DATABASE_URL=service_env["DATABASE_URL"],
        AUTH_SECRET="s" * 48,
        ENVIRONMENT="development",
    )
    async with in_process(build_alerting(settings)) as (client, _):
        config = (await client.get("/v1/dashboard/config")).json()
        assert config["dev_login"] is False and config["dev_users"] == []
        refused = await client.post("/v1/dashboard/dev-token", json={"staff_id": "cadre-sophie"})
        assert refused.status_code == 404
        assert "off here" in refused.json()["detail"]


async def test_an_older_plan_of_a_session_arriving_last_does_not_undo_a_newer_one(platform: Any) -> None:
    # A cancellation, then the original plan redelivered after it (a retry, or another replica a moment
    # later): the session stays cancelled.
    patient, session_id = uuid.uuid4(), uuid.uuid4()
    when = datetime.now(UTC) + timedelta(days=3)
    planned = SessionScheduledV1(session_id=session_id, patient_id=patient, scheduled_for=when, cycle=2)
    cancelled = planned.model_copy(update={"cancelled": True})
    made = datetime.now(UTC)
    older = make_event("session.scheduled", planned, source="/tests", time=made)
    newer = make_event("session.scheduled", cancelled, source="/tests", time=made + timedelta(seconds=1))
    js = platform.alerting_platform.js
    await js.publish("session.scheduled", newer.to_json())

    async def stored() -> Any:
        async with platform.alerting_platform.pool.acquire() as conn:
            return await conn.fetchrow("SELECT cancelled, planned_at FROM sessions WHERE session_id = $1", session_id)

    assert (await eventually(stored))["cancelled"] is True
    await js.publish("session.scheduled", older.to_json())

    async def older_seen() -> bool:
        info = await js.consumer_info("INCLUSION", "alerting-session-scheduled")
        return bool(info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq == 2)

    await eventually(older_seen)
    row = await stored()
    assert row["cancelled"] is True and row["planned_at"] == made + timedelta(seconds=1)


async def test_a_patient_s_trail_shows_the_lists_that_showed_them(platform: Any) -> None:
    patient = uuid.uuid4()
    await open_alert(platform, patient)
    listed = await platform.alerting.get("/v1/alerts", headers=platform.staff("nurse", "nurse-7"))
    assert str(patient) in {a["patient_id"] for a in listed.json()["items"]}
    admin = platform.staff("admin", "admin-1")
    trail = (await platform.alerting.get(f"/v1/audit?patient_id={patient}", headers=admin)).json()
    assert ("nurse-7", "alerts.list") in {(e["actor"], e["action"]) for e in trail["items"]}


async def test_a_new_red_report_on_an_acknowledged_alert_needs_a_nurse_again(platform: Any) -> None:
    # The nurse took the alert; the next day the patient reports grade 3 nausea again: someone must look at it,
    # with the service-level clock starting afresh, instead of it joining an alert already in hand, unseen.
    patient = uuid.uuid4()
    alert = await open_alert(platform, patient)
    taken = await platform.alerting.post(f"/v1/alerts/{alert['id']}/ack", headers=platform.staff())
    assert taken.status_code == 200
    async with platform.alerting_platform.pool.acquire() as conn:
        first_since = await conn.fetchval("SELECT level_since FROM alerts WHERE id = $1", uuid.UUID(alert["id"]))
    await submit(platform, patient, RED_NAUSEA)

    async def reopened() -> Any:
        found = (await platform.alerting.get(f"/v1/alerts/{alert['id']}", headers=platform.staff())).json()
        return found if found["status"] == "open" else None

    again = await eventually(reopened)
    assert again["level"] == "red" and again["acknowledged_by"] is None and len(again["submission_ids"]) == 2
    async with platform.alerting_platform.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT level_since, escalation_level FROM alerts WHERE id = $1", uuid.UUID(alert["id"])
        )
    assert row["level_since"] > first_since and row["escalation_level"] == 0


async def test_the_triage_list_is_red_first_then_the_longest_waiting(platform: Any) -> None:
    # CLINICAL.md §4. An alert a nurse took after 5 minutes has stopped waiting: an open one raised later, waiting
    # for 90 minutes now, comes before it.
    taken = await open_alert(platform, uuid.uuid4(), NAUSEA_GRADE_2)
    waiting = await open_alert(platform, uuid.uuid4(), NAUSEA_GRADE_2)
    red = await open_alert(platform, uuid.uuid4())
    now = datetime.now(UTC)
    async with platform.alerting_platform.pool.acquire() as conn:
        await conn.execute(
            "UPDATE alerts SET raised_at = $2, status = 'acknowledged', acknowledged_by = 'nurse-2', "
            "acknowledged_at = $3 WHERE id = $1",
            uuid.UUID(taken["id"]),
            now - timedelta(minutes=120),
            now - timedelta(minutes=115),
        )
        await conn.execute(
            "UPDATE alerts SET raised_at = $2 WHERE id = $1", uuid.UUID(waiting["id"]), now - timedelta(minutes=90)
        )
    listed = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
    assert [a["id"] for a in listed] == [red["id"], waiting["id"], taken["id"]]


async def test_closing_an_alert_not_taken_first_still_tells_the_patient_it_was_seen(platform: Any) -> None:
    patient = uuid.uuid4()
    submission = (await submit(platform, patient, RED_NAUSEA)).json()["id"]

    async def raised() -> Any:
        items = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
        return next((a for a in items if a["patient_id"] == str(patient)), None)

    alert = await eventually(raised)
    closed = await platform.alerting.post(
        f"/v1/alerts/{alert['id']}/resolve", json={"outcome": "phone_call"}, headers=platform.staff()
    )
    assert closed.status_code == 200

    async def seen() -> bool:
        r = await platform.questionnaire.get(f"/v1/submissions/{submission}", headers=platform.device(patient))
        return r.json()["status"] == "seen"

    assert await eventually(seen)
