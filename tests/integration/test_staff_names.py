"""Names beside ids: the alerting service keeps the display name a staff member's token carries (never in events)
and shows it beside the ids its alert views hold; its dashboard config hands the page the identity provider's
sign-in endpoints, and its pages' Content-Security-Policy lets the page reach the provider's token endpoint."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.oidc import AUTH_PATH, LOGOUT_PATH, TOKEN_PATH, FakeIdentityProvider, SigningKey
from shared.testing.services import in_process
from shared.testing.waiting import eventually
from tests.integration.test_nurse_workflow import open_alert

pytestmark = pytest.mark.integration


def bearer(platform: Any, staff_id: str, name: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.tokens.issue_staff_token(staff_id, {'nurse'}, name=name)}"}


async def test_an_alert_taken_by_a_named_nurse_shows_her_name_and_an_unnamed_one_her_id(
    platform: Any, service_env: dict[str, str]
) -> None:
    claire, anonymous = bearer(platform, "f3c1-opaque", "Claire Martin"), bearer(platform, "7a2b-opaque")
    first = await open_alert(platform, uuid.uuid4())
    second = await open_alert(platform, uuid.uuid4())

    taken = await platform.alerting.post(f"/v1/alerts/{first['id']}/ack", headers=claire)
    assert taken.status_code == 200, taken.text
    assert (taken.json()["acknowledged_by"], taken.json()["acknowledged_by_name"]) == ("f3c1-opaque", "Claire Martin")
    other = (await platform.alerting.post(f"/v1/alerts/{second['id']}/ack", headers=anonymous)).json()
    assert (other["acknowledged_by"], other["acknowledged_by_name"]) == ("7a2b-opaque", None)

    listed = {a["id"]: a for a in (await platform.alerting.get("/v1/alerts", headers=anonymous)).json()["items"]}
    assert listed[first["id"]]["acknowledged_by_name"] == "Claire Martin"
    assert listed[second["id"]]["acknowledged_by_name"] is None
    one = (await platform.alerting.get(f"/v1/alerts/{first['id']}", headers=anonymous)).json()
    assert one["acknowledged_by_name"] == "Claire Martin"

    closed = await platform.alerting.post(
        f"/v1/alerts/{first['id']}/resolve", headers=anonymous, json={"outcome": "advice_given"}
    )
    assert closed.status_code == 200, closed.text
    assert (closed.json()["resolved_by_name"], closed.json()["acknowledged_by_name"]) == (None, "Claire Martin")
    reopened = (await platform.alerting.post(f"/v1/alerts/{first['id']}/reopen", headers=claire, json={})).json()
    assert reopened["reopened_by_name"] == "Claire Martin"
    timeline = (await platform.alerting.get(f"/v1/patients/{first['patient_id']}/timeline", headers=anonymous)).json()
    assert timeline["alerts"][0]["reopened_by_name"] == "Claire Martin"
    steps = [(step["action"], step["staff_id"], step["staff_name"]) for step in timeline["alerts"][0]["steps"]]
    assert steps == [
        ("acknowledged", "f3c1-opaque", "Claire Martin"),
        ("resolved", "7a2b-opaque", None),
        ("reopened", "f3c1-opaque", "Claire Martin"),
    ]

    me = (await platform.alerting.get("/v1/me", headers=claire)).json()
    assert (me["staff_id"], me["name"]) == ("f3c1-opaque", "Claire Martin")

    conn = await asyncpg.connect(service_env["DATABASE_URL"], server_settings={"search_path": "alerting"})
    try:
        events = await conn.fetch("SELECT convert_from(body, 'UTF8') AS payload FROM outbox")
    finally:
        await conn.close()
    assert events and not any("Claire" in row["payload"] for row in events)  # events carry ids only


@pytest.fixture
async def provider_alerting(service_env: dict[str, str]) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    with FakeIdentityProvider() as idp:
        idp.enable_sign_in(
            SigningKey.rsa("k1"),
            client_id="oncofollow-dashboard",
            redirect_uri="http://127.0.0.1:8002/dashboard/",
            audience="oncofollow-api",
            user={"sub": "x"},
        )
        settings = AlertingSettings(
            NATS_URL=service_env["NATS_URL"],
            DATABASE_URL=service_env["DATABASE_URL"],
            STAFF_TOKEN_ISSUER=idp.issuer,
            STAFF_TOKEN_AUDIENCE="oncofollow-api",
            DASHBOARD_OIDC_CLIENT_ID="oncofollow-dashboard",
            DASHBOARD_OIDC_SCOPES="openid profile offline_access",
        )
        async with in_process(build_alerting(settings)) as (client, _):
            yield client, idp


async def test_the_config_hands_the_page_the_provider_s_endpoints_and_the_policy_allows_its_token_endpoint(
    provider_alerting: tuple[httpx.AsyncClient, Any],
) -> None:
    client, idp = provider_alerting
    config = (await client.get("/v1/dashboard/config")).json()
    assert config["provider_sign_in"] == {
        "issuer": idp.issuer,
        "client_id": "oncofollow-dashboard",
        "scopes": "openid profile offline_access",
        "authorization_endpoint": idp.base + AUTH_PATH,
        "token_endpoint": idp.base + TOKEN_PATH,
        "end_session_endpoint": idp.base + LOGOUT_PATH,
    }
    assert config["provider_unavailable"] is False
    page = await client.get("/dashboard/")
    policy = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    assert policy["connect-src"] == f"'self' http://127.0.0.1:8001 {idp.base}"
    assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'self'"


async def test_a_provider_out_of_reach_leaves_the_button_unavailable_and_the_policy_naming_its_issuer_only(
    service_env: dict[str, str],
) -> None:
    idp = FakeIdentityProvider()  # not started: nothing listens on its port
    settings = AlertingSettings(
        NATS_URL=service_env["NATS_URL"],
        DATABASE_URL=service_env["DATABASE_URL"],
        STAFF_TOKEN_ISSUER=idp.issuer,
        STAFF_TOKEN_AUDIENCE="oncofollow-api",
        DASHBOARD_OIDC_CLIENT_ID="oncofollow-dashboard",
    )
    async with in_process(build_alerting(settings)) as (client, _):
        config = (await client.get("/v1/dashboard/config")).json()
        assert (config["provider_sign_in"], config["provider_unavailable"]) == (None, True)
        assert (config["provider_origin"], config["provider_recheck_s"]) == (idp.base, 30.0)
        # The configured issuer's origin, where its token endpoint will almost surely be once it is back.
        policy = (await client.get("/dashboard/")).headers["content-security-policy"]
        assert f"connect-src 'self' http://127.0.0.1:8001 {idp.base};" in policy


async def test_the_nurse_who_took_answers_by_phone_and_who_expects_a_symptom_are_shown_by_name(platform: Any) -> None:
    claire, anonymous = bearer(platform, "f3c1-opaque", "Claire Martin"), bearer(platform, "7a2b-opaque")
    assert (await platform.alerting.get("/v1/me", headers=claire)).status_code == 200  # her sign-in: her name known
    patient = uuid.uuid4()
    phoned = await platform.questionnaire.post(
        f"/v1/patients/{patient}/submissions",
        content=orjson.dumps(questionnaire_response(RED_NAUSEA)),
        headers={**claire, "Content-Type": "application/fhir+json", "Idempotency-Key": str(uuid.uuid4())},
    )
    assert phoned.status_code == 202, phoned.text

    async def raised() -> Any:
        items = (await platform.alerting.get("/v1/alerts", headers=anonymous)).json()["items"]
        return next((a for a in items if a["patient_id"] == str(patient)), None)

    alert = await eventually(raised)
    detail = (await platform.alerting.get(f"/v1/alerts/{alert['id']}", headers=anonymous)).json()
    assert [(s["recorded_by"], s["recorded_by_name"]) for s in detail["submissions"]] == [
        ("f3c1-opaque", "Claire Martin")
    ]

    expected = await platform.alerting.put(
        f"/v1/patients/{patient}/expected-levels/nausea", headers=claire, json={"grade": 2, "until": _in_days(3)}
    )
    assert expected.status_code == 200, expected.text
    assert (expected.json()["set_by"], expected.json()["set_by_name"]) == ("f3c1-opaque", "Claire Martin")
    timeline = (await platform.alerting.get(f"/v1/patients/{patient}/timeline", headers=anonymous)).json()
    assert [(s["recorded_by"], s["recorded_by_name"]) for s in timeline["submissions"]] == [
        ("f3c1-opaque", "Claire Martin")
    ]
    assert [(e["set_by"], e["set_by_name"]) for e in timeline["expected_levels"]] == [("f3c1-opaque", "Claire Martin")]

    # A colleague whose token names nobody: her id, no name.
    again = await platform.alerting.put(
        f"/v1/patients/{patient}/expected-levels/nausea", headers=anonymous, json={"grade": 1, "until": _in_days(2)}
    )
    assert (again.json()["set_by"], again.json()["set_by_name"]) == ("7a2b-opaque", None)


def _in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()
