"""Answers that join an open alert late (the tablet was offline): every alert view says when the answers it received
last were given and when they arrived, and so does each of its submissions (and each point of the patient's trend),
so the dashboard can flag them as it flags late answers that raise an alert."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.waiting import eventually
from tests.integration.test_nurse_workflow import open_alert, submit

pytestmark = pytest.mark.integration


async def merged_twice(platform: Any, alert_id: str) -> dict[str, Any]:
    async def merged() -> Any:
        alert = (await platform.alerting.get(f"/v1/alerts/{alert_id}", headers=platform.staff())).json()
        return alert if len(alert["submission_ids"]) == 2 else None

    found: dict[str, Any] = await eventually(merged)
    return found


def lag(alert: dict[str, Any]) -> timedelta:
    received = datetime.fromisoformat(alert["latest_answers_received_at"])
    return received - datetime.fromisoformat(alert["latest_answers_authored"])


def received_lag(submission: dict[str, Any]) -> timedelta:
    return datetime.fromisoformat(submission["received_at"]) - datetime.fromisoformat(submission["authored"])


async def test_late_answers_merged_into_an_open_alert_say_when_they_were_given_and_when_they_arrived(
    platform: Any,
) -> None:
    late_patient, timely_patient = uuid.uuid4(), uuid.uuid4()
    late_alert = await open_alert(platform, late_patient)
    timely_alert = await open_alert(platform, timely_patient)
    assert lag(late_alert) < timedelta(minutes=1)  # the answers that raised it came in time

    # Saturday's answers, kept by a tablet offline since, reach the team now: they join the open alert.
    authored = (datetime.now(UTC) - timedelta(days=2, hours=3)).replace(microsecond=0)
    sent = datetime.now(UTC)
    await submit(platform, late_patient, RED_NAUSEA, authored=authored)
    await submit(platform, timely_patient, RED_NAUSEA)
    late = await merged_twice(platform, late_alert["id"])
    timely = await merged_twice(platform, timely_alert["id"])
    merged_by = datetime.now(UTC)

    # Each of its questionnaires says when it arrived, oldest given first: Saturday's now, days after it was given;
    # the one that raised the alert as it was given. The earlier one is the stale one.
    saturday, raising = late["submissions"]
    assert datetime.fromisoformat(saturday["authored"]) == authored
    received = datetime.fromisoformat(saturday["received_at"])
    assert sent - timedelta(seconds=1) <= received <= merged_by
    assert saturday["received_at"] == late["latest_answers_received_at"]
    assert received_lag(raising) < timedelta(minutes=1)
    assert all(received_lag(s) < timedelta(minutes=1) for s in timely["submissions"])

    assert datetime.fromisoformat(late["latest_answers_authored"]) == authored
    assert datetime.fromisoformat(late["latest_answers_received_at"]) >= datetime.fromisoformat(late["raised_at"])
    assert lag(late) > timedelta(days=2)
    # What the alert held before cannot tell: its newest answers given are still those that raised it, in time.
    assert late["answered_at"] == late_alert["answered_at"]
    assert late["waiting_since"] == late_alert["waiting_since"]
    assert lag(timely) < timedelta(minutes=1)
    assert timely["latest_answers_authored"] != timely_alert["latest_answers_authored"]

    # Every view of the alert says the same: the list, a step's answer, the patient's timeline.
    items = (await platform.alerting.get("/v1/alerts?limit=500", headers=platform.staff())).json()["items"]
    listed = next(a for a in items if a["id"] == late["id"])
    taken = (await platform.alerting.post(f"/v1/alerts/{late['id']}/ack", headers=platform.staff())).json()
    timeline = (await platform.alerting.get(f"/v1/patients/{late_patient}/timeline", headers=platform.staff())).json()
    in_timeline = next(a for a in timeline["alerts"] if a["id"] == late["id"])
    for view in (listed, taken, in_timeline):
        assert view["latest_answers_authored"] == late["latest_answers_authored"]
        assert view["latest_answers_received_at"] == late["latest_answers_received_at"]
    # The trend's points say when each arrived too, as the alert does.
    assert {s["submission_id"]: s["received_at"] for s in timeline["submissions"]} == {
        s["submission_id"]: s["received_at"] for s in late["submissions"]
    }

    # An alert raised by a message holds no answers: nothing to say of them.
    message_patient = uuid.uuid4()
    sent = await platform.questionnaire.post(
        "/v1/messages",
        json={"text": "Pouvez-vous me rappeler ?"},
        headers={**platform.device(message_patient), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert sent.status_code == 202, sent.text

    async def raised() -> Any:
        items = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
        return next((a for a in items if a["patient_id"] == str(message_patient)), None)

    by_message = await eventually(raised)
    assert by_message["latest_answers_authored"] is None and by_message["latest_answers_received_at"] is None
    assert by_message["latest_answers_by"] is None


async def test_the_alert_says_who_gave_its_latest_answers_so_a_nurse_s_phone_answers_are_never_late(
    platform: Any,
) -> None:
    # A nurse enters yesterday evening's answers, noted during a call, on an alert a tablet raised: the alert's
    # latest answers are hers, a day "late" by their dates, which the dashboard must not flag.
    patient = uuid.uuid4()
    alert = await open_alert(platform, patient)
    assert alert["latest_answers_by"] == "patient"
    authored = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    phoned = await platform.questionnaire.post(
        f"/v1/patients/{patient}/submissions",
        content=orjson.dumps(questionnaire_response(RED_NAUSEA, authored=authored)),
        headers={
            **platform.staff("nurse", "ide-claire"),
            "Idempotency-Key": str(uuid.uuid4()),
            "Content-Type": "application/fhir+json",
        },
    )
    assert phoned.status_code == 202, phoned.text
    merged = await merged_twice(platform, alert["id"])
    assert merged["latest_answers_by"] == "nurse_phone"
    assert lag(merged) > timedelta(hours=23)
    items = (await platform.alerting.get("/v1/alerts?limit=500", headers=platform.staff())).json()["items"]
    assert next(a for a in items if a["id"] == alert["id"])["latest_answers_by"] == "nurse_phone"
