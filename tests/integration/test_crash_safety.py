"""Nothing lost, nothing twice: real processes SIGKILLed at the worst moment, then restarted."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import orjson
import pytest

from shared.auth import TokenService
from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.services import ServiceProcess, start_together, stop_together
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

# Short redelivery delays so that a message whose ack was lost comes back within the test.
FAST_REDELIVERY = {"CONSUMER_BACKOFF_S": "2,2,4"}


async def _count(database_url: str, schema: str, sql: str) -> int:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def _stream_subjects(nats_url: str, stream: str) -> list[str]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        subjects = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            stored = await js.get_msg(stream, seq)
            assert stored.subject is not None  # a stored message always has its subject
            subjects.append(stored.subject)
        return subjects
    finally:
        await nc.close()


def _post_submission(
    url: str, tokens: TokenService, patient: uuid.UUID, key: str, body: bytes | None = None
) -> httpx.Response:
    token = tokens.issue_device_token(patient, "tablet-crash")
    return httpx.post(
        f"{url}/v1/submissions",
        content=body or orjson.dumps(questionnaire_response(RED_NAUSEA)),
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
        timeout=10,
    )


async def test_alerting_killed_after_commit_before_ack_still_makes_one_alert(
    service_env: dict[str, str], tokens: TokenService, tmp_path: Path
) -> None:
    marker = tmp_path / "alerting.killed"
    questionnaire = ServiceProcess("questionnaire", service_env, tmp_path)
    alerting = ServiceProcess(
        "alerting",
        {**service_env, **FAST_REDELIVERY, "FAULT_POINT": "consumer.after_commit", "FAULT_MARKER": str(marker)},
        tmp_path,
    )
    start_together(questionnaire, alerting)
    try:
        response = await asyncio.to_thread(
            _post_submission, questionnaire.url, tokens, uuid.uuid4(), "crash-after-commit-1"
        )
        assert response.status_code == 202
        assert await asyncio.to_thread(alerting.wait_killed) == -9
        assert marker.exists()
        # The effects were committed before the kill; the ack was never sent.
        db = service_env["DATABASE_URL"]
        assert await _count(db, "alerting", "SELECT count(*) FROM alerts") == 1

        alerting.start()  # same environment: the marker exists, so it runs normally

        async def acked() -> bool:
            nc = await nats.connect(service_env["NATS_URL"])
            try:
                info = await nc.jetstream().consumer_info("QUESTIONNAIRES", "alerting-questionnaire-submitted")
                # Delivered twice (consumer sequence 2 for one stream message), and acked in the end.
                return info.num_ack_pending == 0 and info.delivered.consumer_seq >= 2
            finally:
                await nc.close()

        await eventually(acked, within=20, interval=0.3)
        assert await _count(db, "alerting", "SELECT count(*) FROM alerts") == 1
        assert await _count(db, "alerting", "SELECT count(*) FROM scores") == 1
        assert await _count(db, "alerting", "SELECT count(*) FROM inbox") == 1

        async def raised_once() -> bool:
            return (await _stream_subjects(service_env["NATS_URL"], "ALERTS")).count("alert.raised") == 1

        await eventually(raised_once, within=10)
    finally:
        stop_together(alerting, questionnaire)


@pytest.mark.parametrize("point", ["outbox.before_publish", "outbox.after_publish"])
async def test_questionnaire_killed_between_commit_and_publish_delivers_once(
    point: str, service_env: dict[str, str], tokens: TokenService, tmp_path: Path
) -> None:
    marker = tmp_path / "questionnaire.killed"
    alerting = ServiceProcess("alerting", {**service_env, **FAST_REDELIVERY}, tmp_path)
    questionnaire = ServiceProcess(
        "questionnaire", {**service_env, "FAULT_POINT": point, "FAULT_MARKER": str(marker)}, tmp_path
    )
    start_together(alerting, questionnaire)
    patient = uuid.uuid4()
    body = orjson.dumps(questionnaire_response(RED_NAUSEA))  # a retry sends the same bytes
    try:
        try:
            first = await asyncio.to_thread(
                _post_submission, questionnaire.url, tokens, patient, "crash-outbox-01", body
            )
            assert first.status_code == 202
        except httpx.HTTPError:
            first = None  # killed before the 202 was written: the tablet will retry with the same key
        assert await asyncio.to_thread(questionnaire.wait_killed) == -9
        db = service_env["DATABASE_URL"]
        assert await _count(db, "questionnaire", "SELECT count(*) FROM submissions") == 1
        assert await _count(db, "questionnaire", "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 1

        questionnaire.start()
        retry = await asyncio.to_thread(_post_submission, questionnaire.url, tokens, patient, "crash-outbox-01", body)
        assert retry.status_code == 202
        if first is not None:
            assert retry.json()["id"] == first.json()["id"]

        async def published() -> bool:
            return await _count(db, "questionnaire", "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL") == 1

        await eventually(published, within=10)

        async def one_alert() -> bool:
            return await _count(db, "alerting", "SELECT count(*) FROM alerts") == 1

        await eventually(one_alert, within=10)
        await asyncio.sleep(0.5)
        assert await _stream_subjects(service_env["NATS_URL"], "QUESTIONNAIRES") == ["questionnaire.submitted"]
        assert await _count(db, "questionnaire", "SELECT count(*) FROM submissions") == 1
        assert await _count(db, "alerting", "SELECT count(*) FROM alerts") == 1
    finally:
        stop_together(questionnaire, alerting)


@pytest.mark.parametrize("point", ["outbox.before_publish", "outbox.after_publish"])
async def test_devices_killed_around_the_return_s_publish_still_revokes_the_token_once(
    point: str, service_env: dict[str, str], tokens: TokenService, tmp_path: Path
) -> None:
    questionnaire = ServiceProcess("questionnaire", {**service_env, **FAST_REDELIVERY}, tmp_path)
    devices = ServiceProcess("devices", service_env, tmp_path)
    start_together(questionnaire, devices)
    fleet = {"Authorization": f"Bearer {tokens.issue_staff_token('fleet-crash', {'fleet'})}"}
    try:
        async with httpx.AsyncClient(timeout=10, headers=fleet) as client:
            registered = await client.post(
                f"{devices.url}/v1/tablets",
                json={"serial_number": "CRASH-001", "model": "Tab", "accessories": [{"kind": "charger"}]},
            )
            tablet = registered.json()["id"]
            await client.post(f"{devices.url}/v1/tablets/{tablet}/actions/provision", json={})
            loan = await client.post(
                f"{devices.url}/v1/tablets/{tablet}/loan",
                json={
                    "patient_id": str(uuid.uuid4()),
                    "agreement": {"signed_at": datetime.now(UTC).isoformat(), "witnessed_by": "ide-1"},
                    "accessories": ["charger"],
                },
            )
            assert loan.status_code == 201, loan.text
            device = {"Authorization": f"Bearer {loan.json()['device_token']}"}

            # From now on the devices process kills itself at the named moment of its next publish.
            devices.stop()
            marker = tmp_path / "devices.killed"
            devices.env = {**service_env, "FAULT_POINT": point, "FAULT_MARKER": str(marker)}
            devices.start()
            try:
                returned = await client.post(
                    f"{devices.url}/v1/tablets/{tablet}/return",
                    json={"channel": "post", "accessories_returned": ["charger"]},
                )
                assert returned.status_code == 200
            except httpx.HTTPError:
                pass  # killed before the answer was written; the return was committed (checked below)
            assert await asyncio.to_thread(devices.wait_killed) == -9
            ended = "SELECT count(*) FROM loans WHERE ended_at IS NOT NULL"
            assert await _count(service_env["DATABASE_URL"], "devices", ended) == 1
            devices.start()

            async def rejected() -> bool:
                r = await client.get(f"{questionnaire.url}/v1/questionnaires", headers=device)
                return r.status_code == 401

            await eventually(rejected, within=15)
        db = service_env["DATABASE_URL"]
        await eventually(
            lambda: _equals(_count(db, "devices", "SELECT count(*) FROM outbox WHERE published_at IS NULL"), 0),
            within=10,
        )
        subjects = await _stream_subjects(service_env["NATS_URL"], "TABLETS")
        assert subjects == ["tablet.loaned", "tablet.returned"]
        assert await _count(db, "questionnaire", "SELECT count(*) FROM revoked_tokens") == 1
    finally:
        stop_together(devices, questionnaire)


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
