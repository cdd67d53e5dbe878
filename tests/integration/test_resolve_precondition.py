"""Closing an alert with ``If-Match``: a nurse never closes a version of the alert she has not seen.

The patient's new answer turns the alert red while the nurse's closing dialog still shows it orange: the close
she confirms names the orange version, and is refused (412, the alert as it is now), storing and publishing
nothing. Closing what she now sees works; so does a close without the header, as before."""

from __future__ import annotations

import uuid
from typing import Any

import nats.errors
import orjson
import pytest

from shared.testing.fhir import RED_NAUSEA
from shared.testing.waiting import eventually
from tests.integration.test_nurse_workflow import NAUSEA_GRADE_2, open_alert, submit

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


async def _turned_red(platform: Any, alert_id: str) -> dict[str, Any]:
    async def red() -> Any:
        found = (await platform.alerting.get(f"/v1/alerts/{alert_id}", headers=platform.staff())).json()
        return found if found["level"] == "red" else None

    found: dict[str, Any] = await eventually(red)
    return found


async def _stored(platform: Any, alert_id: str) -> tuple[str, str | None, int]:
    async with platform.alerting_platform.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, outcome FROM alerts WHERE id = $1", uuid.UUID(alert_id))
        closes = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'alert.resolve' AND resource = $1", f"alert/{alert_id}"
        )
    return row["status"], row["outcome"], closes


async def test_a_close_of_a_version_the_nurse_did_not_see_is_refused_and_changes_nothing(platform: Any) -> None:
    patient = uuid.uuid4()
    alert = await open_alert(platform, patient, NAUSEA_GRADE_2)
    shown = await platform.alerting.get(f"/v1/alerts/{alert['id']}", headers=platform.staff())
    assert shown.headers["ETag"] == f'"{alert["updated_at"]}"'  # the list item's version is the ETag
    resolved = await platform.alerting_platform.js.subscribe("alert.resolved", stream="ALERTS", ordered_consumer=True)

    # While her dialog shows the orange alert, the patient reports grade 3 nausea: it turns red.
    await submit(platform, patient, RED_NAUSEA)
    now = await _turned_red(platform, alert["id"])
    stale = await platform.alerting.post(
        f"/v1/alerts/{alert['id']}/resolve",
        json={"outcome": "no_action_needed"},
        headers={**platform.staff(staff_id="nurse-stale"), "If-Match": shown.headers["ETag"]},
    )

    assert stale.status_code == 412, stale.text
    assert stale.headers["content-type"] == PROBLEM
    problem = stale.json()
    assert problem["type"].endswith("/alert-changed")
    assert "changed" in problem["detail"] and "confirm" in problem["detail"]
    assert (problem["alert"]["id"], problem["alert"]["level"], problem["alert"]["status"]) == (
        alert["id"],
        "red",
        "open",
    )
    assert stale.headers["ETag"] == f'"{now["updated_at"]}"' == f'"{problem["alert"]["updated_at"]}"'
    assert await _stored(platform, alert["id"]) == ("open", None, 0)
    async with platform.alerting_platform.pool.acquire() as conn:  # the alert it showed her is a read, audited
        shown_to = await conn.fetchval(
            "SELECT actor FROM audit_log WHERE action = 'alert.read' AND resource = $1 ORDER BY id DESC LIMIT 1",
            f"alert/{alert['id']}",
        )
    assert shown_to == "nurse-stale"

    # What she sees now, confirmed again: closed, and published once, by her.
    closed = await platform.alerting.post(
        f"/v1/alerts/{alert['id']}/resolve",
        json={"outcome": "phone_call"},
        headers={**platform.staff(staff_id="nurse-current"), "If-Match": stale.headers["ETag"]},
    )
    assert closed.status_code == 200, closed.text
    assert (closed.json()["status"], closed.json()["resolved_by"]) == ("resolved", "nurse-current")
    published = orjson.loads((await resolved.next_msg(timeout=5)).data)["data"]
    assert (published["alert_id"], published["resolved_by"]) == (alert["id"], "nurse-current")
    with pytest.raises(nats.errors.TimeoutError):
        await resolved.next_msg(timeout=0.5)
    assert await _stored(platform, alert["id"]) == ("resolved", "phone_call", 1)


