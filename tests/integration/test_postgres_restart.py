"""PostgreSQL down and back: tablets get a 503 they can retry, events already on NATS wait for the database
instead of being dead-lettered, and afterwards nothing is lost and nothing is twice."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from nats.js.api import Header

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.devservers import EmbeddedPostgres
from shared.events.questionnaire import TermAnswer
from shared.testing.events import questionnaire_submitted
from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.services import in_process
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

# Short redelivery delays, so that the outage below outlasts every delivery the consumer would be allowed.
BACKOFF = "1,1"


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A server of this test's own, since the test stops it (the session's server is shared)."""
    pytest.importorskip("pgserver", reason="needs the embedded PostgreSQL (the pgserver wheel) to restart it")
    workdir = Path(tempfile.mkdtemp(prefix="oncofollow-test-pg-restart-"))
    server = EmbeddedPostgres(workdir / "pg").start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


class Services:
    def __init__(self, questionnaire: httpx.AsyncClient, alerting: httpx.AsyncClient, q: Any, tokens: TokenService):
        self.questionnaire = questionnaire
        self.alerting = alerting
        self.js = q.js
        self.tokens = tokens

    def device(self, patient: uuid.UUID) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue_device_token(patient, 'tablet-test')}"}

    def staff(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue_staff_token('nurse-1', {'nurse'})}"}

    async def submit(self, patient: uuid.UUID, key: str) -> httpx.Response:
        return await self.questionnaire.post(
            "/v1/submissions",
            content=orjson.dumps(questionnaire_response(RED_NAUSEA)),
            headers={**self.device(patient), "Idempotency-Key": key},
        )

    async def alerted_patients(self) -> list[str]:
        response = await self.alerting.get("/v1/alerts", headers=self.staff())
        if response.status_code != 200:
            return []
        return sorted(a["patient_id"] for a in response.json()["items"])


@pytest.fixture
async def services(own_postgres: EmbeddedPostgres, nats_url: str, tokens: TokenService) -> AsyncIterator[Services]:
    env: dict[str, Any] = {"NATS_URL": nats_url, "DATABASE_URL": own_postgres.url, "CONSUMER_BACKOFF_S": BACKOFF}
    async with (
        in_process(build_questionnaire(QuestionnaireSettings(**env))) as (q_client, q_platform),
        in_process(build_alerting(AlertingSettings(**env))) as (a_client, _),
    ):
        yield Services(q_client, a_client, q_platform, tokens)


def _submitted_elsewhere(patient: uuid.UUID) -> bytes:
    """A submission the questionnaire service committed and published just before the database went away."""
    return questionnaire_submitted(TermAnswer(term="nausea", frequency=3, severity=3), patient_id=patient).to_json()


async def test_a_postgresql_restart_loses_nothing_and_duplicates_nothing(
    services: Services, own_postgres: EmbeddedPostgres
) -> None:
    before, on_nats, during = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert (await services.submit(before, "key-before")).status_code == 202
    await eventually(lambda: _has(services, [before]), within=15, interval=0.1)

    own_postgres.stop()
    await services.js.publish(
        "questionnaire.submitted", _submitted_elsewhere(on_nats), headers={Header.MSG_ID: str(uuid.uuid4())}
    )
    refused = await services.submit(during, "key-during")
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["retry-after"].isdigit()
    assert "Idempotency-Key" in refused.json()["detail"]
    nurse = await services.alerting.get("/v1/alerts", headers=services.staff())
    assert nurse.status_code == 503, nurse.text
    assert (await services.alerting.get("/readyz")).status_code == 503

    # Longer than the consumer's deliveries (1 s and 1 s apart) would last if each one counted.
    await asyncio.sleep(6.0)
    own_postgres.start()

    async def accepted() -> bool:
        return (await services.submit(during, "key-during")).status_code == 202

    await eventually(accepted, within=15, interval=0.25)
    await eventually(lambda: _has(services, [before, on_nats, during]), within=20, interval=0.2)
    await asyncio.sleep(1.0)  # anything twice would have arrived by now
    assert await services.alerted_patients() == sorted(map(str, (before, on_nats, during)))
    assert (await services.js.stream_info("QUESTIONNAIRES")).state.messages == 3
    with pytest.raises(Exception, match="no message found"):
        await services.js.get_last_msg("DEAD_LETTERS", "dlq.questionnaire.submitted")
    assert (await services.alerting.get("/readyz")).status_code == 200


async def _has(services: Services, patients: list[uuid.UUID]) -> bool:
    return await services.alerted_patients() == sorted(map(str, patients))


async def test_a_failover_to_a_read_only_standby_is_a_503_to_retry_not_a_500(
    services: Services, own_postgres: EmbeddedPostgres
) -> None:
    # After a failover the pool may reach a standby: it answers, but refuses every write. The tablet is told to
    # retry later, as during a restart; nothing is stored; the same request goes through once writes are back.
    admin = await asyncpg.connect(own_postgres.url)  # opened first, so its own session stays read-write
    database = await admin.fetchval("SELECT current_database()")
    patient = uuid.uuid4()
    try:
        await admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )

        response = await services.submit(patient, "key-read-only")
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["retry-after"].isdigit()
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        await admin.close()
    stored = await eventually(lambda: _accepted(services, patient), within=15, interval=0.2)
    assert stored.status_code == 202, stored.text


async def _accepted(services: Services, patient: uuid.UUID) -> httpx.Response | None:
    response = await services.submit(patient, "key-read-only")
    return response if response.status_code == 202 else None
