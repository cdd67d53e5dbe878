"""The triage list (GET /v1/alerts): how long each alert has waited for a nurse."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.testing.fhir import RED_NAUSEA
from shared.testing.waiting import eventually
from tests.integration.test_nurse_workflow import open_alert, submit

pytestmark = pytest.mark.integration

ORANGE_NAUSEA = [{"code": "nausea", "rule": "orange.grade2", "level": "orange", "grade": 2}]
RED_FEVER = [{"code": "fever", "rule": "red.fever", "level": "red"}]


async def insert_alert(
    platform: Any,
    level: str,
    *,
    status: str = "open",
    waiting: timedelta = timedelta(minutes=5),
    taken_after: timedelta | None = None,
) -> str:
    """An alert written straight into the table (much faster than scoring a submission for each)."""
    raised = datetime.now(UTC) - waiting
    async with platform.alerting_platform.pool.acquire() as conn:
        alert_id = await conn.fetchval(
            "INSERT INTO alerts (id, patient_id, level, status, reasons, answered_by, rule_set, raised_at, "
            "updated_at, level_since, acknowledged_by, acknowledged_at, outcome) "
            "VALUES ($1, $2, $3, $4, $5, 'patient', 'test', $6, $6, $6, $7, $8, $9) RETURNING id",
            uuid.uuid4(),
            uuid.uuid4(),
            level,
            status,
            RED_FEVER if level == "red" else ORANGE_NAUSEA,
            raised,
            "nurse-2" if taken_after is not None else None,
            raised + taken_after if taken_after is not None else None,
            "phone_call" if status == "resolved" else None,
        )
    return str(alert_id)


async def test_an_alert_in_hand_waited_until_it_was_taken(platform: Any) -> None:
    taken = await insert_alert(
        platform, "red", status="acknowledged", waiting=timedelta(hours=3), taken_after=timedelta(minutes=4)
    )
    alert = (await platform.alerting.get(f"/v1/alerts/{taken}", headers=platform.staff())).json()
    assert alert["waiting_seconds"] == 240
    assert alert["waiting_since"] == alert["raised_at"]


async def test_an_alert_a_new_finding_reopens_waits_again_from_then(platform: Any) -> None:
    # Taken long ago, then a new red report: it needs a nurse again, and has waited since that report (as its
    # service-level clock), not since it was first raised; the list says who had it.
    patient = uuid.uuid4()
    alert = await open_alert(platform, patient)
    taken = await platform.alerting.post(f"/v1/alerts/{alert['id']}/ack", headers=platform.staff("nurse", "ide-claire"))
    assert taken.status_code == 200
    async with platform.alerting_platform.pool.acquire() as conn:
        await conn.execute(
            "UPDATE alerts SET raised_at = raised_at - interval '3 hours', level_since = level_since - interval "
            "'3 hours', acknowledged_at = acknowledged_at - interval '170 minutes' WHERE id = $1",
            uuid.UUID(alert["id"]),
        )
    waiting_longer = await insert_alert(platform, "red", waiting=timedelta(minutes=30))
    await submit(platform, patient, RED_NAUSEA)

    async def reopened() -> Any:
        found = (await platform.alerting.get(f"/v1/alerts/{alert['id']}", headers=platform.staff())).json()
        return found if found["status"] == "open" else None

    again = await eventually(reopened)
    assert again["previously_acknowledged_by"] == "ide-claire" and again["acknowledged_by"] is None
    assert again["waiting_since"] == again["reopened_by_finding_at"]
    assert datetime.fromisoformat(again["waiting_since"]) > datetime.fromisoformat(again["raised_at"])
    assert again["waiting_seconds"] < 60
    async with platform.alerting_platform.pool.acquire() as conn:
        level_since = await conn.fetchval("SELECT level_since FROM alerts WHERE id = $1", uuid.UUID(alert["id"]))
    assert datetime.fromisoformat(again["waiting_since"]) == level_since
    listed = (await platform.alerting.get("/v1/alerts", headers=platform.staff())).json()["items"]
    assert [a["id"] for a in listed] == [waiting_longer, alert["id"]]
