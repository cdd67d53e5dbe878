"""A loan's one-time enrolment code against real NATS and PostgreSQL: the link holds a short code, not the token;
the tablet exchanges it once; a spent, expired, unknown or ended-loan code is refused and writes nothing; a new code
kills the last; only the code's hash is stored."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.devices.enrolment import ALPHABET, CODE_LENGTH
from services.devices.main import DevicesSettings
from services.devices.main import build_service as build_devices
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.http.problems import PROBLEM_TYPE_BASE
from shared.testing.services import in_process
from tests.integration.test_devices import Fleet, bearer, segno_svg

pytestmark = pytest.mark.integration

TABLET_ORIGIN = "http://127.0.0.1:8001"


@pytest.fixture
async def fleet(service_env: dict[str, str], tokens: TokenService) -> AsyncIterator[Fleet]:
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    d_settings = DevicesSettings(**env, SILENCE_CHECK_S="3600", TABLET_ORIGINS=TABLET_ORIGIN)
    q_settings = QuestionnaireSettings(**env)
    async with (
        in_process(build_devices(d_settings)) as (d_client, d_platform),
        in_process(build_questionnaire(q_settings)) as (q_client, _),
    ):
        yield Fleet(d_client, q_client, d_platform, tokens)


def code_of(url: str) -> str:
    prefix = f"{TABLET_ORIGIN}/tablet/#enrol="
    assert url.startswith(prefix), url
    return url.removeprefix(prefix)


async def loaned(fleet: Fleet) -> tuple[str, dict[str, Any]]:
    tablet = await fleet.ready_tablet()
    granted = await fleet.loan(tablet, uuid.uuid4())
    assert granted.status_code == 201, granted.text
    return tablet, granted.json()


async def exchange(fleet: Fleet, code: str, key: str | None = None) -> httpx.Response:
    headers = {"Origin": TABLET_ORIGIN, **({"Idempotency-Key": key} if key else {})}
    return await fleet.devices.post("/v1/enrolments", json={"code": code}, headers=headers)


async def written(fleet: Fleet) -> tuple[Any, ...]:
    async with fleet.devices_platform.pool.acquire() as conn:
        return tuple(
            await conn.fetchrow(
                "SELECT (SELECT count(*) FROM audit_log), (SELECT count(*) FROM outbox), "
                "(SELECT array_agg((loan_id, used_at)::text ORDER BY loan_id) FROM enrolment_codes)"
            )
        )


def refused(response: httpx.Response, status: int, kind: str, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == PROBLEM_TYPE_BASE + kind
    assert words in response.json()["detail"]


async def test_the_loan_link_holds_a_short_code_exchanged_once_for_the_token_and_only_its_hash_is_stored(
    fleet: Fleet,
) -> None:
    tablet, granted = await loaned(fleet)
    url = granted["enrolment_url"]
    code = code_of(url)
    assert len(code) == CODE_LENGTH and set(code) <= set(ALPHABET)
    assert granted["device_token"] not in url and "device_token" not in url
    assert granted["enrolment_qr_svg"] == segno_svg(url)
    made = datetime.fromisoformat(granted["enrolment_expires_at"])
    assert timedelta(minutes=29) < made - datetime.now(UTC) <= timedelta(minutes=30)
    async with fleet.devices_platform.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM enrolment_codes WHERE loan_id = $1", uuid.UUID(granted["loan"]["id"]))
        whole = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM enrolment_codes t")
    assert row["code_hash"] == hashlib.sha256(code.encode()).digest()
    assert code not in whole and code.lower() not in whole

    first = await exchange(fleet, code)
    assert first.status_code == 200, first.text
    assert first.headers["access-control-allow-origin"] == TABLET_ORIGIN
    token = first.json()["device_token"]
    assert token == granted["device_token"]  # the loan's very token
    assert (await fleet.questionnaire.get("/v1/questionnaires", headers=bearer(token))).status_code == 200
    async with fleet.devices_platform.pool.acquire() as conn:
        trail = await conn.fetch(
            "SELECT actor, action, patient_id FROM audit_log WHERE resource = $1", f"loan/{granted['loan']['id']}"
        )
    assert [(r["actor"], r["action"], str(r["patient_id"])) for r in trail] == [
        (f"device:{tablet}", "tablet.enrol", granted["loan"]["patient_id"])
    ]

    before = await written(fleet)
    refused(await exchange(fleet, code), 410, "code-used", "already been used")
    # Typed in lower case with dashes, it is the same code, and still spent.
    refused(await exchange(fleet, "-".join([code[:6], code[6:12], code[12:]]).lower()), 410, "code-used", "new code")
    assert await written(fleet) == before


async def test_a_retry_with_the_same_key_gets_the_token_again_and_another_tablet_does_not(fleet: Fleet) -> None:
    _, granted = await loaned(fleet)
    code = code_of(granted["enrolment_url"])
    key = f"enrol-{uuid.uuid4()}"
    assert (await exchange(fleet, code, key)).status_code == 200
    again = await exchange(fleet, code, key)
    assert again.status_code == 200, again.text
    assert again.json()["device_token"] == granted["device_token"]
    refused(await exchange(fleet, code, f"enrol-{uuid.uuid4()}"), 410, "code-used", "already been used")
    # After the retry window, the same key is refused too.
    async with fleet.devices_platform.pool.acquire() as conn:
        await conn.execute("UPDATE enrolment_codes SET used_at = used_at - interval '3 minutes'")
    refused(await exchange(fleet, code, key), 410, "code-used", "already been used")


async def test_expired_unknown_and_ended_loan_codes_are_refused_and_write_nothing(fleet: Fleet) -> None:
    tablet, granted = await loaned(fleet)
    code = code_of(granted["enrolment_url"])
    loan_id = uuid.UUID(granted["loan"]["id"])
    async with fleet.devices_platform.pool.acquire() as conn:
        await conn.execute(
            "UPDATE enrolment_codes SET made_at = made_at - interval '31 minutes', "
            "expires_at = expires_at - interval '31 minutes' WHERE loan_id = $1",
            loan_id,
        )
    before = await written(fleet)
    refused(await exchange(fleet, code), 410, "code-expired", "has expired")
    refused(await exchange(fleet, "0" * CODE_LENGTH), 404, "unknown-code", "not known")
    refused(await exchange(fleet, "not a code"), 404, "unknown-code", "not known")
    bad = await fleet.devices.post("/v1/enrolments", json={"code": ""})
    assert bad.status_code == 422, bad.text
    assert await written(fleet) == before

    _, other = await loaned(fleet)
    other_code = code_of(other["enrolment_url"])
    returned = await fleet.devices.post(
        f"/v1/tablets/{other['tablet']['id']}/return",
        json={"channel": "day_hospital", "accessories_returned": ["charger", "cable", "manual"]},
        headers=fleet.staff(),
    )
    assert returned.status_code == 200, returned.text
    before = await written(fleet)
    refused(await exchange(fleet, other_code), 410, "loan-ended", "has ended")
    assert await written(fleet) == before
    assert tablet


async def test_a_new_code_kills_the_last_and_is_for_open_loans_and_the_fleet_only(fleet: Fleet) -> None:
    _, granted = await loaned(fleet)
    loan_id = granted["loan"]["id"]
    old = code_of(granted["enrolment_url"])
    headers = {**fleet.staff(), "Idempotency-Key": f"code-{uuid.uuid4()}"}
    made = await fleet.devices.post(f"/v1/loans/{loan_id}/enrolment-code", headers=headers)
    assert made.status_code == 201, made.text
    new = code_of(made.json()["enrolment_url"])
    assert new != old and made.json()["enrolment_qr_svg"] == segno_svg(made.json()["enrolment_url"])
    refused(await exchange(fleet, old), 404, "unknown-code", "not known")
    # The same request again (its answer lost) makes a code again: the one in the lost answer stops working.
    again = await fleet.devices.post(f"/v1/loans/{loan_id}/enrolment-code", headers=headers)
    assert again.status_code == 201, again.text
    newest = code_of(again.json()["enrolment_url"])
    refused(await exchange(fleet, new), 404, "unknown-code", "not known")
    assert (await exchange(fleet, newest)).json()["device_token"] == granted["device_token"]
    async with fleet.devices_platform.pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT response::text FROM idempotency_keys WHERE key = $1", headers["Idempotency-Key"]
        )
        actions = await conn.fetch("SELECT action FROM audit_log WHERE resource = $1", f"loan/{loan_id}")
    assert newest not in stored and new not in stored and "enrol=" not in stored
    # Each code made is in the patient's trail, the retry's too; and the exchange.
    assert sorted(r["action"] for r in actions) == ["loan.enrolment_code", "loan.enrolment_code", "tablet.enrol"]

    nurse = await fleet.devices.post(f"/v1/loans/{loan_id}/enrolment-code", headers=fleet.staff("nurse"))
    assert nurse.status_code == 403
    unknown = await fleet.devices.post(f"/v1/loans/{uuid.uuid4()}/enrolment-code", headers=fleet.staff())
    refused(unknown, 404, "unknown-loan", "no loan")
    await fleet.devices.post(
        f"/v1/tablets/{granted['tablet']['id']}/lost", json={"stolen": False}, headers=fleet.staff()
    )
    refused(await exchange(fleet, newest), 410, "loan-ended", "has ended")
    before = await written(fleet)
    ended = await fleet.devices.post(f"/v1/loans/{loan_id}/enrolment-code", headers=fleet.staff())
    refused(ended, 409, "loan-ended", "has ended")
    assert await written(fleet) == before


async def test_a_retried_loan_gets_the_same_token_and_a_new_code(fleet: Fleet) -> None:
    tablet = await fleet.ready_tablet()
    body = {
        "patient_id": str(uuid.uuid4()),
        "agreement": {"signed_at": datetime.now(UTC).isoformat(), "witnessed_by": "ide-martin"},
        "accessories": ["charger"],
    }
    headers = {**fleet.staff(), "Idempotency-Key": f"loan-{uuid.uuid4()}"}
    first = (await fleet.devices.post(f"/v1/tablets/{tablet}/loan", json=body, headers=headers)).json()
    again = (await fleet.devices.post(f"/v1/tablets/{tablet}/loan", json=body, headers=headers)).json()
    assert again["device_token"] == first["device_token"]
    refused(await exchange(fleet, code_of(first["enrolment_url"])), 404, "unknown-code", "not known")
    async with fleet.devices_platform.pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT response::text FROM idempotency_keys WHERE key = $1", headers["Idempotency-Key"]
        )
    assert "enrol" not in stored and "device_token" not in stored
    # Two tablets racing with one code: one gets the token, the other a spent code.
    racing = await asyncio.gather(*(exchange(fleet, code_of(again["enrolment_url"])) for _ in range(2)))
    assert sorted(r.status_code for r in racing) == [200, 410]
