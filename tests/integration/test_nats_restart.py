"""NATS down and back: tablets keep getting 202s (the outbox holds the events), nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest

from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration


async def test_submissions_during_a_nats_outage_are_delivered_once_it_is_back(platform: Any, nats: Any) -> None:
    _, server = nats
    if server is None:
        pytest.skip("needs the embedded NATS server (TEST_NATS_URL points at a server this test cannot restart)")
    server.stop()
    patients = [uuid.uuid4() for _ in range(3)]
    for patient in patients:
        response = await platform.questionnaire.post(
            "/v1/submissions",
            content=orjson.dumps(questionnaire_response(RED_NAUSEA)),
            headers={**platform.device(patient), "Idempotency-Key": str(uuid.uuid4())},
        )
        assert response.status_code == 202  # committed, with its event in the outbox
    async with platform.questionnaire_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 3

    await asyncio.sleep(1.0)
    server.start()

    async def all_alerts() -> bool:
        items = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
        return sorted(a["patient_id"] for a in items) == sorted(map(str, patients))

    await eventually(all_alerts, within=30, interval=0.2)
    await asyncio.sleep(1.0)
    js = platform.questionnaire_platform.js
    assert (await js.stream_info("QUESTIONNAIRES")).state.messages == 3
    async with platform.alerting_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM alerts") == 3
        assert await conn.fetchval("SELECT count(*) FROM scores") == 3