async def test_a_close_of_the_version_shown_or_without_a_precondition_works(platform: Any) -> None:
    listed = await open_alert(platform, uuid.uuid4())
    current = await platform.alerting.post(
        f"/v1/alerts/{listed['id']}/resolve",
        json={"outcome": "phone_call"},
        headers={**platform.staff(), "If-Match": f'"{listed["updated_at"]}"'},
    )
    assert current.status_code == 200, current.text

    for if_match in ({}, {"If-Match": "*"}):
        other = await open_alert(platform, uuid.uuid4())
        url = f"/v1/alerts/{other['id']}/resolve"
        headers = {**platform.staff(), **if_match}
        closed = await platform.alerting.post(url, json={"outcome": "phone_call"}, headers=headers)
        assert closed.status_code == 200, closed.text


async def test_a_stale_precondition_on_a_closed_alert_says_it_is_closed(platform: Any) -> None:
    alert = await open_alert(platform, uuid.uuid4())
    url = f"/v1/alerts/{alert['id']}/resolve"
    first = await platform.alerting.post(url, json={"outcome": "phone_call"}, headers=platform.staff())
    assert first.status_code == 200
    again = await platform.alerting.post(
        url, json={"outcome": "phone_call"}, headers={**platform.staff(), "If-Match": f'"{alert["updated_at"]}"'}
    )
    assert again.status_code == 409 and again.json()["alert_status"] == "resolved"


@pytest.mark.parametrize(
    "if_match",
    [
        "2026-11-23T18:45:00.123456Z",  # not quoted
        '"yesterday"',
        '"2026-11-23T18:45:00"',  # no time zone: which instant?
        'W/"2026-11-23T18:45:00Z"',  # a weak tag never matches strongly
        '"2026-11-23T18:45:00Z", ',
        '"2026-11-23T18:45:00Z" "2026-11-23T18:46:00Z"',
        '"0001-01-01T00:00:00+01:00"',  # before the first instant a timestamp can hold
    ],
)
async def test_a_malformed_precondition_is_a_clear_400_and_closes_nothing(platform: Any, if_match: str) -> None:
    alert = await open_alert(platform, uuid.uuid4())
    refused = await platform.alerting.post(
        f"/v1/alerts/{alert['id']}/resolve",
        json={"outcome": "phone_call"},
        headers={**platform.staff(), "If-Match": if_match},
    )
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["type"].endswith("/invalid-if-match")
    assert "If-Match" in refused.json()["detail"]
    assert await _stored(platform, alert["id"]) == ("open", None, 0)
    async with platform.alerting_platform.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE subject = 'alert.resolved'") == 0


async def test_a_close_without_a_precondition_that_races_a_colleague_s_close_and_reopen_is_a_409(
    platform: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A colleague closes the alert just before this close's update, and reopens it just after: the update finds
    # it closed, the read that explains why finds it open again. The close named no version, so nothing
    # "changed since the version shown" (a 412): it is a conflict with a colleague, like finding it closed.
    from services.alerting import repository

    alert = await open_alert(platform, uuid.uuid4())
    url = f"/v1/alerts/{alert['id']}/resolve"
    colleague = platform.staff(staff_id="nurse-colleague")
    real_resolve = repository.resolve
    raced = False

    async def resolve_between_a_colleague_s_steps(*args: Any, **kwargs: Any) -> Any:
        nonlocal raced
        if raced:  # the colleague's own close
            return await real_resolve(*args, **kwargs)
        raced = True
        closed = await platform.alerting.post(url, json={"outcome": "phone_call"}, headers=colleague)
        assert closed.status_code == 200, closed.text
        row = await real_resolve(*args, **kwargs)
        reopened = await platform.alerting.post(f"/v1/alerts/{alert['id']}/reopen", headers=colleague)
        assert reopened.status_code == 200, reopened.text
        return row

    monkeypatch.setattr(repository, "resolve", resolve_between_a_colleague_s_steps)
    late = await platform.alerting.post(url, json={"outcome": "no_action_needed"}, headers=platform.staff())

    assert raced
    assert late.status_code == 409, late.text
    assert late.headers["content-type"] == PROBLEM
    assert late.json()["type"].endswith("/alert-conflict")
    assert late.json()["alert_status"] == "acknowledged"
    assert "colleague" in late.json()["detail"]
    async with platform.alerting_platform.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, acknowledged_by FROM alerts WHERE id = $1", uuid.UUID(alert["id"]))
    assert (row["status"], row["acknowledged_by"]) == ("acknowledged", "nurse-colleague")
    assert await _stored(platform, alert["id"]) == ("acknowledged", None, 1)  # only the colleague's close
