"""Privacy properties that hold across the services' APIs, against the real NATS and PostgreSQL: what no cache may
keep, what no browser may sniff, and what no refusal may repeat."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from fastapi import APIRouter

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from shared.auth import TokenService
from shared.testing.fhir import CALM, questionnaire_response
from shared.testing.services import served

pytestmark = pytest.mark.integration


async def _submit_calm(platform: Any, tablet: dict[str, str]) -> httpx.Response:
    submitted: httpx.Response = await platform.questionnaire.post(
        "/v1/submissions",
        content=orjson.dumps(questionnaire_response(CALM)),
        headers={**tablet, "Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/fhir+json"},
    )
    assert submitted.status_code == 202, submitted.text
    return submitted


def _never_cached(response: httpx.Response) -> None:
    assert response.headers.get("cache-control") == "no-store", (response.request.url, response.headers)


async def test_no_answer_with_patient_data_may_be_kept_by_a_cache(platform: Any) -> None:
    patient = uuid.uuid4()
    tablet = platform.device(patient)
    submitted = await _submit_calm(platform, tablet)
    _never_cached(submitted)
    submission = submitted.json()["id"]
    nurse = platform.staff("nurse")
    for response in (
        await platform.questionnaire.get(f"/v1/submissions/{submission}", headers=tablet),
        await platform.questionnaire.get(
            f"/v1/submissions/{submission}", headers={**nurse, "Accept": "application/fhir+json"}
        ),
        await platform.alerting.get("/v1/alerts", headers=nurse),
        await platform.alerting.get(f"/v1/patients/{patient}/timeline", headers=nurse),
        await platform.alerting.get(f"/v1/alerts/{uuid.uuid4()}", headers=nurse),  # a refusal too
        await platform.alerting.get("/v1/audit", headers=platform.staff("admin", "admin-1")),
    ):
        assert response.status_code in (200, 404), response.text
        _never_cached(response)


async def test_a_loan_answer_holding_the_device_token_may_not_be_kept_by_a_cache(
    devices: tuple[httpx.AsyncClient, Any], tokens: TokenService
) -> None:
    client, _ = devices
    fleet = {"Authorization": f"Bearer {tokens.issue_staff_token('fleet-1', {'fleet'})}"}
    registered = await client.post(
        "/v1/tablets",
        json={"serial_number": f"R52-{uuid.uuid4().hex[:10]}", "model": "Galaxy Tab A9", "accessories": []},
        headers=fleet,
    )
    tablet = registered.json()["id"]
    assert (await client.post(f"/v1/tablets/{tablet}/actions/provision", json={}, headers=fleet)).status_code == 200
    loaned = await client.post(
        f"/v1/tablets/{tablet}/loan",
        json={
            "patient_id": str(uuid.uuid4()),
            "agreement": {"signed_at": datetime.now(UTC).isoformat(), "witnessed_by": "ide-martin"},
            "accessories": [],
        },
        headers=fleet,
    )
    assert loaned.status_code == 201, loaned.text
    assert loaned.json()["device_token"]
    _never_cached(loaned)
    listed = await client.get("/v1/tablets", headers=fleet)
    assert listed.status_code == 200
    _never_cached(listed)


def _never_sniffed(response: httpx.Response) -> None:
    assert response.headers.get_list("x-content-type-options") == ["nosniff"], (response.request.url, response.headers)


async def test_no_answer_of_any_kind_may_have_its_type_sniffed(platform: Any) -> None:
    # A browser that sniffs may run as a script or show as a page what was sent as JSON: a problem's detail, a
    # patient's export. The pages and photos had the header; every other answer had none.
    patient = uuid.uuid4()
    tablet = platform.device(patient)
    submitted = await _submit_calm(platform, tablet)
    nurse = platform.staff("nurse")
    fhir = {**nurse, "Accept": "application/fhir+json"}
    answers = [
        submitted,
        await platform.questionnaire.get(f"/v1/submissions/{submitted.json()['id']}", headers=fhir),  # the export
        await platform.questionnaire.get("/v1/questionnaires", headers=tablet),
        await platform.questionnaire.post("/v1/submissions", content=b"{", headers=tablet),  # 400 problem
        await platform.alerting.get("/v1/alerts", headers=nurse),
        await platform.alerting.get("/v1/alerts"),  # 401 problem
        await platform.alerting.get(f"/v1/alerts/{uuid.uuid4()}", headers=nurse),  # 404 problem
        await platform.alerting.post("/v1/alerts/stream-token", headers=nurse),
        await platform.alerting.get("/nowhere"),
        await platform.alerting.get("/healthz"),
        await platform.alerting.get("/openapi.json"),
        await platform.alerting.get("/dashboard/"),  # the page's own header, once
    ]
    assert [a.status_code for a in answers] == [202, 200, 200, 400, 200, 401, 404, 200, 404, 200, 200, 200]
    for answer in answers:
        _never_sniffed(answer)


async def test_the_live_stream_and_an_unexpected_failure_are_not_sniffed_either(
    service_env: dict[str, str], tokens: TokenService
) -> None:
    failing = APIRouter()

    @failing.get("/v1/failing")
    async def fail() -> None:
        raise RuntimeError("a bug")

    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    service = build_alerting(AlertingSettings(**env))
    service = dataclasses.replace(service, routers=(*service.routers, failing))
    nurse = {"Authorization": f"Bearer {tokens.issue_staff_token('nurse-1', {'nurse'})}"}
    async with served(service) as (url, _), httpx.AsyncClient(base_url=url, timeout=10) as client:
        async with client.stream("GET", "/v1/alerts/stream", headers=nurse) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            _never_sniffed(stream)
        crashed = await client.get("/v1/failing")  # the 500 of Starlette's outermost middleware
        assert crashed.status_code == 500
        _never_sniffed(crashed)


# What a patient might write where a code was expected: her words, and a relative's name.
WORDS = "J'ai très mal au ventre depuis hier soir"
NAME = "Marie Dupont, sa fille"


def _free_text_where_codes_go() -> list[tuple[str, dict[str, Any]]]:
    as_answer = questionnaire_response(CALM)
    as_answer["item"][0]["answer"] = [{"valueString": WORDS}]
    as_code = questionnaire_response(CALM)
    as_code["item"][0]["answer"] = [{"valueCoding": {"code": WORDS}}]
    as_source = questionnaire_response(CALM, source=f"RelatedPerson/{NAME}")
    as_source["source"] = {"reference": NAME}
    as_link = questionnaire_response(CALM)
    as_link["item"][0]["linkId"] = WORDS
    as_questionnaire = questionnaire_response(CALM, questionnaire=WORDS)
    as_authored = questionnaire_response(CALM)
    as_authored["authored"] = WORDS
    as_value_key = questionnaire_response(CALM)
    as_value_key["item"][0]["answer"] = [{f"value {WORDS}": "oui"}]
    return [
        ("answer", as_answer),
        ("code", as_code),
        ("source", as_source),
        ("linkId", as_link),
        ("questionnaire", as_questionnaire),
        ("authored", as_authored),
        ("value[x] key", as_value_key),
    ]


async def test_a_refused_submission_never_repeats_what_the_patient_wrote(platform: Any) -> None:
    patient = uuid.uuid4()
    for where, body in _free_text_where_codes_go():
        for path, headers in (
            ("/v1/submissions", platform.device(patient)),
            (f"/v1/patients/{patient}/submissions", platform.staff("nurse")),
        ):
            refused = await platform.questionnaire.post(
                path,
                content=orjson.dumps(body),
                headers={**headers, "Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/fhir+json"},
            )
            assert refused.status_code == 422, refused.text
            assert refused.json()["pointer"], refused.text  # where to look instead
            for text in (WORDS, NAME, "très mal", "Dupont"):
                assert text not in refused.text, (where, path, refused.text)
    async with platform.questionnaire_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM submissions WHERE patient_id = $1", patient) == 0


async def test_an_unexpected_key_is_named_only_when_it_looks_like_a_field_s_name(
    platform: Any, devices: tuple[httpx.AsyncClient, Any], tokens: TokenService
) -> None:
    # A key is the client's text too: one that holds words was repeated in the refusal's detail and pointer.
    fleet = {"Authorization": f"Bearer {tokens.issue_staff_token('fleet-1', {'fleet'})}"}
    tablet = {**platform.device(uuid.uuid4()), "Idempotency-Key": str(uuid.uuid4())}
    tablet_body = {"serial_number": "R52W70ABCDE", "model": "Galaxy Tab A9", "accessories": []}
    for extra in (WORDS, NAME):
        for service, path, body, headers in (
            (platform.alerting, f"/v1/alerts/{uuid.uuid4()}/resolve", {"outcome": "phone_call"}, platform.staff()),
            (platform.questionnaire, "/v1/messages", {"text": "J'ai de la fièvre"}, tablet),
            (devices[0], "/v1/tablets", tablet_body, fleet),
        ):
            refused = await service.post(path, json={**body, extra: "x"}, headers=headers)
            assert refused.status_code == 422, refused.text
            for text in (WORDS, NAME, "très mal", "Dupont"):
                assert text not in refused.text, (path, refused.text)
            problem = refused.json()
            pointers = [problem["pointer"]] if "pointer" in problem else [e["pointer"] for e in problem["errors"]]
            assert pointers == ["/"], refused.text  # where to look: the body's own keys
            assert f"a text of {len(extra)} characters (not repeated here)" in refused.json()["detail"]
    # A misspelt field's name is named: the caller sees what to correct.
    misspelt = await platform.alerting.post(
        f"/v1/alerts/{uuid.uuid4()}/resolve",
        json={"outcome": "phone_call", "outcom_note": "x"},
        headers=platform.staff(),
    )
    assert misspelt.status_code == 422
    assert misspelt.json()["errors"][0]["pointer"] == "/outcom_note" and "/outcom_note" in misspelt.json()["detail"]
    async with devices[1].pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tablets") == 0


async def test_words_sent_where_an_id_goes_are_described_not_one_letter_of_them_quoted(
    platform: Any, devices: tuple[httpx.AsyncClient, Any], tokens: TokenService
) -> None:
    # The UUID parser's message said what it found where it stopped ("found `J` at 0"): a letter of what was
    # written, a refusal that differed with the words. Whatever was written, the refusal is now the same.
    admin = platform.staff("admin", "admin-1")
    tablet = {**platform.device(uuid.uuid4()), "Idempotency-Key": str(uuid.uuid4())}
    fleet = {"Authorization": f"Bearer {tokens.issue_staff_token('fleet-1', {'fleet'})}"}
    loan_path = f"/v1/tablets/{uuid.uuid4()}/loan"
    requests = {
        "audit filter": lambda text: platform.alerting.get("/v1/audit", params={"patient_id": text}, headers=admin),
        "photo id": lambda text: platform.questionnaire.post(
            "/v1/messages", json={"text": "bonjour", "photo_ids": [text]}, headers=tablet
        ),
        "loan's patient": lambda text: devices[0].post(loan_path, json={"patient_id": text}, headers=fleet),
    }
    for where, send in requests.items():
        problems = []
        for written in (WORDS, NAME):
            refused = await send(written)
            assert refused.status_code == 422, refused.text
            for text in (WORDS, NAME, "très mal", "Dupont"):
                assert text not in refused.text, (where, refused.text)
            assert "UUID" in refused.json()["detail"], refused.text  # what was expected there
            problems.append(refused.json())
        assert problems[0] == problems[1], (where, problems)
    async with platform.questionnaire_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM messages") == 0
    async with devices[1].pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM loans") == 0
