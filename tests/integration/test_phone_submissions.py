"""A nurse enters a patient's answers during a phone call (COPACOM): POST /v1/patients/{id}/submissions."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import pytest

from shared.testing.fhir import RED_NAUSEA, questionnaire_response

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def _phone(
    platform: Any,
    patient: uuid.UUID,
    body: bytes,
    *,
    key: str | Literal[False] | None = None,  # False: no Idempotency-Key at all; None: a new one
    nurse: str = "ide-claire",
    **kw: Any,
) -> Any:
    headers = {
        **kw.pop("auth", platform.staff("nurse", nurse)),
        "Content-Type": "application/fhir+json",
    }
    if key is not False:
        headers["Idempotency-Key"] = key or str(uuid.uuid4())
    return platform.questionnaire.post(f"/v1/patients/{patient}/submissions", content=body, headers=headers)


def _problem(response: Any, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    for word in words:
        assert word.lower() in problem["detail"].lower(), problem
    return problem


async def _nothing_stored_or_published(platform: Any) -> None:
    await asyncio.sleep(0.3)
    async with platform.questionnaire_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM submissions") == 0
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 0
        assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 0
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action <> 'submission.read'") == 0
    info = await platform.questionnaire_platform.js.stream_info("QUESTIONNAIRES")
    assert info.state.messages == 0


async def test_a_nurse_s_phone_answers_raise_an_alert_answered_by_nurse_phone_and_are_audited(platform: Any) -> None:
    patient = uuid.uuid4()
    js = platform.alerting_platform.js
    submitted = await js.subscribe("questionnaire.submitted", stream="QUESTIONNAIRES", ordered_consumer=True)
    raised = await js.subscribe("alert.raised", stream="ALERTS", ordered_consumer=True)

    response = await _phone(platform, patient, orjson.dumps(questionnaire_response(RED_NAUSEA)))
    assert response.status_code == 202, response.text
    submission_id = response.json()["id"]
    assert response.headers["location"] == f"/v1/submissions/{submission_id}"
    assert response.json()["status"] == "received"

    event = orjson.loads((await submitted.next_msg(timeout=5)).data)["data"]
    assert (event["patient_id"], event["answered_by"], event["recorded_by"]) == (
        str(patient),
        "nurse_phone",
        "ide-claire",
    )
    alert = orjson.loads((await raised.next_msg(timeout=5)).data)["data"]
    assert (alert["patient_id"], alert["level"], alert["answered_by"]) == (str(patient), "red", "nurse_phone")
    assert alert["submission_id"] == submission_id
    detail = await platform.alerting.get(f"/v1/alerts/{alert['alert_id']}", headers=platform.staff())
    assert detail.json()["answered_by"] == "nurse_phone"
    # Which nurse took the answers, for her colleagues: on the alert's submission and in the patient's timeline.
    assert [(s["answered_by"], s["recorded_by"]) for s in detail.json()["submissions"]] == [
        ("nurse_phone", "ide-claire")
    ]
    timeline = await platform.alerting.get(f"/v1/patients/{patient}/timeline", headers=platform.staff())
    assert [(s["answered_by"], s["recorded_by"]) for s in timeline.json()["submissions"]] == [
        ("nurse_phone", "ide-claire")
    ]

    async with platform.questionnaire_platform.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT patient_id, answered_by, recorded_by, response FROM submissions WHERE id = $1",
            uuid.UUID(submission_id),
        )
        audit = await conn.fetch("SELECT actor, roles, action, resource, patient_id FROM audit_log")
    assert (row["patient_id"], row["answered_by"], row["recorded_by"]) == (patient, "nurse_phone", "ide-claire")
    # The stored response says who answered, as the export gives it.
    assert row["response"]["source"] == {"reference": "Practitioner/ide-claire"}
    assert [tuple(a) for a in audit] == [
        ("ide-claire", ["nurse"], "submission.create", f"submission/{submission_id}", patient)
    ]


async def test_a_source_naming_the_calling_nurse_is_taken(platform: Any) -> None:
    patient = uuid.uuid4()
    body = questionnaire_response(RED_NAUSEA, patient_id=patient, source="Practitioner/ide-claire")
    response = await _phone(platform, patient, orjson.dumps(body))
    assert response.status_code == 202, response.text


async def test_a_retry_with_the_same_key_gets_the_same_answer_and_creates_nothing(platform: Any) -> None:
    patient = uuid.uuid4()
    body = orjson.dumps(questionnaire_response(RED_NAUSEA))
    first, second = await asyncio.gather(
        _phone(platform, patient, body, key="phone-call-0001"), _phone(platform, patient, body, key="phone-call-0001")
    )
    third = await _phone(platform, patient, body, key="phone-call-0001")
    assert first.status_code == second.status_code == third.status_code == 202
    assert first.json() == second.json() == third.json()
    other = await _phone(
        platform, patient, orjson.dumps(questionnaire_response({"nausea.frequency": "0"})), key="phone-call-0001"
    )
    _problem(other, 422, "Idempotency-Key")
    async with platform.questionnaire_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM submissions") == 1
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 1
        actions = await conn.fetch("SELECT action FROM audit_log ORDER BY id")
    # The replays showed the submission's id again: each is in the patient's trail.
    assert sorted(a["action"] for a in actions) == ["response.replay", "response.replay", "submission.create"]


@pytest.mark.parametrize(
    ("change", "status", "words", "kind"),
    [
        ({"source": {"reference": "RelatedPerson/daughter"}}, 422, ["source", "tablet"], "invalid-source"),
        ({"source": {"reference": "Patient/" + str(uuid.UUID(int=1))}}, 422, ["source"], "invalid-source"),
        ({"source": {"reference": "Practitioner/someone-else"}}, 422, ["Practitioner/ide-claire"], "invalid-source"),
        ({"source": "Practitioner/ide-claire"}, 422, ["source"], "invalid-source"),
        (
            {"subject": {"reference": "Patient/" + str(uuid.UUID(int=2))}},
            422,
            ["subject", "another patient"],
            "wrong-patient",
        ),
        (
            {"item": [{"linkId": "nausea.frequency", "answer": [{"valueCoding": {"code": "7"}}]}]},
            422,
            ["7"],
            "invalid-questionnaire-response",
        ),
        (
            {"questionnaire": "https://elsewhere.example/Questionnaire/x|1"},
            422,
            ["questionnaire"],
            "unknown-questionnaire",
        ),
        ({"resourceType": "Patient"}, 422, ["QuestionnaireResponse"], "invalid-questionnaire-response"),
        # The computer's clock wrong: the answers dated an hour ahead, or more than a year back.
        (
            {"authored": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
            422,
            ["more than 5 minutes in the future"],
            "in-the-future",
        ),
        (
            {"authored": (datetime.now(UTC) - timedelta(days=400)).isoformat()},
            422,
            ["more than a year ago"],
            "too-far-in-the-past",
        ),
    ],
    ids=[
        "relative-source",
        "patient-source",
        "another-practitioner",
        "source-not-a-reference",
        "another-subject",
        "answer-outside-options",
        "unknown-questionnaire",
        "wrong-resource",
        "authored-in-the-future",
        "authored-more-than-a-year-ago",
    ],
)
async def test_bad_input_is_refused_with_nothing_stored(
    platform: Any, change: dict[str, Any], status: int, words: list[str], kind: str
) -> None:
    body = {**questionnaire_response(RED_NAUSEA), **change}
    response = await _phone(platform, uuid.uuid4(), orjson.dumps(body))
    problem = _problem(response, status, *words)
    assert problem["type"] == f"https://oncofollow.example/problems/{kind}", problem
    await _nothing_stored_or_published(platform)


async def test_callers_and_keys_that_are_refused(platform: Any) -> None:
    patient = uuid.uuid4()
    body = orjson.dumps(questionnaire_response(RED_NAUSEA))
    _problem(await _phone(platform, patient, body, auth={}), 401, "bearer token")
    _problem(await _phone(platform, patient, body, auth=platform.device(patient)), 403, "staff token")
    _problem(await _phone(platform, patient, body, auth=platform.staff("fleet")), 403, "nurse")
    _problem(await _phone(platform, patient, body, key=False), 400, "Idempotency-Key")
    _problem(await _phone(platform, patient, body, key="short"), 400, "Idempotency-Key")
    _problem(await _phone(platform, patient, b'{"resourceType": ', key=None), 400, "JSON")
    not_a_patient = await platform.questionnaire.post(
        "/v1/patients/not-a-uuid/submissions",
        content=body,
        headers={**platform.staff("nurse"), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert not_a_patient.status_code == 422, not_a_patient.text
    await _nothing_stored_or_published(platform)


async def test_a_tablet_may_no_longer_answer_as_a_practitioner(platform: Any) -> None:
    patient = uuid.uuid4()
    for source in ("Practitioner/nurse-42", "PractitionerRole/ide-coordination"):
        body = orjson.dumps(questionnaire_response(RED_NAUSEA, source=source))
        response = await platform.questionnaire.post(
            "/v1/submissions",
            content=body,
            headers={**platform.device(patient), "Idempotency-Key": str(uuid.uuid4())},
        )
        problem = _problem(response, 422, "tablet", "relative", "/v1/patients/{patient_id}/submissions")
        assert problem["pointer"] == "/source/reference"
    await _nothing_stored_or_published(platform)


# ------------------------------------------------------------------------------------------------ export

FHIR = "application/fhir+json"


async def _tablet_submission(platform: Any, patient: uuid.UUID, **kw: Any) -> str:
    response = await platform.questionnaire.post(
        "/v1/submissions",
        content=orjson.dumps(questionnaire_response(RED_NAUSEA, **kw)),
        headers={**platform.device(patient), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def _export(platform: Any, submission_id: str, auth: dict[str, str], accept: str = FHIR) -> Any:
    return await platform.questionnaire.get(f"/v1/submissions/{submission_id}", headers={**auth, "Accept": accept})


async def test_staff_export_a_submission_as_the_fhir_questionnaire_response_with_who_answered(platform: Any) -> None:
    patient = uuid.uuid4()
    by_patient = await _tablet_submission(platform, patient)
    by_relative = await _tablet_submission(platform, patient, source="RelatedPerson/daughter")
    phoned = await _phone(platform, patient, orjson.dumps(questionnaire_response(RED_NAUSEA)))
    by_phone = phoned.json()["id"]

    sources = {}
    for submission_id in (by_patient, by_relative, by_phone):
        response = await _export(platform, submission_id, platform.staff("nurse", "ide-karim"))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(FHIR)
        assert "accept" in response.headers["vary"].lower()
        resource = response.json()
        assert resource["resourceType"] == "QuestionnaireResponse"
        assert resource["id"] == submission_id
        assert resource["subject"] == {"reference": f"Patient/{patient}"}
        assert resource["questionnaire"].endswith("reconnect-symptoms|1.0.0")
        assert resource["status"] == "completed"
        assert [i["linkId"] for i in resource["item"]] == ["nausea.frequency", "nausea.severity"]
        sources[submission_id] = resource["source"]
    assert sources == {
        by_patient: {"reference": f"Patient/{patient}"},
        by_relative: {"reference": "RelatedPerson/daughter"},
        by_phone: {"reference": "Practitioner/ide-claire"},
    }
    admin = await _export(platform, by_patient, platform.staff("admin", "admin-1"))
    assert admin.status_code == 200, admin.text

    # Each export is in the patient's trail.
    async with platform.questionnaire_platform.pool.acquire() as conn:
        exports = await conn.fetch(
            "SELECT actor, resource, patient_id FROM audit_log WHERE action = 'submission.export' ORDER BY id"
        )
    assert [tuple(e) for e in exports] == [
        ("ide-karim", f"submission/{s}", patient) for s in (by_patient, by_relative, by_phone)
    ] + [("admin-1", f"submission/{by_patient}", patient)]


async def test_the_status_view_is_unchanged_and_the_export_is_for_staff_only(platform: Any) -> None:
    patient = uuid.uuid4()
    submission_id = await _tablet_submission(platform, patient)
    # The tablet's status view, whatever it accepts but the FHIR type.
    for accept in ("application/json", "*/*", ""):
        view = await _export(platform, submission_id, platform.device(patient), accept=accept)
        assert view.status_code == 200, view.text
        assert view.json()["status_label"]
        assert view.headers["content-type"].startswith("application/json")
    nurse_view = await _export(platform, submission_id, platform.staff("nurse"), accept="application/json")
    assert nurse_view.json()["answered_by"] == "patient"
    # The patient's tablet does not export (a hospital system does, with a staff token).
    _problem(await _export(platform, submission_id, platform.device(patient)), 403, "staff")
    _problem(await _export(platform, submission_id, platform.staff("fleet")), 403, "nurse", "admin")
    _problem(await _export(platform, str(uuid.uuid4()), platform.staff("nurse")), 404)
    # The admin still does not read the status view (unchanged: nurses only).
    _problem(await _export(platform, submission_id, platform.staff("admin"), accept="application/json"), 403, "nurse")
