"""The tablet fleet against real NATS and PostgreSQL: loans issue tokens, returns revoke them, heartbeats,
silences reported once, racing loans, and every refusal a clear 4xx that changes nothing."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import nats.errors
import orjson
import pytest
import segno

from services.devices.domain import SilencePolicy
from services.devices.main import DevicesSettings
from services.devices.main import build_service as build_devices
from services.devices.silence import report_silent_tablets
from services.questionnaire.main import QuestionnaireSettings
from services.questionnaire.main import build_service as build_questionnaire
from shared.auth import TokenService
from shared.db.pool import apply_migrations
from shared.events.catalog import make_event
from shared.events.inclusion import SessionScheduledV1
from shared.http.problems import PROBLEM_TYPE_BASE
from shared.testing.fhir import CALM, questionnaire_response
from shared.testing.migrations import schema_before
from shared.testing.services import in_process
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

ALL_ACCESSORIES = ["charger", "cable", "case", "sim", "manual"]
MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "devices" / "migrations"


@dataclass
class Fleet:
    devices: httpx.AsyncClient
    questionnaire: httpx.AsyncClient
    devices_platform: Any
    tokens: TokenService

    def staff(self, role: str = "fleet", staff_id: str = "fleet-1") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue_staff_token(staff_id, {role})}"}

    async def register(self, accessories: list[str] = ALL_ACCESSORIES) -> str:
        body = {
            "serial_number": f"R52-{uuid.uuid4().hex[:10]}",
            "model": "Galaxy Tab A9",
            "accessories": [{"kind": k} for k in accessories],
        }
        response = await self.devices.post("/v1/tablets", json=body, headers=self.staff())
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def step(self, tablet: str, action: str) -> httpx.Response:
        return await self.devices.post(f"/v1/tablets/{tablet}/actions/{action}", json={}, headers=self.staff())

    async def ready_tablet(self) -> str:
        tablet = await self.register()
        assert (await self.step(tablet, "provision")).status_code == 200
        return tablet

    async def loan(self, tablet: str, patient: uuid.UUID, **extra: Any) -> httpx.Response:
        body = {
            "patient_id": str(patient),
            "agreement": {"signed_at": datetime.now(UTC).isoformat(), "witnessed_by": "ide-martin"},
            "accessories": ["charger", "cable", "manual"],
            **extra,
        }
        return await self.devices.post(f"/v1/tablets/{tablet}/loan", json=body, headers=self.staff())

    async def state(self, tablet: str) -> str:
        response = await self.devices.get(f"/v1/tablets/{tablet}", headers=self.staff())
        return str(response.json()["state"])


@pytest.fixture
async def fleet(service_env: dict[str, str], tokens: TokenService) -> AsyncIterator[Fleet]:
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    # The scheduled silence check is driven by the tests (with their own clock), not by the service.
    d_settings = DevicesSettings(**env, SILENCE_CHECK_S="3600")
    q_settings = QuestionnaireSettings(**env)
    async with (
        in_process(build_devices(d_settings)) as (d_client, d_platform),
        in_process(build_questionnaire(q_settings)) as (q_client, _),
    ):
        yield Fleet(d_client, q_client, d_platform, tokens)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def submit(fleet: Fleet, token: str) -> httpx.Response:
    return await fleet.questionnaire.post(
        "/v1/submissions",
        content=orjson.dumps(questionnaire_response(CALM)),
        headers={**bearer(token), "Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/fhir+json"},
    )


def heartbeat(at: datetime | None = None, battery: int = 80) -> dict[str, Any]:
    return {"battery_percent": battery, "app_version": "1.4.2", "sent_at": (at or datetime.now(UTC)).isoformat()}


async def test_loan_issues_a_token_and_a_return_revokes_it_in_the_questionnaire_service(fleet: Fleet) -> None:
    js = fleet.devices_platform.js
    events = await js.subscribe("tablet.>", stream="TABLETS", ordered_consumer=True)
    patient = uuid.uuid4()
    tablet = await fleet.ready_tablet()

    loan = await fleet.loan(tablet, patient)
    assert loan.status_code == 201, loan.text
    granted = loan.json()
    token = granted["device_token"]
    assert granted["tablet"]["state"] == "loaned"
    assert granted["loan"]["patient_id"] == str(patient)
    assert granted["loan"]["return_status"] == "on_time"
    loaned = orjson.loads((await events.next_msg(timeout=5)).data)
    assert loaned["type"] == "tablet.loaned"
    assert loaned["data"]["tablet_id"] == tablet and loaned["data"]["patient_id"] == str(patient)

    assert (await submit(fleet, token)).status_code == 202
    assert (await fleet.devices.post("/v1/heartbeats", json=heartbeat(), headers=bearer(token))).status_code == 204

    returned = await fleet.devices.post(
        f"/v1/tablets/{tablet}/return",
        json={"channel": "day_hospital", "accessories_returned": ["charger", "manual"]},
        headers=fleet.staff(),
    )
    assert returned.status_code == 200, returned.text
    assert returned.json()["missing_accessories"] == ["cable"]
    started = time.monotonic()
    event = orjson.loads((await events.next_msg(timeout=5)).data)
    assert event["type"] == "tablet.returned"
    assert event["data"]["token_id"] == loaned["data"]["token_id"]
    assert event["data"]["missing_accessories"] == ["cable"]

    async def rejected() -> bool:
        return (await submit(fleet, token)).status_code == 401

    assert await eventually(rejected, within=2.0), "the questionnaire service still accepts a returned tablet"
    assert time.monotonic() - started < 2.0
    refused = await fleet.devices.post("/v1/heartbeats", json=heartbeat(), headers=bearer(token))
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"

    # The missing cable stays open on the loan until it comes back.
    figures = (await fleet.devices.get("/v1/fleet", headers=fleet.staff("arc", "arc-1"))).json()
    assert figures["missing_accessories"] == 1
    back = await fleet.devices.post(
        f"/v1/loans/{granted['loan']['id']}/accessories", json={"accessories": ["cable"]}, headers=fleet.staff()
    )
    assert back.json()["missing_accessories"] == []


async def test_a_tablet_goes_round_the_whole_lifecycle_with_every_step_in_its_history(fleet: Fleet) -> None:
    tablet = await fleet.ready_tablet()
    first = await fleet.loan(tablet, uuid.uuid4())
    assert first.status_code == 201
    await fleet.devices.post(
        f"/v1/tablets/{tablet}/return",
        json={"channel": "post", "accessories_returned": ["charger", "cable", "manual"]},
        headers=fleet.staff(),
    )
    # Not wiped: it cannot be made ready, nor loaned.
    refused = await fleet.step(tablet, "make_ready")
    assert refused.status_code == 409
    assert "wipe" in refused.json()["detail"]
    assert (await fleet.loan(tablet, uuid.uuid4())).status_code == 409

    assert (await fleet.step(tablet, "request_wipe")).status_code == 200
    wiped = await fleet.devices.post(
        f"/v1/tablets/{tablet}/wipe", json={"method": "mdm_remote_wipe", "proof": "MDM-job-4411"}, headers=fleet.staff()
    )
    assert wiped.status_code == 200, wiped.text
    assert (await fleet.step(tablet, "make_ready")).status_code == 200
    second_patient = uuid.uuid4()
    assert (await fleet.loan(tablet, second_patient)).status_code == 201

    detail = (await fleet.devices.get(f"/v1/tablets/{tablet}", headers=fleet.staff("nurse", "ide-1"))).json()
    # The history shows both borrowers: both patients' audit trails show that ide-1 saw it.
    async with fleet.devices_platform.pool.acquire() as conn:
        audited = await conn.fetch("SELECT patient_id FROM audit_log WHERE action = 'tablet.read' AND actor = 'ide-1'")
    assert {r["patient_id"] for r in audited} == {uuid.UUID(first.json()["loan"]["patient_id"]), second_patient}
    assert [t["action"] for t in detail["transitions"]] == [
        "provision",
        "loan",
        "return",
        "request_wipe",
        "record_wipe",
        "make_ready",
        "loan",
    ]
    assert all(t["by_staff"] == "fleet-1" for t in detail["transitions"])
    assert detail["wipes"][0]["proof"] == "MDM-job-4411"
    assert len(detail["loans"]) == 2 and detail["loan"]["ended_at"] is None


async def test_lost_tablet_token_is_revoked(fleet: Fleet) -> None:
    tablet = await fleet.ready_tablet()
    token = (await fleet.loan(tablet, uuid.uuid4())).json()["device_token"]
    lost = await fleet.devices.post(f"/v1/tablets/{tablet}/lost", json={"stolen": True}, headers=fleet.staff())
    assert lost.status_code == 200 and lost.json()["state"] == "stolen"

    async def rejected() -> bool:
        return (await submit(fleet, token)).status_code == 401

    assert await eventually(rejected, within=2.0)


async def test_two_loans_of_one_tablet_racing_give_one_loan_and_one_409(fleet: Fleet) -> None:
    tablet = await fleet.ready_tablet()
    first, second = await asyncio.gather(fleet.loan(tablet, uuid.uuid4()), fleet.loan(tablet, uuid.uuid4()))
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    loser = first if first.status_code == 409 else second
    assert loser.json()["detail"].startswith("A tablet that is on loan cannot be loaned")
    detail = (await fleet.devices.get(f"/v1/tablets/{tablet}", headers=fleet.staff())).json()
    assert len(detail["loans"]) == 1
    async with fleet.devices_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE subject = 'tablet.loaned'") == 1


async def test_a_retried_loan_with_the_same_key_returns_the_same_loan(fleet: Fleet) -> None:
    tablet = await fleet.ready_tablet()
    body: dict[str, Any] = {
        "patient_id": str(uuid.uuid4()),
        "agreement": {"signed_at": datetime.now(UTC).isoformat(), "witnessed_by": "ide-martin"},
        "accessories": ["charger"],
    }
    headers = {**fleet.staff(), "Idempotency-Key": f"loan-{uuid.uuid4()}"}
    first, again = [await fleet.devices.post(f"/v1/tablets/{tablet}/loan", json=body, headers=headers) for _ in "12"]
    assert first.status_code == again.status_code == 201
    one, two = first.json(), again.json()
    assert {k: v for k, v in one.items() if k != "device_token"} == {
        k: v for k, v in two.items() if k != "device_token"
    }
    # The same token identity (one loan, one revocation), signed again: the stored answer never holds it.
    assert fleet.tokens.verify(two["device_token"]).token_id == one["token_id"]
    assert (await submit(fleet, two["device_token"])).status_code == 202
    async with fleet.devices_platform.pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT response::text FROM idempotency_keys WHERE key = $1", headers["Idempotency-Key"]
        )
    assert one["token_id"] in stored and one["device_token"] not in stored and "device_token" not in stored
    # The replay showed the patient's loan (and signed its token) again: the patient's trail shows it too.
    async with fleet.devices_platform.pool.acquire() as conn:
        trail = await conn.fetch(
            "SELECT action, resource, actor FROM audit_log WHERE patient_id = $1 ORDER BY id",
            uuid.UUID(body["patient_id"]),
        )
    assert [(r["action"], r["resource"], r["actor"]) for r in trail] == [
        ("tablet.loan", f"tablet/{tablet}", "fleet-1"),
        ("response.replay", f"POST /v1/tablets/{tablet}/loan", "fleet-1"),
    ]
    other = await fleet.devices.post(
        f"/v1/tablets/{tablet}/loan", json={**body, "accessories": ["cable"]}, headers=headers
    )
    assert other.status_code == 422  # the same key for different content


@pytest.mark.parametrize(
    ("setup", "request_path", "body", "status"),
    [
        ("registered", "loan", None, 409),  # loaning a tablet that is not ready
        ("ready", "return", {"channel": "post", "accessories_returned": []}, 409),  # returning one not loaned
        ("loaned", "wipe", {"method": "factory_reset", "proof": "sheet-12"}, 409),  # wiping one on loan
        ("loaned", "lost", {"stolen": "yes", "reason": "left on the bus"}, 422),  # true or false, not "yes"
        ("ready", "loan-unknown-accessory", None, 422),
        ("ready", "loan-bad-patient", None, 422),
        ("ready", "loan-treatment-ended", None, 422),
        ("ready", "loan-back-in-year-3000", None, 422),  # its device token would live as long
        ("ready", "loan-signed-in-1900", None, 422),
        # A Unix time at midnight UTC (pydantic's lax mode took it for that day), and a date-time: not a day.
        ("ready", "loan-back-as-unix-time", None, 422),
        ("ready", "loan-treatment-ends-as-date-time", None, 422),
    ],
)
async def test_refusals_change_nothing(fleet: Fleet, setup: str, request_path: str, body: Any, status: int) -> None:
    tablet = await fleet.register(["charger"])
    if setup != "registered":
        await fleet.step(tablet, "provision")
    if setup == "loaned":
        assert (await fleet.loan(tablet, uuid.uuid4(), accessories=["charger"])).status_code == 201
    async with fleet.devices_platform.pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM outbox"), await conn.fetchval("SELECT count(*) FROM loans")
    if request_path == "loan":
        response = await fleet.loan(tablet, uuid.uuid4(), accessories=["charger"])
    elif request_path == "loan-unknown-accessory":
        response = await fleet.loan(tablet, uuid.uuid4(), accessories=["sim"])
    elif request_path == "loan-bad-patient":
        response = await fleet.devices.post(
            f"/v1/tablets/{tablet}/loan",
            json={"patient_id": "Jeanne Dupont", "agreement": {}, "accessories": []},
            headers=fleet.staff(),
        )
    elif request_path == "loan-treatment-ended":
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        response = await fleet.loan(tablet, uuid.uuid4(), accessories=["charger"], treatment_ends_on=yesterday)
    elif request_path == "loan-back-in-year-3000":
        response = await fleet.loan(tablet, uuid.uuid4(), accessories=["charger"], expected_return_on="3000-01-01")
    elif request_path == "loan-back-as-unix-time":
        in_six_months = datetime.combine(datetime.now(UTC).date() + timedelta(days=180), datetime.min.time(), UTC)
        response = await fleet.loan(
            tablet, uuid.uuid4(), accessories=["charger"], expected_return_on=int(in_six_months.timestamp())
        )
    elif request_path == "loan-treatment-ends-as-date-time":
        day_in_six_months = (datetime.now(UTC) + timedelta(days=180)).date().isoformat()
        response = await fleet.loan(
            tablet, uuid.uuid4(), accessories=["charger"], treatment_ends_on=f"{day_in_six_months}T00:00:00"
        )
    elif request_path == "loan-signed-in-1900":
        agreement = {"signed_at": "1900-01-01T00:00:00Z", "witnessed_by": "ide-martin"}
        response = await fleet.loan(tablet, uuid.uuid4(), accessories=["charger"], agreement=agreement)
    else:
        response = await fleet.devices.post(f"/v1/tablets/{tablet}/{request_path}", json=body, headers=fleet.staff())
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"]
    async with fleet.devices_platform.pool.acquire() as conn:
        after = await conn.fetchval("SELECT count(*) FROM outbox"), await conn.fetchval("SELECT count(*) FROM loans")
    assert after == before


async def _open_loan_and_counts(fleet: Fleet, tablet: str) -> tuple[Any, ...]:
    async with fleet.devices_platform.pool.acquire() as conn:
        return (
            await conn.fetchval("SELECT count(*) FROM outbox"),
            await conn.fetchval("SELECT count(*) FROM revoked_tokens"),
            await conn.fetchval("SELECT count(*) FROM audit_log WHERE action IN ('tablet.return', 'loan.accessories')"),
            await conn.fetchrow(
                "SELECT ended_at, missing_accessories FROM loans WHERE tablet_id = $1 ORDER BY loaned_at DESC LIMIT 1",
                uuid.UUID(tablet),
            ),
        )


@pytest.mark.parametrize(
    ("returned", "kind", "words"),
    [
        (["charger", "charger"], "duplicate-accessory", ["once", "charger"]),
        (["charger", "sim"], "accessory-not-lent", ["did not include sim", "handed over"]),
        (["sim", "case", "charger"], "accessory-not-lent", ["did not include case, sim"]),
        (["charger", "cable", "manual", "charger", "cable", "manual"], None, []),  # six: longer than any kit
    ],
    ids=["listed-twice", "not-lent", "two-not-lent", "too-long"],
)
async def test_a_return_checklist_lists_what_was_lent_each_once(
    fleet: Fleet, returned: list[str], kind: str | None, words: list[str]
) -> None:
    # Accepted before: a charger checked in twice, or a SIM that was never lent, ended the loan as if all was well.
    tablet = await fleet.ready_tablet()
    token = (await fleet.loan(tablet, uuid.uuid4(), accessories=["charger", "cable", "manual"])).json()["device_token"]
    before = await _open_loan_and_counts(fleet, tablet)
    refused = await fleet.devices.post(
        f"/v1/tablets/{tablet}/return",
        json={"channel": "day_hospital", "accessories_returned": returned},
        headers=fleet.staff(),
    )
    _assert_refused_list(refused, "/accessories_returned", kind, words)
    # The loan is still open, its token still works, nothing was published.
    assert await fleet.state(tablet) == "loaned"
    assert await _open_loan_and_counts(fleet, tablet) == before
    assert before[3]["ended_at"] is None
    assert (await fleet.devices.post("/v1/heartbeats", json=heartbeat(), headers=bearer(token))).status_code == 204


def _assert_refused_list(refused: httpx.Response, pointer: str, kind: str | None, words: list[str]) -> None:
    """A 422 about a field (a list of accessories, a condition): its pointer, its kind when it has its own, the words
    that explain it."""
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem.get("pointer", problem.get("errors", [{}])[0].get("pointer")) == pointer
    if kind is not None:
        assert problem["type"].endswith(f"/{kind}")
    for word in words:
        assert word in problem["detail"], problem


async def test_accessories_that_come_back_are_ones_the_loan_lent(fleet: Fleet) -> None:
    tablet = await fleet.ready_tablet()
    loan = (await fleet.loan(tablet, uuid.uuid4(), accessories=["charger", "cable", "manual"])).json()["loan"]
    # Before the return, nothing is missing yet: what comes back is ticked on the return's checklist.
    early = await fleet.devices.post(
        f"/v1/loans/{loan['id']}/accessories", json={"accessories": ["cable"]}, headers=fleet.staff()
    )
    assert early.status_code == 409, early.text
    assert early.json()["type"].endswith("/loan-still-open") and "checklist" in early.json()["detail"]
    assert await fleet.state(tablet) == "loaned"
    returned = await fleet.devices.post(
        f"/v1/tablets/{tablet}/return",
        json={"channel": "post", "accessories_returned": ["charger"]},
        headers=fleet.staff(),
    )
    assert returned.json()["missing_accessories"] == ["cable", "manual"]
    path = f"/v1/loans/{loan['id']}/accessories"
    before = await _open_loan_and_counts(fleet, tablet)

    for listed, kind, words in [
        (["sim"], "accessory-not-lent", ["did not include sim"]),
        (["cable", "sim"], "accessory-not-lent", ["did not include sim"]),  # not even the cable is recorded
        (["cable", "cable"], "duplicate-accessory", ["once", "cable"]),
        (["cable", "manual", "cable", "manual", "cable", "manual"], None, []),
    ]:
        refused = await fleet.devices.post(path, json={"accessories": listed}, headers=fleet.staff())
        _assert_refused_list(refused, "/accessories", kind, words)
        assert await _open_loan_and_counts(fleet, tablet) == before

    back = await fleet.devices.post(path, json={"accessories": ["cable"]}, headers=fleet.staff())
    assert back.status_code == 200, back.text
    assert back.json()["missing_accessories"] == ["manual"]
    # Lent and already back (the charger at the return, the cable just now): a retry, answered as it stands.
    again = await fleet.devices.post(path, json={"accessories": ["cable", "charger"]}, headers=fleet.staff())
    assert again.status_code == 200, again.text
    assert again.json()["missing_accessories"] == ["manual"]


async def test_staff_roles_are_enforced(fleet: Fleet) -> None:
    tablet = await fleet.register()
    nurse = fleet.staff("nurse", "ide-1")
    assert (await fleet.devices.get(f"/v1/tablets/{tablet}", headers=nurse)).status_code == 200
    refused = await fleet.devices.post(f"/v1/tablets/{tablet}/actions/provision", json={}, headers=nurse)
    assert refused.status_code == 403
    assert (await fleet.devices.get("/v1/fleet")).status_code == 401
    device = bearer(fleet.tokens.issue_device_token(uuid.uuid4(), str(uuid.uuid4())))
    assert (await fleet.devices.get("/v1/fleet", headers=device)).status_code == 403


async def test_heartbeats_from_a_thousand_tablets_at_once_are_all_recorded(fleet: Fleet) -> None:
    count = 1000
    pool = fleet.devices_platform.pool
    tokens: list[tuple[str, str]] = []
    # Loans made directly in the database: what is under test here is the heartbeat path.
    async with pool.acquire() as conn:
        now = datetime.now(UTC)
        for i in range(count):
            tablet, patient = uuid.uuid4(), uuid.uuid4()
            token = fleet.tokens.issue_device_token(patient, str(tablet))
            token_id = fleet.tokens.verify(token).token_id
            await conn.execute(
                "INSERT INTO tablets (id, serial_number, model, state, registered_at, registered_by, state_changed_at)"
                " VALUES ($1, $2, 'Tab', 'loaned', $3, 'fleet-1', $3)",
                tablet,
                f"HB-{i:05d}",
                now,
            )
            await conn.execute(
                "INSERT INTO loans (id, tablet_id, patient_id, token_id, agreement_signed_at, agreement_witnessed_by,"
                " accessories, expected_return_on, loaned_at, loaned_by) "
                "VALUES ($1, $2, $3, $4, $5, 'ide-1', '{}', $6, $5, 'fleet-1')",
                uuid.uuid4(),
                tablet,
                patient,
                token_id,
                now,
                (now + timedelta(days=365)).date(),
            )
            tokens.append((str(tablet), token))
    sent_at = datetime.now(UTC)
    limits = asyncio.Semaphore(200)

    async def beat(token: str, battery: int) -> int:
        async with limits:
            r = await fleet.devices.post("/v1/heartbeats", json=heartbeat(sent_at, battery), headers=bearer(token))
            return r.status_code

    statuses = await asyncio.gather(*(beat(token, i % 101) for i, (_, token) in enumerate(tokens)))
    assert statuses == [204] * count
    # The same heartbeat again (a retry) is recorded once.
    assert await beat(tokens[0][1], 0) == 204
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM heartbeats") == count
        seen = await conn.fetchval("SELECT count(*) FROM tablets WHERE last_seen_at IS NOT NULL")
        assert seen == count
        assert await conn.fetchval("SELECT battery_percent FROM tablets WHERE serial_number = 'HB-00007'") == 7


async def _loan_at(fleet: Fleet, loaned_at: datetime) -> tuple[str, str, uuid.UUID]:
    tablet = await fleet.ready_tablet()
    patient = uuid.uuid4()
    granted = (await fleet.loan(tablet, patient)).json()
    async with fleet.devices_platform.pool.acquire() as conn:
        await conn.execute("UPDATE loans SET loaned_at = $2 WHERE tablet_id = $1", uuid.UUID(tablet), loaned_at)
    return tablet, granted["device_token"], patient


async def attention(fleet: Fleet) -> list[dict[str, Any]]:
    """The fleet page's loans needing attention, leaving out those only due back within a month or so."""
    response = await fleet.devices.get("/v1/fleet?due_soon_days=1", headers=fleet.staff())
    assert response.status_code == 200, response.text
    return list(response.json()["attention"])


