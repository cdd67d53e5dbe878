"""The main flow, end to end through HTTP, NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import orjson
import pytest

from services.questionnaire.api import SubmissionAccepted
from shared.testing.fhir import CALM, RED_NAUSEA, questionnaire_response
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration


async def submit(platform: Any, patient: uuid.UUID, answers: dict[str, Any], key: str | None = None, **kw: Any) -> Any:
    return await platform.questionnaire.post(
        "/v1/submissions",
        content=orjson.dumps(questionnaire_response(answers, **kw)),
        headers={
            **platform.device(patient),
            "Idempotency-Key": key or str(uuid.uuid4()),
            "Content-Type": "application/fhir+json",
        },
    )


async def test_red_submission_raises_an_alert_that_a_nurse_acknowledges_and_resolves(platform: Any) -> None:
    patient = uuid.uuid4()
    js = platform.alerting_platform.js
    raised = await js.subscribe("alert.raised", stream="ALERTS", ordered_consumer=True)

    response = await submit(platform, patient, RED_NAUSEA, source="RelatedPerson/daughter")
    assert response.status_code == 202, response.text
    submission_id = response.json()["id"]
    assert response.headers["location"] == f"/v1/submissions/{submission_id}"
    # The body is built as a dict: it must still be exactly what the OpenAPI document promises.
    assert SubmissionAccepted.model_validate(response.json()).model_dump(mode="json") == response.json()
    assert response.json()["status_label"] == "Vos réponses ont bien été reçues."

    msg = await raised.next_msg(timeout=5)
    event = orjson.loads(msg.data)
    assert event["type"] == "alert.raised"
    assert event["data"]["patient_id"] == str(patient)
    assert event["data"]["level"] == "red"
    assert event["data"]["submission_id"] == submission_id
    assert event["data"]["answered_by"] == "relative"
    assert [(r["code"], r["rule"], r["grade"]) for r in event["data"]["reasons"]] == [("nausea", "red.grade3", 3)]
    alert_id = event["data"]["alert_id"]

    listing = await platform.alerting.get("/v1/alerts", headers=platform.staff())
    assert listing.status_code == 200
    assert [a["id"] for a in listing.json()["items"]] == [alert_id]

    detail = (await platform.alerting.get(f"/v1/alerts/{alert_id}", headers=platform.staff())).json()
    assert detail["answered_by"] == "relative"
    assert detail["submissions"][0]["grades"]["nausea"] == 3

    async def status() -> str:
        r = await platform.questionnaire.get(f"/v1/submissions/{submission_id}", headers=platform.device(patient))
        return r.json()["status"]

    assert await eventually(lambda: _equals(status, "scored"))

    ack = await platform.alerting.post(f"/v1/alerts/{alert_id}/ack", headers=platform.staff())
    assert ack.status_code == 200, ack.text
    assert ack.json()["acknowledged_by"] == "nurse-1"
    assert await eventually(lambda: _equals(status, "seen"))
    seen = await platform.questionnaire.get(f"/v1/submissions/{submission_id}", headers=platform.device(patient))
    assert seen.json()["status_label"] == "L'équipe soignante a vu vos réponses."

    resolved = await platform.alerting.post(
        f"/v1/alerts/{alert_id}/resolve", json={"outcome": "chemo_postponed"}, headers=platform.staff()
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"
    open_now = await platform.alerting.get("/v1/alerts", headers=platform.staff())
    assert open_now.json()["items"] == []


async def _equals(read: Any, expected: Any) -> bool:
    return bool(await read() == expected)


async def test_calm_submission_is_scored_without_alert(platform: Any) -> None:
    patient = uuid.uuid4()
    response = await submit(platform, patient, CALM)
    assert response.status_code == 202, response.text
    submission_id = response.json()["id"]

    async def scored() -> bool:
        r = await platform.questionnaire.get(f"/v1/submissions/{submission_id}", headers=platform.device(patient))
        return bool(r.json()["status"] == "scored")

    await eventually(scored)
    listing = await platform.alerting.get("/v1/alerts", headers=platform.staff())
    assert listing.json()["items"] == []


async def test_same_idempotency_key_twice_gives_one_submission_and_one_alert(platform: Any) -> None:
    patient = uuid.uuid4()
    body = orjson.dumps(questionnaire_response(RED_NAUSEA))
    headers = {**platform.device(patient), "Idempotency-Key": "tablet-7f3a-0001"}
    first, second = await asyncio.gather(
        platform.questionnaire.post("/v1/submissions", content=body, headers=headers),
        platform.questionnaire.post("/v1/submissions", content=body, headers=headers),
    )
    third = await platform.questionnaire.post("/v1/submissions", content=body, headers=headers)
    assert first.status_code == second.status_code == third.status_code == 202
    assert first.json()["id"] == second.json()["id"] == third.json()["id"]

    async def one_alert() -> bool:
        r = await platform.alerting.get("/v1/alerts", headers=platform.staff())
        return len(r.json()["items"]) == 1

    await eventually(one_alert)
    await asyncio.sleep(0.5)  # give a duplicate every chance to show up
    async with platform.questionnaire_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM submissions") == 1
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 1
    async with platform.alerting_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM alerts") == 1
    info = await platform.alerting_platform.js.stream_info("QUESTIONNAIRES")
    assert info.state.messages == 1


async def test_patient_message_raises_orange_and_merges_into_the_open_alert(platform: Any) -> None:
    patient = uuid.uuid4()
    headers = platform.device(patient)
    for i, text in enumerate(["J'ai mal depuis hier soir.", "Toujours mal ce matin."]):
        r = await platform.questionnaire.post(
            "/v1/messages",
            json={"text": text},
            headers={**headers, "Idempotency-Key": f"message-key-{i:04d}"},
        )
        assert r.status_code == 202, r.text

    async def alerts() -> Any:
        r = await platform.alerting.get("/v1/alerts", headers=platform.staff())
        items = r.json()["items"]
        return items if items and len(items[0]["message_ids"]) == 2 else None

    items = await eventually(alerts)
    assert len(items) == 1
    assert items[0]["level"] == "orange"
    assert [r["rule"] for r in items[0]["reasons"]] == ["orange.message"]
    detail = (await platform.alerting.get(f"/v1/alerts/{items[0]['id']}", headers=platform.staff())).json()
    assert [m["body"] for m in detail["messages"]] == ["J'ai mal depuis hier soir.", "Toujours mal ce matin."]


async def test_the_tablet_shows_a_message_read_once_a_nurse_takes_its_alert(platform: Any) -> None:
    patient = uuid.uuid4()
    sent = await platform.questionnaire.post(
        "/v1/messages",
        json={"text": "Je n'arrive plus à manger."},
        headers={**platform.device(patient), "Idempotency-Key": f"message-{uuid.uuid4()}"},
    )
    assert sent.status_code == 202, sent.text
    url = f"/v1/messages/{sent.json()['id']}"
    status = await platform.questionnaire.get(url, headers=platform.device(patient))
    assert status.status_code == 200, status.text
    assert (status.json()["status"], status.json()["seen_at"]) == ("sent", None)
    assert status.json()["status_label"] == "Votre message a bien été envoyé à l'équipe soignante."
    # Another patient's tablet learns nothing of it.
    assert (await platform.questionnaire.get(url, headers=platform.device(uuid.uuid4()))).status_code == 404

    async def raised() -> Any:
        items = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
        return next((a for a in items if a["patient_id"] == str(patient)), None)

    alert = await eventually(raised)
    taken = await platform.alerting.post(f"/v1/alerts/{alert['id']}/ack", headers=platform.staff())
    assert taken.status_code == 200

    async def read() -> Any:
        body = (await platform.questionnaire.get(url, headers=platform.device(patient))).json()
        return body if body["status"] == "seen" else None

    seen = await eventually(read)
    assert seen["status_label"] == "L'équipe soignante a lu votre message."
    assert datetime.fromisoformat(seen["seen_at"]) == datetime.fromisoformat(taken.json()["acknowledged_at"])


async def test_findings_merge_into_the_open_alert_by_term_and_a_rise_reopens_it(platform: Any) -> None:
    patient = uuid.uuid4()
    nurse = platform.staff()

    async def alerts() -> list[dict[str, Any]]:
        r = await platform.alerting.get("/v1/alerts", headers=nurse)
        return [a for a in r.json()["items"] if a["patient_id"] == str(patient)]

    orange_fatigue = {"fatigue.severity": "2", "fatigue.interference": "2"}
    assert (await submit(platform, patient, orange_fatigue)).status_code == 202
    first = (await eventually(alerts))[0]
    assert first["level"] == "orange"
    ack = await platform.alerting.post(f"/v1/alerts/{first['id']}/ack", headers=nurse)
    assert ack.status_code == 200

    # Fatigue is now grade 3 (red) and nausea grade 3 appears: fatigue updates the open alert and,
    # since its level rose, the alert needs a nurse again; nausea is a new term, hence a new alert.
    worse = {"fatigue.severity": "3", "fatigue.interference": "4", **RED_NAUSEA}
    assert (await submit(platform, patient, worse)).status_code == 202

    async def two_alerts() -> list[dict[str, Any]] | None:
        found = await alerts()
        return found if len(found) == 2 else None

    found = {a["id"]: a for a in await eventually(two_alerts)}
    merged = found[first["id"]]
    assert merged["level"] == "red" and merged["status"] == "open" and merged["acknowledged_by"] is None
    assert [(r["code"], r["rule"]) for r in merged["reasons"]] == [("fatigue", "red.grade3")]
    assert len(merged["submission_ids"]) == 2
    (new,) = [a for a in found.values() if a["id"] != first["id"]]
    assert [(r["code"], r["rule"]) for r in new["reasons"]] == [("nausea", "red.grade3")]
    async with platform.alerting_platform.pool.acquire() as conn:
        subjects = [r["subject"] for r in await conn.fetch("SELECT subject FROM outbox ORDER BY seq")]
    assert subjects.count("alert.raised") == 2 and subjects.count("alert.updated") == 1
