"""Late answers that join an alert already open, in a real headless Chromium: the row and the patient view say the
newest answers arrived late and by how much, and the patient view says it of each questionnaire that came late;
timely answers joining an alert say nothing; answers given at the ward's hour are received at that hour, not late."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from playwright.async_api import expect

from shared.testing.fhir import RED_NAUSEA, questionnaire_response
from shared.testing.waiting import eventually
from tests.browser.conftest import Ward, rows

pytestmark = pytest.mark.browser

PARIS = ZoneInfo("Europe/Paris")
LATE = re.compile(r"^Dernières réponses du \d\d/\d\d à \d\d:\d\d · arrivées 2 j 1 h plus tard$")
ON_SUNDAY_LATE = re.compile(r"^Questionnaire du \d\d/\d\d/\d{4} à \d\d:\d\d \(arrivé 2 j 1 h plus tard\) — .+$")


async def merged_alert(ward: Ward, patient: uuid.UUID) -> dict[str, Any]:
    """The patient's active alert, once it holds two submissions."""
    headers = {"Authorization": f"Bearer {ward.tokens.issue_staff_token('ide-karim', {'nurse'})}"}
    async with httpx.AsyncClient(base_url=ward.url) as client:

        async def merged() -> Any:
            items = (await client.get("/v1/alerts?limit=500", headers=headers)).json()["items"]
            found = next((a for a in items if a["patient_id"] == str(patient)), None)
            return found if found and len(found["submission_ids"]) == 2 else None

        alert: dict[str, Any] = await eventually(merged)
    return alert


async def test_late_answers_merged_into_an_open_alert_are_flagged_on_its_row_and_in_the_patient_view(
    ward: Ward,
) -> None:
    # Both alerts are raised on timely answers; then a tablet offline since Sunday sends Sunday's answers, which
    # join the first one, and the other patient answers again, in time.
    late = await ward.submit(RED_NAUSEA)
    timely = await ward.submit(RED_NAUSEA)
    await ward.submit(RED_NAUSEA, patient=late, authored=ward.clock() - timedelta(days=2, hours=1))
    await ward.submit(RED_NAUSEA, patient=timely)
    await merged_alert(ward, late)
    await merged_alert(ward, timely)

    page = await ward.dashboard()
    await expect(rows(page)).to_have_count(2, timeout=5_000)
    late_row = page.locator(f"#alert-rows tr[data-patient-id='{late}']")
    await expect(late_row.locator(".col-source .late-answers")).to_have_text(LATE)
    await expect(page.locator(f"#alert-rows tr[data-patient-id='{timely}'] .late-answers")).to_have_count(0)

    await late_row.locator("[data-action=open-patient]").click()
    current = page.locator('#patient-view section[aria-labelledby="current-alert-title"]')
    await expect(current.locator(".late-answers")).to_have_text(LATE, timeout=5_000)
    # Each of its questionnaires says whether it came late, oldest given first: Sunday's, late, then the timely
    # one that raised the alert, which says nothing. The trend shows Sunday's at Sunday's date, marked the same.
    questionnaires = current.locator(".submission-detail h3")
    await expect(questionnaires).to_have_count(2)
    await expect(questionnaires.nth(0).locator(".late-submission")).to_have_text(" (arrivé 2 j 1 h plus tard)")
    await expect(questionnaires.nth(0)).to_have_text(ON_SUNDAY_LATE)
    await expect(questionnaires.nth(1).locator(".late-submission")).to_have_count(0)
    await expect(page.locator("#patient-view .trend thead .col-late")).to_have_text(["arrivé 2 j 1 h plus tard"])


async def test_answers_a_nurse_took_by_phone_are_not_flagged_late_on_the_row_nor_in_the_patient_view(
    ward: Ward,
) -> None:
    # A tablet raised the alert; then a nurse enters what the patient told her on the phone yesterday evening, dated
    # when it was said. She heard the answers as they were given: neither the row nor the patient view calls them late.
    patient = await ward.submit(RED_NAUSEA)
    nurse = {"Authorization": f"Bearer {ward.tokens.issue_staff_token('ide-karim', {'nurse'})}"}
    phoned = await ward.tablet.post(
        f"/v1/patients/{patient}/submissions",
        content=orjson.dumps(questionnaire_response(RED_NAUSEA, authored=ward.clock() - timedelta(hours=20))),
        headers={**nurse, "Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/fhir+json"},
    )
    assert phoned.status_code == 202, phoned.text
    assert (await merged_alert(ward, patient))["latest_answers_by"] == "nurse_phone"

    page = await ward.dashboard()
    row = page.locator(f"#alert-rows tr[data-patient-id='{patient}']")
    await expect(row.locator(".col-source")).to_contain_text("Infirmier·ère (par téléphone)", timeout=5_000)
    await expect(row.locator(".late-answers")).to_have_count(0)
    await row.locator("[data-action=open-patient]").click()
    current = page.locator('#patient-view section[aria-labelledby="current-alert-title"]')
    await expect(current.locator(".submission-detail h3")).to_have_count(2, timeout=5_000)
    await expect(current.locator(".late-answers, .late-submission")).to_have_count(0)


async def test_answers_given_at_the_ward_s_hour_arrive_at_that_hour_and_are_not_flagged_late(ward: Ward) -> None:
    # The ward's services tell one time: answers a tablet gives at the ward's hour, three weeks back, are received
    # (by the questionnaire service), scored and raised (by the alerting service) at that hour, not flagged weeks late.
    given = ward.clock.pin(datetime.combine(datetime.now(PARIS).date() - timedelta(days=21), time(10), PARIS))
    patient = await ward.submit(RED_NAUSEA)
    headers = {"Authorization": f"Bearer {ward.tokens.issue_staff_token('ide-karim', {'nurse'})}"}
    async with httpx.AsyncClient(base_url=ward.url) as client:

        async def raised() -> Any:
            items = (await client.get("/v1/alerts?limit=500", headers=headers)).json()["items"]
            return next((a for a in items if a["patient_id"] == str(patient)), None)

        alert = await eventually(raised)
    dates = ("latest_answers_authored", "latest_answers_received_at", "raised_at")
    assert [datetime.fromisoformat(alert[name]) for name in dates] == [given] * 3
    tablet = {"Authorization": f"Bearer {ward.tokens.issue_device_token(patient, 'tablet-browser')}"}
    received = (await ward.tablet.get(f"/v1/submissions/{alert['submission_ids'][0]}", headers=tablet)).json()
    assert datetime.fromisoformat(received["received_at"]) == given

    page = await ward.dashboard()
    row = page.locator(f"#alert-rows tr[data-patient-id='{patient}']")
    await expect(row).to_be_visible(timeout=5_000)
    await expect(row.locator(".late-answers")).to_have_count(0)