async def test_a_silent_tablet_is_reported_once_per_silence(fleet: Fleet) -> None:
    pool = fleet.devices_platform.pool
    policy = SilencePolicy()
    events = await fleet.devices_platform.js.subscribe("tablet.inactive", stream="TABLETS", ordered_consumer=True)
    start = datetime.now(UTC)
    tablet, token, patient = await _loan_at(fleet, start)

    assert await report_silent_tablets(pool, start + timedelta(days=6), policy) == []
    eight_days = start + timedelta(days=8)
    first = await report_silent_tablets(pool, eight_days, policy)
    assert [(str(r.tablet_id), r.reason) for r in first] == [(tablet, "long_silence")]
    # Every later check in the same silence, and two replicas checking at once, report nothing more.
    assert await report_silent_tablets(pool, eight_days + timedelta(minutes=1), policy) == []
    both = await asyncio.gather(*(report_silent_tablets(pool, eight_days + timedelta(days=3), policy) for _ in "ab"))
    assert both == [[], []]
    listed = (await fleet.devices.get("/v1/tablets?state=loaned", headers=fleet.staff())).json()["items"]
    assert [t["loan"]["silence_reason"] for t in listed if t["id"] == tablet] == ["long_silence"]
    assert [loan["silence_reason"] for loan in await attention(fleet) if loan["tablet_id"] == tablet] == [
        "long_silence"
    ]

    # The patient switches it on: a heartbeat ends the silence; a new silence is reported again.
    assert (await fleet.devices.post("/v1/heartbeats", json=heartbeat(), headers=bearer(token))).status_code == 204
    listed = (await fleet.devices.get("/v1/tablets?state=loaned", headers=fleet.staff())).json()["items"]
    assert [t["loan"]["silent_since"] for t in listed if t["id"] == tablet] == [None]
    # Nor is it left in the fleet's list of loans needing attention, where the silent ones must stand out.
    assert [loan for loan in await attention(fleet) if loan["tablet_id"] == tablet] == []
    later = datetime.now(UTC) + timedelta(days=7, hours=1)
    second = await report_silent_tablets(pool, later, policy)
    assert [str(r.tablet_id) for r in second] == [tablet]
    assert second[0].silent_since > first[0].silent_since

    published = [orjson.loads((await events.next_msg(timeout=5)).data) for _ in range(2)]
    assert [e["data"]["patient_id"] for e in published] == [str(patient)] * 2
    with pytest.raises(nats.errors.TimeoutError):  # nothing else was published
        await events.next_msg(timeout=0.5)


