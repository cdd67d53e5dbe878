"""The nurse dashboard (alerting, another origin) posts to the questionnaire service: CORS for its origins only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.services import in_process

pytestmark = pytest.mark.integration

DASHBOARD = "http://127.0.0.1:8002"


@pytest.fixture
async def services(service_env: dict[str, str]) -> AsyncIterator[tuple[Any, Any]]:
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    q_settings = QuestionnaireSettings(**env, DASHBOARD_ORIGINS=DASHBOARD)
    a_settings = AlertingSettings(**env, QUESTIONNAIRE_PUBLIC_URL="http://127.0.0.1:8001/")
    async with (
        in_process(build_questionnaire(q_settings)) as (questionnaire, _),
        in_process(build_alerting(a_settings)) as (alerting, _),
    ):
        yield questionnaire, alerting


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }


async def test_the_dashboard_s_origin_may_post_a_phone_submission(services: Any, tokens: TokenService) -> None:
    questionnaire, _ = services
    path = f"/v1/patients/{uuid.uuid4()}/submissions"
    preflight = await questionnaire.options(path, headers=_preflight(DASHBOARD))
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == DASHBOARD
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "idempotency-key"} <= {h.strip() for h in allowed.split(",")}
    assert "access-control-allow-credentials" not in preflight.headers  # bearer tokens, never cookies

    nurse = tokens.issue_staff_token("ide-claire", {"nurse"})
    posted = await questionnaire.post(
        path,
        content=orjson.dumps(questionnaire_response(RED_NAUSEA)),
        headers={
            "Origin": DASHBOARD,
            "Authorization": f"Bearer {nurse}",
            "Idempotency-Key": str(uuid.uuid4()),
            "Content-Type": "application/fhir+json",
        },
    )
    assert posted.status_code == 202, posted.text
    assert posted.headers["access-control-allow-origin"] == DASHBOARD
    assert "location" in posted.headers["access-control-expose-headers"].lower()
    # A refusal is readable by the page too, so that it can say why.
    refused = await questionnaire.post(path, content=b"{}", headers={"Origin": DASHBOARD})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == DASHBOARD


async def test_other_origins_get_no_cors_headers(services: Any) -> None:
    questionnaire, _ = services
    path = f"/v1/patients/{uuid.uuid4()}/submissions"
    preflight = await questionnaire.options(path, headers=_preflight("https://evil.example"))
    assert "access-control-allow-origin" not in preflight.headers
    answer = await questionnaire.get("/v1/questionnaires", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers


async def test_the_dashboard_is_told_where_the_questionnaire_service_is(services: Any) -> None:
    _, alerting = services
    config = await alerting.get("/v1/dashboard/config")
    assert config.json()["questionnaire_url"] == "http://127.0.0.1:8001"
