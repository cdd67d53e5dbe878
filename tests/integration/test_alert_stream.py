"""The live alert stream: SSE ids are JetStream sequences, and Last-Event-ID replays exactly what was missed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from services.alerting.main import AlertingSettings
from services.alerting.main import build_service as build_alerting
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.services import ServiceProcess, in_process, served
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration


async def _events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    event: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            event[field] = value.lstrip(" ")


async def _read(url: str, headers: dict[str, str], count: int) -> list[dict[str, str]]:
    received: list[dict[str, str]] = []
    async with httpx.AsyncClient(timeout=10) as client, client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event in _events(response):
            received.append(event)
            if len(received) == count:
                break
    return received


@contextlib.asynccontextmanager
async def _tablet_and_alerting(service_env: dict[str, str]) -> AsyncIterator[tuple[httpx.AsyncClient, str, Any]]:
    """The questionnaire service in process (its tablet client), and the alerting service served over HTTP."""
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    async with (
        in_process(build_questionnaire(QuestionnaireSettings(**env))) as (tablet, _),
        served(build_alerting(AlertingSettings(**env))) as (alerting_url, alerting),
    ):
        yield tablet, alerting_url, alerting


async def _submit(tablet: httpx.AsyncClient, tokens: TokenService, patient: uuid.UUID) -> None:
    """A red questionnaire from the patient's tablet."""
    r = await tablet.post(
        "/v1/submissions",
        content=orjson.dumps(questionnaire_response(RED_NAUSEA)),
        headers={
            "Authorization": f"Bearer {tokens.issue_device_token(patient, 't')}",
            "Idempotency-Key": str(uuid.uuid4()),
        },
    )
    assert r.status_code == 202


async def _listening(alerting: Any, streams: int) -> None:
    """Until ``streams`` live streams are following the alert feed: an alert raised from then on reaches them."""

    async def followed() -> bool:
        return bool(alerting.extras["alert_feed"].clients >= streams)

    await eventually(followed)


async def test_reconnect_with_last_event_id_gets_exactly_the_missed_alerts(
    service_env: dict[str, str], tokens: TokenService
) -> None:
    nurse = {"Authorization": f"Bearer {tokens.issue_staff_token('nurse-sse', {'nurse'})}"}
    async with _tablet_and_alerting(service_env) as (tablet, alerting_url, alerting):
        stream_url = f"{alerting_url}/v1/alerts/stream"
        patients = [uuid.uuid4() for _ in range(4)]

        first_two = asyncio.create_task(_read(stream_url, nurse, 2))
        await _listening(alerting, 1)  # the stream is open before the alerts are raised
        for patient in patients[:2]:
            await _submit(tablet, tokens, patient)
        seen = await asyncio.wait_for(first_two, 10)
        assert [e["event"] for e in seen] == ["alert.raised", "alert.raised"]
        assert [orjson.loads(e["data"])["data"]["patient_id"] for e in seen] == [str(p) for p in patients[:2]]

        # Disconnected: two more alerts are raised meanwhile.
        for patient in patients[2:]:
            await _submit(tablet, tokens, patient)
        await asyncio.sleep(1.0)

        last_id = seen[-1]["id"]
        resumed = await asyncio.wait_for(_read(stream_url, {**nurse, "Last-Event-ID": last_id}, 2), 10)
        assert [orjson.loads(e["data"])["data"]["patient_id"] for e in resumed] == [str(p) for p in patients[2:]]
        assert [int(e["id"]) for e in resumed] == sorted(int(e["id"]) for e in resumed)
        assert int(resumed[0]["id"]) > int(last_id)

        # Nothing else was pending: a third read from the last id sees no more alert.raised within a second.
        extra = asyncio.create_task(_read(stream_url, {**nurse, "Last-Event-ID": resumed[-1]["id"]}, 1))
        await asyncio.sleep(1.0)
        assert not extra.done()
        extra.cancel()

        refused = await httpx.AsyncClient().get(stream_url)
        assert refused.status_code == 401
        for wrong in ("yesterday", "\u00b2", "9" * 5000, str(2**64)):  # "²".isdigit() is True in Python
            bad = await httpx.AsyncClient().get(stream_url, params={"since": wrong}, headers=nurse)
            assert bad.status_code == 400, (wrong[:20], bad.text)
        bad = await httpx.AsyncClient().get(stream_url, headers={**nurse, "Last-Event-ID": "yesterday"})
        assert bad.status_code == 400


async def test_a_live_stream_ends_when_the_sign_in_that_opened_it_does(
    service_env: dict[str, str], tokens: TokenService
) -> None:
    # Staff tokens cannot be revoked: their expiry is what ends an access, a live one included.
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    async with served(build_alerting(AlertingSettings(**env))) as (alerting_url, _):
        async with httpx.AsyncClient(base_url=alerting_url, timeout=10) as client:
            for through in ("stream token", "bearer"):
                short = {"Authorization": f"Bearer {tokens.issue_staff_token('nurse-brief', {'nurse'}, ttl_s=3)}"}
                if through == "stream token":
                    stream_token = (await client.post("/v1/alerts/stream-token", headers=short)).json()["token"]
                    opened = client.stream("GET", "/v1/alerts/stream", params={"stream_token": stream_token})
                else:
                    opened = client.stream("GET", "/v1/alerts/stream", headers=short)
                started = asyncio.get_running_loop().time()
                async with opened as response:
                    assert response.status_code == 200
                    await asyncio.wait_for(_drained(response), 10)  # the server ends the response
                assert asyncio.get_running_loop().time() - started < 6


