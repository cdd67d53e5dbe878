"""An alert's history is never erased: each step (taken, closed with its outcome and note, reopened with its
reason, reopened by a new answer) is kept and shown in the patient's timeline, oldest first; the free text
stays in the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.db.pool import apply_migrations
from shared.testing.fhir import RED_NAUSEA
from shared.testing.migrations import schema_before
from shared.testing.waiting import eventually
from tests.integration.test_nurse_workflow import NAUSEA_GRADE_2, open_alert, submit

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"
MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "alerting" / "migrations"
NOTE = "NOTE-KARIM dose réduite de 20 %"
REASON = "MOTIF-CLAIRE rappel de la patiente"


async def steps_of(platform: Any, patient: uuid.UUID, alert_id: str) -> list[tuple[Any, ...]]:
    timeline = await platform.alerting.get(f"/v1/patients/{patient}/timeline", headers=platform.staff())
    assert timeline.status_code == 200, timeline.text
    (alert,) = [a for a in timeline.json()["alerts"] if a["id"] == alert_id]
    return [(s["action"], s["staff_id"], s["outcome"], s["note"], s["reason"]) for s in alert["steps"]]


async def test_reopening_keeps_who_took_and_closed_it_with_what_outcome_and_note_and_why_it_was_reopened(
    platform: Any, spans: InMemorySpanExporter
) -> None:
    patient = uuid.uuid4()
    alert = await open_alert(platform, patient, NAUSEA_GRADE_2)
    url = f"/v1/alerts/{alert['id']}"
    karim, claire = platform.staff("nurse", "ide-karim"), platform.staff("nurse", "ide-claire")
    assert (await platform.alerting.post(f"{url}/ack", headers=karim)).status_code == 200
    resolution = {"outcome": "dose_modified", "note": NOTE}
    closed = await platform.alerting.post(f"{url}/resolve", json=resolution, headers=karim)
    assert closed.status_code == 200, closed.text
    reopened = await platform.alerting.post(f"{url}/reopen", json={"reason": f"  {REASON}\n"}, headers=claire)
    assert reopened.status_code == 200, reopened.text
    # The alert's current state is Claire's, open again; its history keeps Karim's steps.
    body = reopened.json()
    assert (body["status"], body["acknowledged_by"], body["outcome"], body["resolution_note"]) == (
        "acknowledged",
        "ide-claire",
        None,
        None,
    )
    assert await steps_of(platform, patient, alert["id"]) == [
        ("acknowledged", "ide-karim", None, None, None),
        ("resolved", "ide-karim", "dose_modified", NOTE, None),
        ("reopened", "ide-claire", None, None, REASON),
    ]

    # The free text stays in the history: not in the events, the audit trail or the spans.
    async with platform.alerting_platform.pool.acquire() as conn:
        bodies = [bytes(b).decode() for b in await conn.fetchval("SELECT array_agg(body) FROM outbox")]
        audit = await conn.fetchval("SELECT array_agg(a::text) FROM audit_log a")
    assert any('"alert.reopened"' in b or "previous_outcome" in b for b in bodies)
    for text in ("NOTE-KARIM", "MOTIF-CLAIRE"):
        assert not any(text in b for b in bodies + audit)
        for span in spans.get_finished_spans():
            assert not any(text in str(v) for v in (span.attributes or {}).values()), span.name


async def test_an_alert_s_detail_gives_its_steps_as_the_timeline_does_and_is_audited_once(platform: Any) -> None:
    patient = uuid.uuid4()
    alert = await open_alert(platform, patient, NAUSEA_GRADE_2)
    url = f"/v1/alerts/{alert['id']}"
    karim, claire = platform.staff("nurse", "ide-karim"), platform.staff("nurse", "ide-claire")
    assert (await platform.alerting.post(f"{url}/ack", headers=karim)).status_code == 200
    await submit(platform, patient, RED_NAUSEA)  # a new answer needing a nurse again: back to open

    async def reopened_by_finding() -> bool:
        return len(await steps_of(platform, patient, alert["id"])) == 2

    await eventually(reopened_by_finding)
    closing = {"outcome": "dose_modified", "note": NOTE}
    assert (await platform.alerting.post(f"{url}/resolve", json=closing, headers=karim)).status_code == 200
    assert (await platform.alerting.post(f"{url}/reopen", json={"reason": REASON}, headers=claire)).status_code == 200

    detail = await platform.alerting.get(url, headers=platform.staff("nurse", "nurse-reader"))
    assert detail.status_code == 200, detail.text
    timeline = (await platform.alerting.get(f"/v1/patients/{patient}/timeline", headers=claire)).json()
    (in_timeline,) = [a for a in timeline["alerts"] if a["id"] == alert["id"]]
    assert detail.json()["steps"] == in_timeline["steps"]
    assert [(s["action"], s["staff_id"], s["outcome"], s["note"], s["reason"]) for s in detail.json()["steps"]] == [
        ("acknowledged", "ide-karim", None, None, None),
        ("reopened_by_finding", None, None, None, None),
        ("resolved", "ide-karim", "dose_modified", NOTE, None),
        ("reopened", "ide-claire", None, None, REASON),
    ]
    async with platform.alerting_platform.pool.acquire() as conn:
        reads = await conn.fetch(
            "SELECT action, resource, patient_id FROM audit_log WHERE actor = 'nurse-reader'",
        )
    assert [tuple(r) for r in reads] == [("alert.read", f"alert/{alert['id']}", patient)]


async def test_each_step_has_its_time_oldest_first_and_a_reopen_without_a_reason_has_none(platform: Any) -> None:
    patient = uuid.uuid4()
    alert = await open_alert(platform, patient, NAUSEA_GRADE_2)
    url = f"/v1/alerts/{alert['id']}"
    before = datetime.now(UTC)
    # Closed without being taken first, reopened with a blank reason, closed again.
    await platform.alerting.post(f"{url}/resolve", json={"outcome": "phone_call"}, headers=platform.staff())
    reopened = await platform.alerting.post(f"{url}/reopen", json={"reason": "  "}, headers=platform.staff())
    assert reopened.status_code == 200, reopened.text
    await platform.alerting.post(f"{url}/resolve", json={"outcome": "advice_given"}, headers=platform.staff())
    timeline = (await platform.alerting.get(f"/v1/patients/{patient}/timeline", headers=platform.staff())).json()
    steps = timeline["alerts"][0]["steps"]
    assert [(s["action"], s["outcome"], s["reason"]) for s in steps] == [
        ("resolved", "phone_call", None),
        ("reopened", None, None),
        ("resolved", "advice_given", None),
    ]
    times = [datetime.fromisoformat(s["at"]) for s in steps]
    assert before <= times[0] < times[1] < times[2] <= datetime.now(UTC)
    assert timeline["alerts"][0]["outcome"] == "advice_given"


async def test_a_refused_reopen_answers_its_problem_and_leaves_no_step(platform: Any) -> None:
    patient = uuid.uuid4()
    alert = await open_alert(platform, patient, NAUSEA_GRADE_2)
    url = f"/v1/alerts/{alert['id']}"
    unknown = await platform.alerting.post(f"/v1/alerts/{uuid.uuid4()}/reopen", json={}, headers=platform.staff())
    not_closed = await platform.alerting.post(f"{url}/reopen", json={"reason": REASON}, headers=platform.staff())
    await platform.alerting.post(f"{url}/resolve", json={"outcome": "phone_call"}, headers=platform.staff())
    bad_bodies = [{"reason": 5}, {"reason": "x" * 501}, {"why": REASON}]
    refused = [await platform.alerting.post(f"{url}/reopen", json=b, headers=platform.staff()) for b in bad_bodies]
    for response, status in [(unknown, 404), (not_closed, 409), *((r, 422) for r in refused)]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert await steps_of(platform, patient, alert["id"]) == [("resolved", "nurse-1", "phone_call", None, None)]
    async with platform.alerting_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE subject = 'alert.reopened'") == 0


async def test_a_new_red_answer_on_a_taken_alert_is_a_step_of_its_history(platform: Any) -> None:
    patient = uuid.uuid4()
    alert = await open_alert(platform, patient)
    taken = await platform.alerting.post(f"/v1/alerts/{alert['id']}/ack", headers=platform.staff("nurse", "ide-karim"))
    assert taken.status_code == 200
    await submit(platform, patient, RED_NAUSEA)

    async def reopened() -> list[tuple[Any, ...]] | None:
        steps = await steps_of(platform, patient, alert["id"])
        return steps if len(steps) == 2 else None

    assert await eventually(reopened) == [
        ("acknowledged", "ide-karim", None, None, None),
        ("reopened_by_finding", None, None, None, None),
    ]
    # An answer that does not need a nurse again (the same grade, on an alert open already) adds no step.
    await submit(platform, patient, RED_NAUSEA)

    async def merged() -> bool:
        found = (await platform.alerting.get(f"/v1/alerts/{alert['id']}", headers=platform.staff())).json()
        return len(found["submission_ids"]) == 3

    await eventually(merged)
    assert len(await steps_of(platform, patient, alert["id"])) == 2


async def test_a_new_message_on_a_taken_message_alert_is_a_step_of_its_history(platform: Any) -> None:
    patient = uuid.uuid4()

    async def send(text: str) -> None:
        response = await platform.questionnaire.post(
            "/v1/messages",
            json={"text": text},
            headers={**platform.device(patient), "Idempotency-Key": str(uuid.uuid4())},
        )
        assert response.status_code == 202, response.text

    await send("J'ai mal au ventre.")

    async def raised() -> Any:
        items = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
        return next((a for a in items if a["patient_id"] == str(patient)), None)

    alert = await eventually(raised)
    assert (await platform.alerting.post(f"/v1/alerts/{alert['id']}/ack", headers=platform.staff())).status_code == 200
    await send("C'est pire ce soir.")

    async def reopened() -> list[tuple[Any, ...]] | None:
        steps = await steps_of(platform, patient, alert["id"])
        return steps if len(steps) == 2 else None

    assert [s[0] for s in await eventually(reopened)] == ["acknowledged", "reopened_by_finding"]


async def test_the_migration_gives_existing_alerts_the_steps_their_columns_tell(
    database_url: str, tmp_path: Path
) -> None:
    conn = await schema_before(database_url, "alerting", MIGRATIONS, "005", tmp_path)
    try:
        t = datetime(2026, 11, 23, 9, tzinfo=UTC)
        minutes = [t + timedelta(minutes=m) for m in range(6)]
        alerts = {name: uuid.uuid4() for name in ("open", "taken", "closed", "closed_untaken", "reopened")}
        insert = (
            "INSERT INTO alerts (id, patient_id, level, status, reasons, answered_by, rule_set, raised_at, updated_at, "
            "level_since, acknowledged_by, acknowledged_at, resolved_by, resolved_at, outcome, resolution_note, "
            "reopened_by, reopened_at) VALUES ($1, gen_random_uuid(), 'red', $2, '[]', 'patient', 'test', $11, $11, "
            "$11, $3, $4, $5, $6, $7, $8, $9, $10)"
        )
        a, m = alerts, minutes
        await conn.executemany(
            insert,
            [
                (a["open"], "open", None, None, None, None, None, None, None, None, m[0]),
                (a["taken"], "acknowledged", "karim", m[1], None, None, None, None, None, None, m[0]),
                (a["closed"], "resolved", "karim", m[1], "claire", m[2], "dose_modified", NOTE, None, None, m[0]),
                # Closed without being taken: the close made Claire its handler.
                (a["closed_untaken"], "resolved", "claire", m[2], "claire", m[2], "phone_call", None, None, None, m[0]),
                # Reopened by Claire (which made her its handler), then closed by Karim.
                (a["reopened"], "resolved", "claire", m[3], "karim", m[4], "advice_given", None, "claire", m[3], m[0]),
            ],
        )
        await apply_migrations(conn, "alerting", MIGRATIONS)
        rows = await conn.fetch(
            "SELECT alert_id, action, at, staff_id, outcome, note, reason FROM alert_steps ORDER BY id"
        )
    finally:
        await conn.close()
    steps: dict[str, list[tuple[Any, ...]]] = {name: [] for name in alerts}
    names = {v: k for k, v in alerts.items()}
    for r in rows:
        steps[names[r["alert_id"]]].append((r["action"], r["at"], r["staff_id"], r["outcome"], r["note"], r["reason"]))
    assert steps == {
        "open": [],
        "taken": [("acknowledged", m[1], "karim", None, None, None)],
        "closed": [
            ("acknowledged", m[1], "karim", None, None, None),
            ("resolved", m[2], "claire", "dose_modified", NOTE, None),
        ],
        "closed_untaken": [("resolved", m[2], "claire", "phone_call", None, None)],
        "reopened": [
            ("reopened", m[3], "claire", None, None, None),
            ("resolved", m[4], "karim", "advice_given", None, None),
        ],
    }