async def test_a_tablet_silent_before_a_questionnaire_is_due_is_reported(fleet: Fleet) -> None:
    pool = fleet.devices_platform.pool
    start = datetime.now(UTC)
    tablet, _, patient = await _loan_at(fleet, start)
    session = SessionScheduledV1(
        session_id=uuid.uuid4(), patient_id=patient, scheduled_for=start + timedelta(days=4), cycle=3
    )
    js = fleet.devices_platform.js
    await js.publish(
        "session.scheduled", make_event("session.scheduled", session, source="/tests", time=start).to_json()
    )

    async def known() -> bool:
        async with pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM sessions WHERE patient_id = $1", patient))

    assert await eventually(known)
    # Two days silent, the session in less than two days: the team can call before the chemotherapy.
    reports = await report_silent_tablets(pool, start + timedelta(days=2, hours=12), SilencePolicy())
    assert [(str(r.tablet_id), r.reason) for r in reports] == [(tablet, "questionnaire_due")]
    assert reports[0].next_questionnaire_due == session.scheduled_for


UNPROCESSABLE = "unprocessable-content"


@pytest.mark.parametrize(
    ("body", "status", "pointer", "kind"),
    [
        (b"{not json", 400, "/", "malformed-json"),
        (orjson.dumps({**heartbeat(), "battery_percent": 101}), 422, "/battery_percent", UNPROCESSABLE),
        (
            orjson.dumps({**heartbeat(), "battery_percent": True}),
            422,
            "/battery_percent",
            UNPROCESSABLE,
        ),  # not taken as 1
        (orjson.dumps({**heartbeat(), "colour": "blue"}), 422, "/colour", UNPROCESSABLE),
        (orjson.dumps(heartbeat(datetime.now(UTC) + timedelta(days=3))), 422, "/sent_at", "in-the-future"),
        (orjson.dumps({**heartbeat(), "sent_at": "0001-01-01T00:00:00+01:00"}), 422, "/sent_at", "too-far-in-the-past"),
        # Stored, it would stay on the tablet for good (the latest use is kept), for later loans too.
        (orjson.dumps({**heartbeat(), "last_used_at": "9999-12-31T23:59:59Z"}), 422, "/last_used_at", "in-the-future"),
        (
            orjson.dumps({**heartbeat(), "last_used_at": "2001-01-01T00:00:00Z"}),
            422,
            "/last_used_at",
            "too-far-in-the-past",
        ),
        # Unix times, even recent ones: the tablet sends an RFC 3339 date-time with its offset.
        (orjson.dumps({**heartbeat(), "sent_at": int(time.time())}), 422, "/sent_at", UNPROCESSABLE),
        (orjson.dumps({**heartbeat(), "sent_at": time.time()}), 422, "/sent_at", UNPROCESSABLE),
        (orjson.dumps({**heartbeat(), "sent_at": str(int(time.time()))}), 422, "/sent_at", UNPROCESSABLE),
        (orjson.dumps({**heartbeat(), "last_used_at": int(time.time()) - 60}), 422, "/last_used_at", UNPROCESSABLE),
    ],
    ids=[
        "malformed",
        "battery",
        "battery-true",
        "unknown-field",
        "sent-ahead",
        "sent-year-1",
        "used-year-9999",
        "used-year-2001",
        "sent-unix-int",
        "sent-unix-float",
        "sent-unix-string",
        "used-unix-int",
    ],
)
async def test_bad_heartbeats_are_refused_and_record_nothing(
    fleet: Fleet, body: bytes, status: int, pointer: str, kind: str
) -> None:
    tablet = await fleet.ready_tablet()
    token = (await fleet.loan(tablet, uuid.uuid4())).json()["device_token"]
    response = await fleet.devices.post(
        "/v1/heartbeats", content=body, headers={**bearer(token), "Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem.get("pointer", problem.get("errors", [{}])[0].get("pointer")) == pointer
    # The date refusals have types of their own: a client tells a wrong clock from a malformed reading.
    assert problem["type"] == PROBLEM_TYPE_BASE + kind
    async with fleet.devices_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM heartbeats") == 0


async def test_heartbeats_need_a_device_token(fleet: Fleet) -> None:
    assert (await fleet.devices.post("/v1/heartbeats", json=heartbeat())).status_code == 401
    staff = await fleet.devices.post("/v1/heartbeats", json=heartbeat(), headers=fleet.staff())
    assert staff.status_code == 403
    # A development token that no loan issued is not a tablet of the fleet.
    stray = bearer(fleet.tokens.issue_device_token(uuid.uuid4(), str(uuid.uuid4())))
    assert (await fleet.devices.post("/v1/heartbeats", json=heartbeat(), headers=stray)).status_code == 401


@pytest.mark.parametrize("wiped_at", ["before-the-return", "0002-01-01T00:00:00Z"])
async def test_a_wipe_dated_before_the_tablet_came_back_is_refused(fleet: Fleet, wiped_at: str) -> None:
    # A wipe before the return leaves what the last patient put on the tablet: it used to be recorded all the
    # same (200, tablet.wiped), and the tablet could then be made ready for the next patient.
    tablet = await fleet.ready_tablet()
    assert (await fleet.loan(tablet, uuid.uuid4())).status_code == 201
    body = {"channel": "day_hospital", "accessories_returned": ["charger", "cable", "manual"]}
    returned = await fleet.devices.post(f"/v1/tablets/{tablet}/return", json=body, headers=fleet.staff())
    assert returned.status_code == 200, returned.text
    returned_at = datetime.fromisoformat(returned.json()["ended_at"])
    async with fleet.devices_platform.pool.acquire() as conn:
        events_before = await conn.fetchval("SELECT count(*) FROM outbox")
    when = (returned_at - timedelta(minutes=10)).isoformat() if wiped_at == "before-the-return" else wiped_at
    refused = await fleet.devices.post(
        f"/v1/tablets/{tablet}/wipe",
        json={"method": "factory_reset", "proof": "sheet-12", "wiped_at": when},
        headers=fleet.staff(),
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["pointer"] == "/wiped_at"
    assert "came back" in refused.json()["detail"]
    assert await fleet.state(tablet) == "returned"
    async with fleet.devices_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM wipes") == 0
        assert await conn.fetchval("SELECT count(*) FROM outbox") == events_before
    # Dated after the return, it is the wipe the tablet needed.
    wiped = await fleet.devices.post(
        f"/v1/tablets/{tablet}/wipe", json={"method": "factory_reset", "proof": "sheet-12"}, headers=fleet.staff()
    )
    assert wiped.status_code == 200, wiped.text


async def test_fleet_bodies_declared_as_anything_but_json_are_415(fleet: Fleet) -> None:
    registration = {"serial_number": f"R52-{uuid.uuid4().hex[:10]}", "model": "Galaxy Tab A9"}
    form = await fleet.devices.post("/v1/tablets", data=registration, headers=fleet.staff())
    assert form.status_code == 415, form.text
    assert form.headers["content-type"] == "application/problem+json"
    assert form.json()["accepted"] == ["application/json", "application/fhir+json"]
    tablet = await fleet.ready_tablet()
    token = (await fleet.loan(tablet, uuid.uuid4())).json()["device_token"]
    plain = await fleet.devices.post(
        "/v1/heartbeats", content=orjson.dumps(heartbeat()), headers={**bearer(token), "Content-Type": "text/plain"}
    )
    assert plain.status_code == 415, plain.text
    async with fleet.devices_platform.pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM tablets WHERE serial_number = $1", registration["serial_number"])
            == 0
        )
        assert await conn.fetchval("SELECT count(*) FROM heartbeats") == 0
    # Without a Content-Type, a staff command's body is read as JSON, as a tablet's is.
    unlabelled = await fleet.devices.post("/v1/tablets", content=orjson.dumps(registration), headers=fleet.staff())
    assert unlabelled.status_code == 201, unlabelled.text
    assert (
        await fleet.devices.post("/v1/heartbeats", content=orjson.dumps(heartbeat()), headers=bearer(token))
    ).status_code == 204


@pytest.mark.parametrize("when", [1700000000, "1700000000", 1700000000.5])
async def test_fleet_dates_given_as_unix_times_are_refused(fleet: Fleet, when: Any) -> None:
    # Read as a Unix time, each would be a moment of November 2023: a loan signed, a return or a wipe that never
    # happened then. A fleet tool that sends one has a bug, told as a malformed date-time, and nothing changes.
    tablet = await fleet.ready_tablet()
    agreement = {"signed_at": when, "witnessed_by": "ide-martin"}
    loan = await fleet.devices.post(
        f"/v1/tablets/{tablet}/loan",
        json={"patient_id": str(uuid.uuid4()), "agreement": agreement, "accessories": ["charger"]},
        headers=fleet.staff(),
    )
    assert loan.status_code == 422, loan.text
    assert loan.json()["errors"][0]["pointer"] == "/agreement/signed_at"
    assert await fleet.state(tablet) == "ready"

    assert (await fleet.loan(tablet, uuid.uuid4())).status_code == 201
    body = {"channel": "day_hospital", "accessories_returned": ["charger"], "returned_at": when}
    returned = await fleet.devices.post(f"/v1/tablets/{tablet}/return", json=body, headers=fleet.staff())
    assert returned.status_code == 422, returned.text
    assert returned.json()["errors"][0]["pointer"] == "/returned_at"
    assert "not a Unix time" in returned.json()["errors"][0]["detail"]
    assert await fleet.state(tablet) == "loaned"

    body = {"channel": "day_hospital", "accessories_returned": ["charger"]}
    assert (
        await fleet.devices.post(f"/v1/tablets/{tablet}/return", json=body, headers=fleet.staff())
    ).status_code == 200
    wipe = {"method": "factory_reset", "proof": "sheet-12", "wiped_at": when}
    wiped = await fleet.devices.post(f"/v1/tablets/{tablet}/wipe", json=wipe, headers=fleet.staff())
    assert wiped.status_code == 422, wiped.text
    assert wiped.json()["errors"][0]["pointer"] == "/wiped_at"
    assert await fleet.state(tablet) == "returned"
    async with fleet.devices_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM wipes") == 0


# --- Serial numbers are not case-significant ---------------------------------------------------------------


async def _register_serial(fleet: Fleet, serial: str, charger_serial: str | None = None) -> httpx.Response:
    body = {
        "serial_number": serial,
        "model": "Galaxy Tab A9",
        "accessories": [{"kind": "charger", "serial_number": charger_serial}, {"kind": "cable"}],
    }
    return await fleet.devices.post("/v1/tablets", json=body, headers=fleet.staff())


async def _stored_rows(fleet: Fleet) -> tuple[int, ...]:
    async with fleet.devices_platform.pool.acquire() as conn:
        return tuple(
            [
                await conn.fetchval(f"SELECT count(*) FROM {table}")
                for table in ("tablets", "accessories", "transitions", "audit_log", "idempotency_keys", "outbox")
            ]
        )


async def test_a_serial_number_typed_in_another_case_is_the_tablet_already_registered(fleet: Fleet) -> None:
    serial = f"R52W-{uuid.uuid4().hex[:8]}AB".upper()
    assert (await _register_serial(fleet, serial)).status_code == 201
    before = await _stored_rows(fleet)
    for typed in (serial.lower(), f"r52w{serial[4:]}", serial.lower().capitalize()):
        refused = await fleet.devices.post(
            "/v1/tablets",
            json={"serial_number": typed, "model": "Galaxy Tab A9", "accessories": [{"kind": "charger"}]},
            headers={**fleet.staff(), "Idempotency-Key": str(uuid.uuid4())},
        )
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["type"].endswith("/duplicate-serial")
        # The serial number already registered, as it is kept: the caller sees which tablet it is.
        assert problem["serial_number"] == serial
        assert f"serial number {serial} is already registered" in problem["detail"]
        # Nothing stored (no second tablet, no accessories, no audit entry, no kept response), nothing published.
        assert await _stored_rows(fleet) == before
    listing = await fleet.devices.get("/v1/tablets", headers=fleet.staff())
    assert [t["serial_number"] for t in listing.json()["items"]].count(serial) == 1


async def test_a_serial_number_typed_in_lower_case_is_kept_and_shown_in_upper_case(fleet: Fleet) -> None:
    typed, charger = f"r52w-{uuid.uuid4().hex[:8]}.ab/c_d", f"chg-{uuid.uuid4().hex[:6]}x"
    registered = await _register_serial(fleet, typed, charger)
    assert registered.status_code == 201, registered.text
    tablet = registered.json()["id"]
    assert registered.json()["serial_number"] == typed.upper()
    detail = (await fleet.devices.get(f"/v1/tablets/{tablet}", headers=fleet.staff())).json()
    assert detail["serial_number"] == typed.upper()
    assert detail["accessories"] == [
        {"kind": "cable", "serial_number": None},
        {"kind": "charger", "serial_number": charger.upper()},
    ]
    listing = (await fleet.devices.get("/v1/tablets", headers=fleet.staff())).json()["items"]
    assert [t["serial_number"] for t in listing if t["id"] == tablet] == [typed.upper()]
    async with fleet.devices_platform.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT serial_number FROM tablets WHERE id = $1", uuid.UUID(tablet))
        accessory = await conn.fetchval(
            "SELECT serial_number FROM accessories WHERE tablet_id = $1 AND kind = 'charger'", uuid.UUID(tablet)
        )
    assert (stored, accessory) == (typed.upper(), charger.upper())


async def test_a_technician_finds_a_tablet_by_its_serial_number_typed_in_any_case(fleet: Fleet) -> None:
    serial = f"R52W-{uuid.uuid4().hex[:8]}AB".upper()
    other = f"R52W-{uuid.uuid4().hex[:8]}CD".upper()
    tablet = (await _register_serial(fleet, serial)).json()["id"]
    assert (await _register_serial(fleet, other)).status_code == 201
    for typed in (serial, serial.lower(), serial.lower().capitalize()):
        found = await fleet.devices.get("/v1/tablets", params={"serial": typed}, headers=fleet.staff())
        assert found.status_code == 200, found.text
        assert [(t["id"], t["serial_number"]) for t in found.json()["items"]] == [(tablet, serial)]
    # With the state filter too: the tablet is still being provisioned, not loaned.
    stocked = await fleet.devices.get(
        "/v1/tablets", params={"serial": serial.lower(), "state": "pending_provisioning"}, headers=fleet.staff()
    )
    assert [t["id"] for t in stocked.json()["items"]] == [tablet]
    loaned = await fleet.devices.get("/v1/tablets", params={"serial": serial, "state": "loaned"}, headers=fleet.staff())
    assert loaned.json()["items"] == []
    unknown = await fleet.devices.get("/v1/tablets", params={"serial": "NOPE-0000"}, headers=fleet.staff())
    assert unknown.status_code == 200 and unknown.json() == {"items": [], "count": 0}
    # A value no serial number can be is a problem that says what a serial number is, not an empty list.
    for bad in ("R52W 0001", "ß-1", "-R52W", "x" * 65):
        refused = await fleet.devices.get("/v1/tablets", params={"serial": bad}, headers=fleet.staff())
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["detail"].startswith("A serial number is 1 to 64 letters"), refused.json()


INSERT_TABLET = (
    "INSERT INTO tablets (id, serial_number, model, state, registered_at, registered_by, state_changed_at) "
    "VALUES ($1, $2, 'Galaxy Tab A9', $3, now(), 'fleet-1', now())"
)


async def _devices_schema_before_003(database_url: str, tmp_path: Path) -> asyncpg.Connection:
    """A devices schema as it was before serial numbers were kept in upper case."""
    return await schema_before(database_url, "devices", MIGRATIONS, "003", tmp_path)


async def test_the_migration_keeps_existing_serial_numbers_in_upper_case(database_url: str, tmp_path: Path) -> None:
    conn = await _devices_schema_before_003(database_url, tmp_path)
    try:
        tablets = {"r52w-abc1": uuid.uuid4(), "R52W-XYZ9": uuid.uuid4(), "Mixed.Case/7": uuid.uuid4()}
        for serial, tablet in tablets.items():
            await conn.execute(INSERT_TABLET, tablet, serial, "ready")
        await conn.execute(
            "INSERT INTO accessories (tablet_id, kind, serial_number) VALUES ($1, 'charger', 'chg-01a'), "
            "($1, 'cable', NULL), ($2, 'sim', '8933150319')",
            tablets["r52w-abc1"],
            tablets["R52W-XYZ9"],
        )
        await apply_migrations(conn, "devices", MIGRATIONS)
        stored = {r["id"]: r["serial_number"] for r in await conn.fetch("SELECT id, serial_number FROM tablets")}
        assert stored == {tablet: serial.upper() for serial, tablet in tablets.items()}
        accessories = await conn.fetch("SELECT kind, serial_number FROM accessories ORDER BY kind")
        assert [tuple(r) for r in accessories] == [("cable", None), ("charger", "CHG-01A"), ("sim", "8933150319")]
        # From now on the database itself refuses a serial number in another case, whoever writes it.
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(INSERT_TABLET, uuid.uuid4(), "r52w-new1", "ready")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(INSERT_TABLET, uuid.uuid4(), "R52W-ABC1", "ready")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE tablets SET serial_number = 'r52w-xyz9' WHERE id = $1", tablets["R52W-XYZ9"])
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO accessories (tablet_id, kind, serial_number) VALUES ($1, 'case', 'case-1')",
                tablets["R52W-XYZ9"],
            )
    finally:
        await conn.close()


async def test_the_migration_refuses_serial_numbers_that_differ_only_by_case_and_names_them(
    database_url: str, tmp_path: Path
) -> None:
    conn = await _devices_schema_before_003(database_url, tmp_path)
    try:
        rows = [
            ("r52w-abc1", uuid.uuid4(), "loaned"),
            ("R52W-ABC1", uuid.uuid4(), "ready"),
            ("R52w-Abc1", uuid.uuid4(), "retired"),
            ("tab-2", uuid.uuid4(), "ready"),
            ("TAB-2", uuid.uuid4(), "in_repair"),
            ("solo-3", uuid.uuid4(), "ready"),
        ]
        for serial, tablet, state in rows:
            await conn.execute(INSERT_TABLET, tablet, serial, state)
        with pytest.raises(asyncpg.RaiseError) as refused:
            await apply_migrations(conn, "devices", MIGRATIONS)
        message = str(refused.value)
        # Each clash by its serial number as it would be kept, and each tablet of it, as stored, with its id and
        # state, so that an operator can tell which is which; never a tablet that clashes with nothing.
        for serial, tablet, state in rows[:5]:
            assert f"{serial} (tablet {tablet}, {state})" in message
        assert "R52W-ABC1:" in message and "TAB-2:" in message
        assert "solo-3" not in message.lower() and "SOLO-3" not in message
        assert refused.value.as_dict().get("hint")
        # Nothing merged nor changed, and the migration is still to be applied.
        stored = {r["id"]: r["serial_number"] for r in await conn.fetch("SELECT id, serial_number FROM tablets")}
        assert stored == {tablet: serial for serial, tablet, _ in rows}
        applied = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        assert not any(name.startswith("service/003") for name in applied)
        # Once the operator has given each duplicate a serial number of its own, the migration applies.
        await conn.execute("UPDATE tablets SET serial_number = 'R52W-ABC1-DUP1' WHERE id = $1", rows[0][1])
        await conn.execute("UPDATE tablets SET serial_number = 'R52W-ABC1-DUP2' WHERE id = $1", rows[2][1])
        await conn.execute("UPDATE tablets SET serial_number = 'TAB-2-DUP' WHERE id = $1", rows[3][1])
        await apply_migrations(conn, "devices", MIGRATIONS)
        assert await conn.fetchval("SELECT serial_number FROM tablets WHERE id = $1", rows[5][1]) == "SOLO-3"
    finally:
        await conn.close()


async def test_a_loan_gives_its_enrolment_link_and_qr_code_and_a_replay_gives_the_same(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    tablet = await fleet.ready_tablet()
    body = {
        "patient_id": str(uuid.uuid4()),
        "agreement": {"signed_at": datetime.now(UTC).isoformat(), "witnessed_by": "ide-martin"},
        "accessories": ["charger"],
    }
    headers = {**fleet.staff(), "Idempotency-Key": f"loan-{uuid.uuid4()}"}
    first = await fleet.devices.post(f"/v1/tablets/{tablet}/loan", json=body, headers=headers)
    # The retry comes seconds later (as the token issuer's clock sees it).
    later = time.time() + 5
    monkeypatch.setattr("shared.auth.time", SimpleNamespace(time=lambda: later))
    again = await fleet.devices.post(f"/v1/tablets/{tablet}/loan", json=body, headers=headers)
    monkeypatch.undo()
    assert first.status_code == again.status_code == 201
    # The very same token, link and QR code: what the fleet manager showed the tablet is what a retry shows.
    assert again.json()["device_token"] == first.json()["device_token"]
    assert again.json()["enrolment_qr_svg"] == first.json()["enrolment_qr_svg"]
    for granted in (first.json(), again.json()):
        # The tablet's page at the questionnaire service (its default address here), the token in the fragment.
        assert granted["enrolment_url"] == f"http://127.0.0.1:8001/tablet/#device_token={granted['device_token']}"
        # The QR code is that link: the same code built with segno, as the tablet's camera reads it.
        assert granted["enrolment_qr_svg"] == segno_svg(granted["enrolment_url"])
        token = granted["enrolment_url"].partition("#device_token=")[2]
        assert fleet.tokens.verify(token).token_id == first.json()["token_id"]
        listed = await fleet.questionnaire.get("/v1/questionnaires", headers=bearer(token))
        assert listed.status_code == 200, listed.text
    async with fleet.devices_platform.pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT response::text FROM idempotency_keys WHERE key = $1", headers["Idempotency-Key"]
        )
    assert "enrolment" not in stored and "device_token" not in stored


def segno_svg(url: str) -> str:
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(
        out, kind="svg", scale=4, border=4, dark="#000", light="#fff", xmldecl=False, title="QR code"
    )
    return out.getvalue().decode()


def test_the_questionnaire_address_of_the_enrolment_link_is_checked_at_start_up() -> None:
    env: dict[str, Any] = {"NATS_URL": "nats://127.0.0.1:4222", "DATABASE_URL": "postgresql://x@127.0.0.1/x"}
    settings = DevicesSettings(**env, QUESTIONNAIRE_PUBLIC_URL="https://Soins.example.org/q/")
    assert settings.questionnaire_public_url == "https://soins.example.org/q"
    for wrong in ("soins.example.org", "ftp://soins.example.org", "https://soins.example.org/?x=1"):
        with pytest.raises(ValueError, match="QUESTIONNAIRE_PUBLIC_URL"):
            DevicesSettings(**env, QUESTIONNAIRE_PUBLIC_URL=wrong)


# --- The patient's return receipt --------------------------------------------------------------------------------


def named(staff_id: str, name: str | None, fleet: Fleet, role: str = "fleet") -> dict[str, str]:
    return bearer(fleet.tokens.issue_staff_token(staff_id, {role}, name=name))


async def _returned_loan(fleet: Fleet, tablet: str, channel: str = "day_hospital", back: Any = None) -> str:
    """A loan of ``tablet`` (charger, cable, manual) returned with ``back`` (all of it by default); its id."""
    loan = await fleet.loan(tablet, uuid.uuid4())
    assert loan.status_code == 201, loan.text
    body = {"channel": channel, "accessories_returned": back if back is not None else ["charger", "cable", "manual"]}
    returned = await fleet.devices.post(f"/v1/tablets/{tablet}/return", json=body, headers=fleet.staff())
    assert returned.status_code == 200, returned.text
    return str(loan.json()["loan"]["id"])


async def _wipe(fleet: Fleet, tablet: str, proof: str, headers: dict[str, str], method: str = "factory_reset") -> None:
    wiped = await fleet.devices.post(
        f"/v1/tablets/{tablet}/wipe", json={"method": method, "proof": proof}, headers=headers
    )
    assert wiped.status_code == 200, wiped.text


async def receipt(fleet: Fleet, loan: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return await fleet.devices.get(f"/v1/loans/{loan}/receipt", headers=headers or fleet.staff())


async def test_the_receipt_of_a_returned_and_wiped_loan_states_every_line_and_is_audited(fleet: Fleet) -> None:
    tablet = await fleet.ready_tablet()
    loan = await _returned_loan(fleet, tablet, channel="post", back=["charger", "manual"])
    # Sophie Leroy's token carries her name: the receipt prints it rather than her id.
    await _wipe(fleet, tablet, "1234", named("parc-sophie", "Sophie Leroy", fleet))

    answer = await receipt(fleet, loan)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    async with fleet.devices_platform.pool.acquire() as conn:
        stored = await conn.fetchrow("SELECT * FROM loans WHERE id = $1", uuid.UUID(loan))
        tab = await conn.fetchrow("SELECT serial_number, model FROM tablets WHERE id = $1", uuid.UUID(tablet))
        wiped = await conn.fetchrow("SELECT wiped_at FROM wipes WHERE tablet_id = $1", uuid.UUID(tablet))
        trail = await conn.fetch(
            "SELECT action, resource, actor FROM audit_log WHERE patient_id = $1 AND action = 'loan.receipt'",
            stored["patient_id"],
        )
    assert got["loan_id"] == loan and got["patient_id"] == str(stored["patient_id"])
    assert got["tablet"] == {"id": tablet, "serial_number": tab["serial_number"], "model": "Galaxy Tab A9"}
    assert datetime.fromisoformat(got["loaned_at"]) == stored["loaned_at"]
    assert got["expected_return_on"] == stored["expected_return_on"].isoformat()
    assert datetime.fromisoformat(got["returned_at"]) == stored["ended_at"]
    assert got["return_channel"] == "post"
    assert got["accessories_handed_over"] == ["cable", "charger", "manual"]
    assert got["accessories_back"] == ["charger", "manual"]
    assert got["accessories_missing"] == ["cable"]
    assert got["wipe_status"] == "done"
    assert got["wipe"] == {
        "method": "factory_reset",
        "proof": "1234",
        "wiped_at": got["wipe"]["wiped_at"],
        "wiped_by": "parc-sophie",
        "wiped_by_name": "Sophie Leroy",
    }
    assert datetime.fromisoformat(got["wipe"]["wiped_at"]) == wiped["wiped_at"]
    assert abs(datetime.fromisoformat(got["issued_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert [(r["action"], r["resource"], r["actor"]) for r in trail] == [("loan.receipt", f"loan/{loan}", "fleet-1")]


async def test_the_receipt_of_a_loan_returned_but_not_yet_wiped_says_the_wipe_is_pending(fleet: Fleet) -> None:
    tablet = await fleet.ready_tablet()
    loan = await _returned_loan(fleet, tablet)
    got = (await receipt(fleet, loan)).json()
    assert got["wipe_status"] == "pending" and got["wipe"] is None
    assert got["accessories_missing"] == [] and got["accessories_back"] == ["cable", "charger", "manual"]
    assert got["return_channel"] == "day_hospital"
    # Wiped by someone whose name the service does not know: the receipt gives the id.
    await _wipe(fleet, tablet, "MDM-77", fleet.staff(staff_id="parc-anonyme"), method="mdm_remote_wipe")
    wipe = (await receipt(fleet, loan)).json()["wipe"]
    assert (wipe["method"], wipe["proof"], wipe["wiped_by"], wipe["wiped_by_name"]) == (
        "mdm_remote_wipe",
        "MDM-77",
        "parc-anonyme",
        None,
    )


async def test_a_name_learnt_at_sign_in_is_the_one_the_receipt_prints(fleet: Fleet) -> None:
    tablet = await fleet.ready_tablet()
    loan = await _returned_loan(fleet, tablet)
    # Her wipe was recorded with a token without her name (a pasted development token, say) …
    await _wipe(fleet, tablet, "sheet-9", fleet.staff(staff_id="parc-ines"))
    assert (await receipt(fleet, loan)).json()["wipe"]["wiped_by_name"] is None
    # … then she signed in to the fleet page through the hospital's provider, whose token names her.
    assert (await fleet.devices.get("/v1/me", headers=named("parc-ines", "Inès Diallo", fleet))).status_code == 200
    assert (await receipt(fleet, loan)).json()["wipe"]["wiped_by_name"] == "Inès Diallo"


async def _written(fleet: Fleet) -> tuple[int, ...]:
    async with fleet.devices_platform.pool.acquire() as conn:
        return tuple(
            [await conn.fetchval(f"SELECT count(*) FROM {table}") for table in ("audit_log", "outbox", "wipes")]
        )


async def test_no_receipt_for_a_tablet_still_on_loan_lost_or_unknown_nor_for_a_nurse(fleet: Fleet) -> None:
    tablet = await fleet.ready_tablet()
    open_loan = (await fleet.loan(tablet, uuid.uuid4())).json()["loan"]["id"]
    lost_tablet = await fleet.ready_tablet()
    lost_loan = (await fleet.loan(lost_tablet, uuid.uuid4())).json()["loan"]["id"]
    assert (await fleet.devices.post(f"/v1/tablets/{lost_tablet}/lost", json={}, headers=fleet.staff())).is_success
    returned = await _returned_loan(fleet, await fleet.ready_tablet())
    before = await _written(fleet)

    still_out = await receipt(fleet, open_loan)
    assert still_out.status_code == 409
    assert still_out.headers["content-type"] == "application/problem+json"
    assert still_out.json()["type"] == f"{PROBLEM_TYPE_BASE}loan-not-returned"
    assert still_out.json()["detail"] == (
        "This tablet was not returned: it is still on loan. A return receipt can be printed once its return is "
        "recorded."
    )
    lost = await receipt(fleet, lost_loan)
    assert lost.status_code == 409 and lost.json()["ended_as"] == "lost"
    assert "reported lost, not returned" in lost.json()["detail"]
    unknown = await receipt(fleet, str(uuid.uuid4()))
    assert unknown.status_code == 404 and unknown.json()["type"] == f"{PROBLEM_TYPE_BASE}unknown-loan"
    # The receipt is the fleet manager's to hand over: a nurse (or an ARC) reads the tablets, not this.
    for role in ("nurse", "arc"):
        refused = await receipt(fleet, returned, fleet.staff(role, f"{role}-1"))
        assert refused.status_code == 403, refused.text
    assert await _written(fleet) == before


async def test_each_loan_of_a_tablet_has_the_wipe_that_followed_its_own_return(fleet: Fleet) -> None:
    tablet = await fleet.ready_tablet()
    first = await _returned_loan(fleet, tablet)
    await _wipe(fleet, tablet, "after-the-first", fleet.staff())
    assert (await fleet.step(tablet, "make_ready")).status_code == 200
    second = await _returned_loan(fleet, tablet)

    # Back from the second patient, not wiped yet: the first patient's wipe says nothing of the second's data.
    pending = (await receipt(fleet, second)).json()
    assert pending["wipe_status"] == "pending" and pending["wipe"] is None
    # Wiped later, in repair, then again before the next loan: the first wipe after the return is the one that counts.
    await _wipe(fleet, tablet, "after-the-second", fleet.staff())
    assert (await fleet.step(tablet, "send_to_repair")).status_code == 200
    assert (await fleet.step(tablet, "back_from_repair")).status_code == 200
    await _wipe(fleet, tablet, "after-the-repair", fleet.staff())

    assert (await receipt(fleet, first)).json()["wipe"]["proof"] == "after-the-first"
    assert (await receipt(fleet, second)).json()["wipe"]["proof"] == "after-the-second"
    # Had the first wipe never been recorded (a tablet put back in service before wipes were), the first patient's
    # receipt still would not borrow the second's: that wipe came after another patient had the tablet.
    async with fleet.devices_platform.pool.acquire() as conn:
        await conn.execute("DELETE FROM wipes WHERE proof = 'after-the-first'")
    assert (await receipt(fleet, first)).json()["wipe_status"] == "pending"


# --- The tablet's condition at return ----------------------------------------------------------------------------


async def test_the_condition_a_return_records_is_on_the_loan_and_the_receipt_and_never_in_the_event(
    fleet: Fleet,
) -> None:
    tablet = await fleet.ready_tablet()
    loan = (await fleet.loan(tablet, uuid.uuid4())).json()["loan"]["id"]
    body = {
        "channel": "day_hospital",
        "accessories_returned": ["charger", "cable", "manual"],
        "condition": "damaged",
        "condition_note": "  écran fissuré en bas à droite  ",
    }
    returned = await fleet.devices.post(f"/v1/tablets/{tablet}/return", json=body, headers=fleet.staff())
    assert returned.status_code == 200, returned.text
    said = ("damaged", "écran fissuré en bas à droite")  # kept without the spaces around it
    assert (returned.json()["return_condition"], returned.json()["return_condition_note"]) == said
    got = (await receipt(fleet, loan)).json()
    assert (got["return_condition"], got["return_condition_note"]) == said
    # The next loan of the tablet sees it in the tablet's loans.
    detail = (await fleet.devices.get(f"/v1/tablets/{tablet}", headers=fleet.staff())).json()
    assert [(lo["return_condition"], lo["return_condition_note"]) for lo in detail["loans"]] == [said]
    # tablet.returned carries ids and codes: the note, typed at the desk, stays in the devices service.
    async with fleet.devices_platform.pool.acquire() as conn:
        events = await conn.fetch("SELECT body FROM outbox WHERE subject LIKE 'tablet.returned%'")
    assert events and all("fissur" not in bytes(e["body"]).decode() for e in events)

    # A return that says nothing of the condition records none, and the receipt says none.
    other = await fleet.ready_tablet()
    silent_loan = await _returned_loan(fleet, other)
    got = (await receipt(fleet, silent_loan)).json()
    assert (got["return_condition"], got["return_condition_note"]) == (None, None)


@pytest.mark.parametrize(
    ("condition", "pointer", "kind", "words"),
    [
        ({"condition": "broken"}, "/condition", None, ["good", "worn", "damaged"]),
        ({"condition": "worn", "condition_note": "x" * 201}, "/condition_note", None, ["200 characters at most"]),
        ({"condition": "worn", "condition_note": "rayée\nJeanne D."}, "/condition_note", None, ["one line"]),
        ({"condition": "worn", "condition_note": "   "}, "/condition_note", None, ["cannot be blank"]),
        ({"condition_note": "écran fissuré"}, "/condition", "condition-note-without-condition", ["comes with"]),
    ],
    ids=["unknown-condition", "note-too-long", "note-on-two-lines", "blank-note", "note-without-condition"],
)
async def test_a_bad_condition_at_return_is_refused_and_the_loan_stays_open(
    fleet: Fleet, condition: dict[str, str], pointer: str, kind: str | None, words: list[str]
) -> None:
    tablet = await fleet.ready_tablet()
    token = (await fleet.loan(tablet, uuid.uuid4())).json()["device_token"]
    before = await _open_loan_and_counts(fleet, tablet)
    body = {"channel": "day_hospital", "accessories_returned": ["charger", "cable", "manual"], **condition}
    refused = await fleet.devices.post(f"/v1/tablets/{tablet}/return", json=body, headers=fleet.staff())
    _assert_refused_list(refused, pointer, kind, words)
    assert await fleet.state(tablet) == "loaned"
    assert await _open_loan_and_counts(fleet, tablet) == before
    assert (await fleet.devices.post("/v1/heartbeats", json=heartbeat(), headers=bearer(token))).status_code == 204


# --- A tablet back damaged: looked at before its next loan ---------------------------------------------------------


async def _return_as(fleet: Fleet, tablet: str, condition: str, note: str | None = None) -> str:
    loan = (await fleet.loan(tablet, uuid.uuid4())).json()["loan"]["id"]
    body: dict[str, Any] = {"channel": "day_hospital", "accessories_returned": ["charger", "cable", "manual"]}
    body |= {"condition": condition} | ({"condition_note": note} if note else {})
    returned = await fleet.devices.post(f"/v1/tablets/{tablet}/return", json=body, headers=fleet.staff())
    assert returned.status_code == 200, returned.text
    return str(loan)


async def _tablet(fleet: Fleet, tablet: str) -> dict[str, Any]:
    return dict((await fleet.devices.get(f"/v1/tablets/{tablet}", headers=fleet.staff())).json())


async def _damaged_to_check(fleet: Fleet) -> int:
    return int((await fleet.devices.get("/v1/fleet", headers=fleet.staff())).json()["damaged_to_check"])


async def _trail_of(fleet: Fleet, tablet: str) -> list[tuple[str, str]]:
    async with fleet.devices_platform.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT action, actor FROM audit_log WHERE resource = $1 AND action <> 'tablet.read' ORDER BY id",
            f"tablet/{tablet}",
        )
    return [(r["action"], r["actor"]) for r in rows]


async def test_a_tablet_back_damaged_is_made_ready_only_once_someone_confirms_it_was_checked(fleet: Fleet) -> None:
    counted = await _damaged_to_check(fleet)
    tablet = await fleet.ready_tablet()
    loan = await _return_as(fleet, tablet, "damaged", "écran fissuré")
    # Flagged from the return on, in the tablet and in the fleet's counts.
    assert (await _tablet(fleet, tablet))["damage_check_due"] is True
    assert await _damaged_to_check(fleet) == counted + 1
    listed = (
        await fleet.devices.get(
            f"/v1/tablets?state=returned&serial={(await _tablet(fleet, tablet))['serial_number']}",
            headers=fleet.staff(),
        )
    ).json()
    assert [t["damage_check_due"] for t in listed["items"]] == [True]
    await _wipe(fleet, tablet, "sheet-41", fleet.staff())
    assert (await _tablet(fleet, tablet))["damage_check_due"] is True

    # Made ready as any other tablet: refused, with what to do, and nothing recorded.
    async with fleet.devices_platform.pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM transitions WHERE tablet_id = $1", uuid.UUID(tablet))
    trail = await _trail_of(fleet, tablet)
    for body in ({}, {"checked": False}, {"reason": "vue à l'accueil"}):
        refused = await fleet.devices.post(f"/v1/tablets/{tablet}/actions/make_ready", json=body, headers=fleet.staff())
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == f"{PROBLEM_TYPE_BASE}damage-not-checked"
        assert refused.json()["detail"] == (
            "This tablet came back damaged from its last loan and nobody has recorded that it was checked: confirm "
            'that it was checked, and repaired if needed, by making it ready with {"checked": true}; or send it to '
            "repair."
        )
    assert await fleet.state(tablet) == "wiped"
    assert await _trail_of(fleet, tablet) == trail
    async with fleet.devices_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM transitions WHERE tablet_id = $1", uuid.UUID(tablet)) == before

    # Confirmed by another fleet manager, sent twice with one key (a double click): recorded once, who and when.
    confirm = {**fleet.staff(staff_id="parc-sophie"), "Idempotency-Key": str(uuid.uuid4())}
    path = f"/v1/tablets/{tablet}/actions/make_ready"
    first = await fleet.devices.post(path, json={"checked": True}, headers=confirm)
    again = await fleet.devices.post(path, json={"checked": True}, headers=confirm)
    assert first.status_code == again.status_code == 200, first.text
    assert first.json() == again.json()
    assert first.json()["state"] == "ready" and first.json()["damage_check_due"] is False
    assert await _damaged_to_check(fleet) == counted
    checked = next(lo for lo in (await _tablet(fleet, tablet))["loans"] if lo["id"] == loan)
    assert (checked["damage_check"], checked["damage_checked_by"]) == ("checked", "parc-sophie")
    assert abs(datetime.fromisoformat(checked["damage_checked_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    trail = await _trail_of(fleet, tablet)
    assert trail.count(("tablet.damage_checked", "parc-sophie")) == 1
    assert trail.count(("tablet.make_ready", "parc-sophie")) == 1
    # The note typed at the desk stays on the loan: not in the trail, not in an event.
    async with fleet.devices_platform.pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM audit_log WHERE resource = $1", f"tablet/{tablet}")
        events = await conn.fetch("SELECT body FROM outbox WHERE subject LIKE $1", f"%{tablet}%")
    assert all("fissur" not in str(dict(r)) for r in rows)
    assert all("fissur" not in bytes(e["body"]).decode() for e in events)

    # Checked, it is a tablet like any other: its next loan, and the next return in good condition, ask nothing.
    await _return_as(fleet, tablet, "good")
    await _wipe(fleet, tablet, "sheet-42", fleet.staff())
    assert (await _tablet(fleet, tablet))["damage_check_due"] is False
    assert (await fleet.step(tablet, "make_ready")).status_code == 200


async def test_a_tablet_back_worn_or_unchecked_needs_no_confirmation_and_one_given_records_nothing(
    fleet: Fleet,
) -> None:
    worn = await fleet.ready_tablet()
    await _return_as(fleet, worn, "worn", "coque rayée")
    await _wipe(fleet, worn, "sheet-43", fleet.staff())
    assert (await _tablet(fleet, worn))["damage_check_due"] is False
    made = await fleet.devices.post(
        f"/v1/tablets/{worn}/actions/make_ready", json={"checked": True}, headers=fleet.staff()
    )
    assert made.status_code == 200, made.text
    assert [lo["damage_check"] for lo in (await _tablet(fleet, worn))["loans"]] == [None]
    assert ("tablet.damage_checked", "fleet-1") not in await _trail_of(fleet, worn)


async def test_sending_a_tablet_back_damaged_to_repair_is_its_check(fleet: Fleet) -> None:
    counted = await _damaged_to_check(fleet)
    tablet = await fleet.ready_tablet()
    loan = await _return_as(fleet, tablet, "damaged")
    assert (await fleet.step(tablet, "send_to_repair")).status_code == 200
    assert await _damaged_to_check(fleet) == counted
    sent = next(lo for lo in (await _tablet(fleet, tablet))["loans"] if lo["id"] == loan)
    assert (sent["damage_check"], sent["damage_checked_by"]) == ("sent_to_repair", "fleet-1")
    assert ("tablet.damage_sent_to_repair", "fleet-1") in await _trail_of(fleet, tablet)
    # Back from repair, it is wiped as any repaired tablet, and made ready without a second confirmation.
    assert (await fleet.step(tablet, "back_from_repair")).status_code == 200
    await _wipe(fleet, tablet, "sheet-44", fleet.staff())
    assert (await _tablet(fleet, tablet))["damage_check_due"] is False
    assert (await fleet.step(tablet, "make_ready")).status_code == 200


@pytest.mark.parametrize(
    ("action", "body", "pointer"),
    [
        ("retire", {"checked": True}, "/checked"),  # a check is confirmed when the tablet is made ready only
        ("make_ready", {"checked": "yes"}, "/checked"),  # true or false
    ],
)
async def test_a_check_confirmed_out_of_place_is_refused_and_changes_nothing(
    fleet: Fleet, action: str, body: dict[str, Any], pointer: str
) -> None:
    tablet = await fleet.ready_tablet()
    await _return_as(fleet, tablet, "damaged")
    await _wipe(fleet, tablet, "sheet-45", fleet.staff())
    trail = await _trail_of(fleet, tablet)
    refused = await fleet.devices.post(f"/v1/tablets/{tablet}/actions/{action}", json=body, headers=fleet.staff())
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem.get("pointer", (problem.get("errors") or [{}])[0].get("pointer")) == pointer, problem
    assert await fleet.state(tablet) == "wiped"
    assert (await _tablet(fleet, tablet))["damage_check_due"] is True
    assert await _trail_of(fleet, tablet) == trail


async def test_a_tablet_back_damaged_lost_then_found_waits_for_its_check_again(fleet: Fleet) -> None:
    counted = await _damaged_to_check(fleet)
    tablet = await fleet.ready_tablet()
    await _return_as(fleet, tablet, "damaged")
    lost = await fleet.devices.post(f"/v1/tablets/{tablet}/lost", json={}, headers=fleet.staff())
    assert lost.status_code == 200, lost.text
    # Out of reach, it cannot be looked at: not among those waiting for a check, nor marked.
    assert lost.json()["damage_check_due"] is False
    assert await _damaged_to_check(fleet) == counted
    assert (await fleet.step(tablet, "recover")).status_code == 200
    # Found again, it waits again: nobody has looked at the damage yet.
    assert (await _tablet(fleet, tablet))["damage_check_due"] is True
    assert await _damaged_to_check(fleet) == counted + 1