async def _drained(response: httpx.Response) -> None:
    async for _ in response.aiter_bytes():
        pass


async def test_stopping_the_service_ends_its_live_streams_at_once_and_cleanly(
    service_env: dict[str, str], tokens: TokenService, tmp_path: Path
) -> None:
    # Uvicorn waits for open connections before the service's own shutdown, and cancels them at its
    # graceful-shutdown timeout (5 s here) with a traceback each: a stream must end when the stop is asked for.
    alerting = ServiceProcess("alerting", service_env, tmp_path).start()
    nurse = {"Authorization": f"Bearer {tokens.issue_staff_token('nurse-stop', {'nurse'})}"}
    try:
        async with (
            httpx.AsyncClient(base_url=alerting.url, timeout=10) as client,
            client.stream("GET", "/v1/alerts/stream", headers=nurse) as response,
        ):
            assert response.status_code == 200
            await asyncio.sleep(0.3)
            assert alerting.process is not None
            alerting.process.send_signal(signal.SIGTERM)
            started = asyncio.get_running_loop().time()
            await asyncio.wait_for(_drained(response), 10)
            assert asyncio.get_running_loop().time() - started < 3
        # Uvicorn ends a clean shutdown by raising the signal it caught again: -SIGTERM is a clean stop.
        assert await asyncio.to_thread(alerting.process.wait, 10) in (0, -signal.SIGTERM)
        log = alerting.log_tail(20_000)
        assert "Traceback" not in log and "Exception in ASGI application" not in log, log
    finally:
        alerting.stop()


async def test_every_patient_a_live_stream_shows_is_in_the_nurse_s_trail_before_she_sees_it(
    service_env: dict[str, str], tokens: TokenService
) -> None:
    nurse = {"Authorization": f"Bearer {tokens.issue_staff_token('nurse-trail', {'nurse'})}"}
    async with _tablet_and_alerting(service_env) as (tablet, alerting_url, alerting):
        stream_url = f"{alerting_url}/v1/alerts/stream"
        patient = uuid.uuid4()

        async def streamed_accesses() -> int:
            async with alerting.pool.acquire() as conn:
                return int(
                    await conn.fetchval(
                        "SELECT count(*) FROM audit_log WHERE actor = 'nurse-trail' AND action = 'alerts.stream' "
                        "AND resource = 'alerts' AND patient_id = $1",
                        patient,
                    )
                )

        live = asyncio.create_task(_read(stream_url, nurse, 1))
        await _listening(alerting, 1)  # the stream is open before the alert is raised
        await _submit(tablet, tokens, patient)
        (shown,) = await asyncio.wait_for(live, 10)
        assert orjson.loads(shown["data"])["data"]["patient_id"] == str(patient)
        assert await streamed_accesses() == 1  # written before the event was sent, not after

        # Shown again on a replay: audited again.
        before = str(int(shown["id"]) - 1)
        (replayed,) = await asyncio.wait_for(_read(stream_url, {**nurse, "Last-Event-ID": before}, 1), 10)
        assert replayed["id"] == shown["id"]
        assert await streamed_accesses() == 2


async def _opening(client: httpx.AsyncClient, url: str, token: str, **params: str) -> tuple[int, Any]:
    """Opens the stream at ``url`` with a stream token and closes it at once: its status, and its problem if any."""
    async with client.stream("GET", f"{url}/v1/alerts/stream", params={"stream_token": token, **params}) as response:
        if response.status_code == 200:
            return 200, None
        return response.status_code, orjson.loads(await response.aread())


async def test_a_stream_token_opens_one_stream_once_whichever_replica_it_reaches(
    service_env: dict[str, str], tokens: TokenService
) -> None:
    # It travels in a URL (proxy logs, the browser's history): within its 60 s it opened a stream as often as
    # anyone who had read it asked, on any replica.
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    nurse = {"Authorization": f"Bearer {tokens.issue_staff_token('nurse-once', {'nurse'})}"}
    async with (
        served(build_alerting(AlertingSettings(**env))) as (first, _),
        served(build_alerting(AlertingSettings(**env))) as (second, _),
        httpx.AsyncClient(timeout=10) as client,
    ):

        async def new_token() -> str:
            issued = await client.post(f"{first}/v1/alerts/stream-token", headers=nurse)
            assert issued.status_code == 200, issued.text
            return str(issued.json()["token"])

        token = await new_token()
        # A refused opening (a malformed position) does not use the token up.
        assert (await _opening(client, first, token, since="yesterday"))[0] == 400
        assert await _opening(client, first, token) == (200, None)
        for replica in (first, second):
            status, problem = await _opening(client, replica, token)
            assert status == 401, problem
            assert problem["type"].endswith("/stream-token-used")
            assert "POST /v1/alerts/stream-token" in problem["detail"]

        # A reconnection asks for a new token, as the dashboard does: it opens, on the other replica too.
        assert await _opening(client, second, await new_token()) == (200, None)

        # Two openings at once with one token, on two replicas: one stream.
        racing = await new_token()
        opened = await asyncio.gather(_opening(client, first, racing), _opening(client, second, racing))
        assert sorted(status for status, _ in opened) == [200, 401]

    conn = await asyncpg.connect(service_env["DATABASE_URL"], server_settings={"search_path": "alerting"})
    try:
        openings = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'alerts.stream' AND actor = 'nurse-once'"
        )
    finally:
        await conn.close()
    assert openings == 3  # each stream opened, as before; a refused opening leaves no row
